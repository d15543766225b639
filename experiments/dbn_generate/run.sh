#!/usr/bin/env bash
# DBN generation preset on the official MNIST (one torch thread, see ../dbn_classifier/README.md),
# then grids from the final checkpoint with a mean-field and a stochastic down pass.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GENEXP_DATA_DIR=${GENEXP_DATA_DIR:-$(realpath ../shared/data/mnist)}
RUN_DIR=${RUN_DIR:-outputs/dbn_generate/run}
OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m genexp experiment=dbn_generate hydra.run.dir="$RUN_DIR" "$@" \
  > experiments/dbn_generate/train.log 2>&1
OMP_NUM_THREADS=1 .venv/bin/python experiments/dbn_generate/grids.py "$RUN_DIR/checkpoints/last.ckpt" --out experiments/dbn_generate
