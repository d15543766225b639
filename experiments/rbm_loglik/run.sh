#!/bin/bash
# RBM 784-500 test log-likelihood by AIS: train conf/experiment/rbm_best.yaml, then two independent
# AIS runs (seeds 1 and 2, 100 chains, 14500 betas) on its last checkpoint.
# One thread per process: on a shared 2-core CPU, two threads per process were up to 10x slower.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 GENEXP_DATA_DIR=${GENEXP_DATA_DIR:-../shared/data/mnist}
RUN=${RUN:-outputs/rbm_best/run1}
OUT=experiments/rbm_loglik
nice .venv/bin/python -m genexp experiment=rbm_best hydra.run.dir=$RUN 2>&1 | tee $OUT/train.log
for seed in 1 2; do
  nice .venv/bin/python -m genexp.metrics.ais $RUN/checkpoints/last.ckpt --chains 100 --betas 14500 \
    --seed $seed --json $OUT/ais_seed$seed.json 2>&1 | tee $OUT/ais_seed$seed.log
done
cp $RUN/metrics.json $OUT/metrics.json
cp $RUN/samples/negative_particles.png $OUT/
cp "$(ls $RUN/samples/filters_epoch_*.png | tail -1)" $OUT/filters.png
