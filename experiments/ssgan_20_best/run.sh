#!/usr/bin/env bash
# Issue 11: the semi-supervised GAN at N = 20 labels x seeds 1, 2, 3 with the jobs of
# experiments/ssgan_sweep_cpu (44 epochs, three at a time on this CPU), tested at best.ckpt (test_ckpt=best:
# the epoch with the lowest val/error, early stopping chosen on the held-out 10k) as well as at the final
# weights (last/test/...; the same jobs as the sweep's, so these should repeat its 58.45 / 37.34 / 38.89%).
# Compared with experiments/ssgan_baseline_best, the baseline tested the same way.
exec "$(dirname "$0")/../study.sh" ssgan_20_best -m experiment=ssgan data.labelled=20 seed=1,2,3 \
  trainer.max_epochs=44 +trainer.max_time=00:00:50:00 test_ckpt=best \
  hydra/launcher=joblib_local hydra.launcher.n_jobs=3 "$@"
