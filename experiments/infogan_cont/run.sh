#!/usr/bin/env bash
# InfoGAN with the continuous codes' term weighted down (lambda_cont 0.1; Chen et al. 2016 advise a smaller
# lambda for continuous codes), 3 seeds in parallel. One value chosen before the run from the paper's
# advice and from experiments/infogan_mnist's picture (the continuous code carried digit identity), not tuned.
exec "$(dirname "$0")/../study.sh" infogan_cont -m experiment=infogan_mnist model.lambda_cont=0.1 seed=1,2,3 \
  hydra/launcher=joblib_local hydra.launcher.n_jobs=3 "$@"
