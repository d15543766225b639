#!/usr/bin/env bash
# Issue 11: the semi-supervised GAN with Salimans et al.'s init at N = 20, 50, 200 labels x seeds 1, 2, 3
# (one Hydra multirun, three jobs at a time on this CPU, one torch thread each), 44 epochs each: the epochs
# experiments/ssgan_100_cpu reached at N = 100 (1.91 +- 0.47%), so the four N share a budget and can be set
# against the supervised-only baseline (experiments/ssgan_baseline_init, ssgan_baseline_100).
# +trainer.max_time caps a job at 44 min if the machine is slower than ~60 s an epoch.
# RESUME_FROM=ssgan_sweep_cpu with ckpt_path=auto: a later sitting keeps the finished jobs and resumes the
# others; run it again with e.g. trainer.max_epochs=173 +trainer.max_time=00:03:35:00 to continue them all.
RESUME_FROM=ssgan_sweep_cpu exec "$(dirname "$0")/../study.sh" ssgan_sweep_cpu -m experiment=ssgan \
  data.labelled=20,50,200 seed=1,2,3 trainer.max_epochs=44 +trainer.max_time=00:00:44:00 ckpt_path=auto \
  hydra/launcher=joblib_local hydra.launcher.n_jobs=3 "$@"
