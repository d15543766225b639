#!/usr/bin/env bash
# Train the MNIST feature network with the shipped recipe and export it to genexp/metrics/weights/.
# (The shipped file was trained by this recipe at commit 1b67dc0; see genexp/metrics/weights/mnist_cnn.json.)
set -euo pipefail
cd "$(dirname "$0")/../.."
run=outputs/feature_net_mnist
python -m genexp experiment=feature_classifier hydra.run.dir=$run callbacks.progress_bar.refresh_rate=0
python experiments/feature_net/export.py $run --name mnist_cnn --command "python -m genexp experiment=feature_classifier seed=0"
