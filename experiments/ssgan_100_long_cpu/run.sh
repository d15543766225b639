#!/usr/bin/env bash
# Issue 11: the three 100-label runs of experiments/ssgan_100_cpu (43-44 epochs in 85 min, test error
# 1.91 +- 0.47%) continued from their last.ckpt with the same recipe (Salimans et al. train 300 epochs at a
# constant learning rate, so a resumed run is a longer run), one torch thread each, the three at once.
# trainer.max_time counts from the first launch (Lightning's Timer keeps its elapsed time in the
# checkpoint: ~5106 s were spent), so 3 h 35 min in all leaves each job ~130 more minutes.
RESUME_FROM=ssgan_100_cpu exec "$(dirname "$0")/../study.sh" ssgan_100_long_cpu -m experiment=ssgan data.labelled=100 \
  seed=1,2,3 trainer.max_epochs=300 +trainer.max_time=00:03:35:00 ckpt_path=last \
  hydra/launcher=joblib_local hydra.launcher.n_jobs=3 "$@"
