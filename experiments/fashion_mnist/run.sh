#!/usr/bin/env bash
# Issue 13: the short presets (each model's defaults, as `python -m genexp model=<m>` runs them) on
# Fashion-MNIST, as Hydra multiruns, two jobs at a time (joblib launcher, one torch thread each), then the
# table beside the same presets' MNIST numbers (experiments/defaults): experiments/fashion_mnist/table.py.
#   fashion_mnist:      the models the issue names (rbm, the DBN classifier and autoencoder, cdcgan);
#   fashion_mnist_more: the models built after them (stackgan, infogan, ssgan, vae, pixelcnn), each capped
#                       at 10 minutes of training, the VAE's IWAE bound (k = 5000) on the first 1000 test images.
#   STUDIES="fashion_mnist_more" experiments/fashion_mnist/run.sh    # one of them only
set -euo pipefail
cd "$(dirname "$0")/../.."
for study in ${STUDIES:-fashion_mnist fashion_mnist_more}; do
  case $study in
    fashion_mnist) args=(model=rbm,dbn_classifier,dbn_autoencoder,cdcgan) ;;
    fashion_mnist_more) args=(model=stackgan,infogan,ssgan,vae,pixelcnn +trainer.max_time=00:00:10:00 eval_size.loglik_n=1000) ;;
  esac
  experiments/study.sh "$study" -m "${args[@]}" data=fashion_mnist hydra/launcher=joblib_local "$@" || true
done
"${PY:-.venv/bin/python}" experiments/fashion_mnist/table.py
