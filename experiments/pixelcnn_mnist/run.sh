#!/usr/bin/env bash
# Issue 12: the PixelCNN on dynamically binarized MNIST (experiment=pixelcnn_mnist), one hour of training
# on this CPU (two torch threads), test/loglik = the exact log-likelihood of the fixed binarized test set.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec "$(dirname "$0")/../study.sh" pixelcnn_mnist experiment=pixelcnn_mnist "$@"
