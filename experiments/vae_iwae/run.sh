#!/usr/bin/env bash
# Issue 12: the VAE trained with the IWAE bound, k = 5 (experiment=vae_iwae); test/loglik = the IWAE bound
# with k = 5000 on the fixed binarized test set.
exec "$(dirname "$0")/../study.sh" vae_iwae experiment=vae_iwae "$@"
