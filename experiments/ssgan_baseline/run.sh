#!/usr/bin/env bash
# Issue 11: the supervised-only baseline of experiments/ssgan: the same classifier on the same N labelled
# images only (experiment=ssgan_baseline), N = 20, 50, 100, 200 x seeds 1, 2, 3, one Hydra multirun (CPU).
exec "$(dirname "$0")/../study.sh" ssgan_baseline -m experiment=ssgan_baseline data.labelled=20,50,100,200 seed=1,2,3 "$@"
