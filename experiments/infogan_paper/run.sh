#!/usr/bin/env bash
# Issue 10: InfoGAN at the paper's widths (experiment=infogan_paper, 20 epochs), the continuous codes'
# weight lambda_cont 1 and 0.1, seeds 1, 2, 3, one Hydra multirun (on the lent GPU: experiments/gpu/run.sh).
# The lambda_cont reported is the one with the lower mean val/code_error.
exec "$(dirname "$0")/../study.sh" infogan_paper -m experiment=infogan_paper model.lambda_cont=1.0,0.1 seed=1,2,3 "$@"
