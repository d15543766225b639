#!/usr/bin/env bash
# The mode-collapse study (issue 10): experiment=mode_collapse with the noise-predicting network off
# (lambda_ent 0) and on (lambda_ent 1), 3 seeds each, one Hydra multirun; results.md has mean ± std of
# every sample metric per lambda_ent (genexp.summary groups the jobs by their overrides less the seed).
exec "$(dirname "$0")/../study.sh" mode_collapse -m experiment=mode_collapse model.lambda_ent=0,1 seed=1,2,3 "$@"
