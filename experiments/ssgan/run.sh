#!/usr/bin/env bash
# Issue 11: the semi-supervised GAN (permutation-invariant MLP, feature matching) over N = 20, 50, 100, 200
# labelled images x seeds 1, 2, 3 (the seed also picks the labelled subset): one Hydra multirun.
# Run on the lent GPU by experiments/gpu/run.sh (STEPS=studies), with its trainer and time budget appended.
# experiments/ssgan/table.py then writes table.md (mean ± std test error per N, beside the baseline).
exec "$(dirname "$0")/../study.sh" ssgan -m experiment=ssgan data.labelled=20,50,100,200 seed=1,2,3 "$@"
