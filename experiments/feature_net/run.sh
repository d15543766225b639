#!/usr/bin/env bash
# Train a feature network of the metrics with its shipped recipe and export it to genexp/metrics/weights/:
#   experiments/feature_net/run.sh [NAME EXPERIMENT]     # default: mnist_cnn feature_classifier
#   experiments/feature_net/run.sh fashion_cnn feature_classifier_fashion
# (The shipped mnist_cnn was trained by its recipe at commit 1b67dc0; see genexp/metrics/weights/<NAME>.json.)
# Then pin the printed sha256 in genexp/metrics/features.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:-mnist_cnn}
experiment=${2:-feature_classifier}
run=outputs/feature_net_$name
PY=${PY:-.venv/bin/python}
"$PY" -m genexp experiment="$experiment" hydra.run.dir="$run" callbacks.progress_bar.refresh_rate=0
"$PY" experiments/feature_net/export.py "$run" --name "$name" --command "python -m genexp experiment=$experiment seed=0"
