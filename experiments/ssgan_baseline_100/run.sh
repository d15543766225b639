#!/usr/bin/env bash
# Issue 11: the supervised-only baseline (experiment=ssgan_baseline: the same MLP on the same 100 labels
# only, 20 epochs) with Salimans et al.'s init, 3 seeds, on this CPU (two jobs at a time): the baseline
# beside experiments/ssgan_100_cpu and experiments/ssgan_long, which use that init too.
exec "$(dirname "$0")/../study.sh" ssgan_baseline_100 -m experiment=ssgan_baseline data.labelled=100 seed=1,2,3 \
  hydra/launcher=joblib_local hydra.launcher.n_jobs=2 "$@"
