#!/usr/bin/env bash
# The classifier acceptance run: python -m genexp model=classifier logger=wandb on the real MNIST,
# then results.md from its metrics.json. Usage: bash experiments/classifier/run.sh [--collect-only]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=outputs/acceptance/classifier
if [ "${1:-}" != "--collect-only" ]; then
  /usr/bin/time -v .venv/bin/python -m genexp model=classifier logger=wandb hydra.run.dir=$RUN \
    > experiments/classifier/train.log 2>&1
fi
cp $RUN/samples/test_errors.png experiments/classifier/test_errors.png
.venv/bin/python - "$RUN" <<'PY' | tee experiments/classifier/results.md
import json, sys
m = json.load(open(f"{sys.argv[1]}/metrics.json"))
print("| command | test/acc | test error | epochs | wall time (s) | device | torch threads |")
print("|---|---|---|---|---|---|---|")
print(f"| `python -m genexp model=classifier logger=wandb` | {m['test/acc']:.4f} | {100 * (1 - m['test/acc']):.2f}% "
      f"| {m['epochs']} | {m['wall_time_s']:.0f} | {m['device']} ({m['cpu']}) | {m['torch_threads']} |")
PY
