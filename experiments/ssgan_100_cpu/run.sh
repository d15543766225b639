#!/usr/bin/env bash
# Issue 11: the semi-supervised GAN at 100 labels over 3 seeds on this CPU, each run given up to 90 epochs
# or 85 minutes (one torch thread each, the three at once), to see where Salimans et al.'s recipe gets
# when it is given the epochs it needs (experiments/ssgan_long: 1.82 +- 0.52% after 43 epochs on a GPU).
exec "$(dirname "$0")/../study.sh" ssgan_100_cpu -m experiment=ssgan data.labelled=100 seed=1,2,3 trainer.max_epochs=90 \
  +trainer.max_time=00:01:25:00 hydra/launcher=joblib_local hydra.launcher.n_jobs=3 "$@"
