#!/usr/bin/env bash
# Issue 11: the supervised-only baseline (experiment=ssgan_baseline: the same MLP on the same N labels only,
# 20 epochs) with Salimans et al.'s init (the init of experiments/ssgan_100_cpu, ssgan_100_long_cpu and
# ssgan_long), N = 20, 50, 200 x seeds 1, 2, 3, one Hydra multirun, one job at a time on this CPU (beside
# the three GAN jobs of ssgan_100_long_cpu); N = 100 is experiments/ssgan_baseline_100 (the same jobs, run
# before). experiments/ssgan_baseline is the sweep with the init of 2026-11-26.
# RESUME_FROM=ssgan_baseline_init with ckpt_path=auto: a second launch keeps the finished jobs and resumes
# an interrupted one (this study was first launched over N = 20, 50, 100, 200 and stopped in its 2nd job).
RESUME_FROM=ssgan_baseline_init exec "$(dirname "$0")/../study.sh" ssgan_baseline_init -m experiment=ssgan_baseline \
  data.labelled=20,50,200 seed=1,2,3 ckpt_path=auto "$@"
