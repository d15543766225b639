#!/usr/bin/env bash
# Issue 10: InfoGAN at the paper's widths (experiment=infogan_paper, lambda_cont 1, the lower val/code_error
# in experiments/infogan_paper) over seeds 1, 2, 3, given 40 epochs: the 12-job GPU sweep of
# experiments/infogan_paper gave each job only 10-11 epochs (18.1 +- 4.2% code error). Is the gap to the
# paper's 5% one of training length? On a lent GPU: STEPS=session6 bash experiments/gpu/run.sh.
# Its run on an H200 (2026-11-27, snapshot of 084309a, reported as 5f4f09e dirty): 40 epochs in 6.3 min per
# job, test code error 25.2%, 9.7%, 2.4% (seeds 1, 2, 3): 12.4 +- 11.6%.
exec "$(dirname "$0")/../study.sh" infogan_long -m experiment=infogan_paper model.lambda_cont=1.0 seed=1,2,3 \
  trainer.max_epochs=40 "$@"
