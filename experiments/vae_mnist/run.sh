#!/usr/bin/env bash
# Issue 12: the VAE on dynamically binarized MNIST (experiment=vae_mnist), test/loglik = the IWAE bound
# with k = 5000 on the fixed binarized test set.
exec "$(dirname "$0")/../study.sh" vae_mnist experiment=vae_mnist "$@"
