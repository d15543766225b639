"""Time `python -m genexp model=<m> trainer=smoke` for every conf/model/*.yaml (real MNIST, one thread)
and write the table to results.md: smoke must stay "a few batches of everything, in seconds".

    GENEXP_DATA_DIR=../shared/data/mnist .venv/bin/python experiments/smoke/bench.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from genexp.record import git_state, write_atomic  # noqa: E402

LIMIT_S = 20.0  # the target of the newcomer issue: every model's smoke run within 20 s on this machine


def main() -> int:
    models = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    rows = []
    for model in models:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "genexp", f"model={model}", "trainer=smoke", "logger=csv"]
            start = time.monotonic()
            done = subprocess.run([*cmd, f"hydra.run.dir={tmp}/run"], cwd=ROOT, env=env, capture_output=True, text=True)
            seconds = time.monotonic() - start
            status = (
                json.loads((Path(tmp) / "run" / "metrics.json").read_text())["status"]
                if done.returncode == 0
                else f"exit {done.returncode}"
            )
        rows.append((model, seconds, status))
        print(f"{model:<16} {seconds:6.1f} s  {status}", flush=True)
    git = git_state()
    lines = [
        "# `trainer=smoke` wall time per model",
        "",
        f"Written by `experiments/smoke/bench.py` (git {str(git['git_commit'])[:10]}, dirty: {git['git_dirty']}; "
        f"{platform.machine()}, one torch thread, real MNIST, W&B off). Wall time of the whole command: "
        "interpreter start, data loading, 8 epochs of 2 batches, every evaluation callback of the model. "
        f"Target <= {LIMIT_S:.0f} s.",
        "",
        "| model | wall time (s) | status | <= 20 s |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {m} | {s:.1f} | {st} | {'yes' if s <= LIMIT_S and st == 'finished' else 'no'} |" for m, s, st in rows]
    write_atomic(Path(__file__).with_name("results.md"), "\n".join(lines) + "\n")
    return 0 if all(s <= LIMIT_S and st == "finished" for _, s, st in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
