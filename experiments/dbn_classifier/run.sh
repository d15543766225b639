#!/usr/bin/env bash
# DBN classifier preset on the official MNIST; one thread (the 2-core machine is shared: with more
# threads than free cores, OpenMP barriers make every op ~20x slower), results table afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GENEXP_DATA_DIR=${GENEXP_DATA_DIR:-$(realpath ../shared/data/mnist)}
RUN_DIR=${RUN_DIR:-outputs/dbn_classifier/run}
OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m genexp experiment=dbn_classifier hydra.run.dir="$RUN_DIR" "$@" \
  > experiments/dbn_classifier/train.log 2>&1
.venv/bin/python experiments/dbn_results/make_table.py "$RUN_DIR" --out experiments/dbn_classifier
