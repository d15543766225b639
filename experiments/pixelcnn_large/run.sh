#!/usr/bin/env bash
# Issue 12's larger preset on a lent GPU (experiment=pixelcnn_large: 128 maps, 12 residual blocks, batch 128,
# bf16 autocast), toward van den Oord et al.'s 81.30 nats; experiments/gpu/run.sh runs it with a time budget
# (STEPS=session6: as many epochs as a 2-epoch probe says fit in PIXELCNN_S seconds).
# Its run on an H200 (2026-11-27, from a git-archive snapshot of 084309a; the device copy reports the
# session's base commit 5f4f09e as dirty in results.md): 17 epochs in 4.5 min, exact test log-likelihood
# -85.60 nats (val NLL 86.0), beside three InfoGAN jobs (experiments/infogan_long).
exec "$(dirname "$0")/../study.sh" pixelcnn_large experiment=pixelcnn_large "$@"
