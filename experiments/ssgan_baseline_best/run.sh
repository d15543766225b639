#!/usr/bin/env bash
# Issue 11: the supervised-only baseline (experiment=ssgan_baseline: the same MLP on the same N labels only,
# 20 epochs, Salimans et al.'s init) at N = 20, 50, 100, 200 x seeds 1, 2, 3, one Hydra multirun, two jobs
# at a time on this CPU, tested at best.ckpt (test_ckpt=best: the epoch with the lowest val/error) and at
# the final weights (last/test/...; the jobs of ssgan_baseline_init and ssgan_baseline_100).
exec "$(dirname "$0")/../study.sh" ssgan_baseline_best -m experiment=ssgan_baseline \
  data.labelled=20,50,100,200 seed=1,2,3 test_ckpt=best hydra/launcher=joblib_local hydra.launcher.n_jobs=2 "$@"
