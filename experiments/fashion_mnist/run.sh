#!/usr/bin/env bash
# Issue 13: the short presets (each model's defaults, as `python -m genexp model=<m>` runs them) on
# Fashion-MNIST, as one Hydra multirun, two jobs at a time (joblib launcher, one torch thread each), then
# the table beside the same presets' MNIST numbers (experiments/defaults): experiments/fashion_mnist/table.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
experiments/study.sh fashion_mnist -m model=rbm,dbn_classifier,dbn_autoencoder,cdcgan data=fashion_mnist \
  hydra/launcher=joblib_local "$@" || true
"${PY:-.venv/bin/python}" experiments/fashion_mnist/table.py
