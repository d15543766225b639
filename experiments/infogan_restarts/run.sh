#!/usr/bin/env bash
# Issue 10: InfoGAN at the paper's widths (experiment=infogan_paper, lambda_cont 1: the setting chosen on
# val/code_error in experiments/infogan_paper), 40 epochs, as restarts: seeds 1-9 are 3 restarts of each
# of 3 seeds (seed s = restarts 3s-2, 3s-1, 3s). keep_best.py keeps, of each seed's restarts, the one with the
# highest val/code_mi (I(x; c) of Q on the val images: no label; experiments/infogan_select shows it ranks
# runs by their code error) and reports the kept runs' test/code_error, mean ± std over the 3 seeds, and
# how many of all restarts failed to give each digit its own code (test/digits_coded < 10).
# Too slow for this CPU (~6 min an epoch on one thread): a GPU step (experiments/gpu/run.sh, session8).
exec "$(dirname "$0")/../study.sh" infogan_restarts -m experiment=infogan_paper model.lambda_cont=1.0 \
  seed="${SEEDS:-1,2,3,4,5,6,7,8,9}" trainer.max_epochs=40 "$@"
