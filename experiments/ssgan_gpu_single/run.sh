#!/usr/bin/env bash
# Issue 11: one semi-supervised GAN run alone on a lent GPU (100 labels, seed 1) for 4 min 50 s, to see how
# the error moves when a run has the GPU to itself (38 epochs) rather than sharing it with 20 others (6).
# It ran as: python -m genexp experiment=ssgan data.labelled=100 seed=1 trainer=gpu data.on_device=true \
#   +trainer.max_time=00:00:04:50 (the run dir fetched into outputs/studies/ssgan_gpu_single, then
#   PUBLISH_ONLY=1 experiments/study.sh ssgan_gpu_single).
exec "$(dirname "$0")/../study.sh" ssgan_gpu_single experiment=ssgan data.labelled=100 seed=1 trainer=gpu data.on_device=true \
  +trainer.max_time=00:00:04:50 "$@"
