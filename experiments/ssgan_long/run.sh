#!/usr/bin/env bash
# Issue 11: the semi-supervised GAN at 100 labels over 3 seeds, each run given a longer budget than the
# 12-job sweep of experiments/ssgan (Salimans et al.'s recipe needs tens of epochs: a faithful Chainer port
# logs 12.6% error after 10 epochs, 5.6% after 20, 2.0% after 42 and ~1% after 115, with 0.9999 weight
# averaging). On a lent GPU: STEPS=ssgan_long bash experiments/gpu/run.sh (3 jobs at once). It ran on an
# H200 on 2026-11-27 from a git-archive snapshot of commit 12724ce (the device copy reports the session's base
# commit f722f77 as dirty in results.md).
exec "$(dirname "$0")/../study.sh" ssgan_long -m experiment=ssgan data.labelled=100 seed=1,2,3 "$@"
