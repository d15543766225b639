#!/usr/bin/env bash
# Issue 12's larger preset on a lent GPU (experiment=pixelcnn_large: 128 maps, 12 residual blocks, batch 128),
# toward van den Oord et al.'s 81.30 nats; experiments/gpu/run.sh runs it with a time cap:
#   STEPS=pixelcnn_large bash experiments/gpu/run.sh
exec "$(dirname "$0")/../study.sh" pixelcnn_large experiment=pixelcnn_large "$@"
