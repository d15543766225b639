#!/bin/bash
# The chapter's RBM tutorial recipe (conf/experiment/rbm_tutorial.yaml) and its two figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 GENEXP_DATA_DIR=${GENEXP_DATA_DIR:-../shared/data/mnist}
RUN=${RUN:-outputs/rbm_tutorial/run1}
OUT=experiments/rbm_tutorial
nice .venv/bin/python -m genexp experiment=rbm_tutorial hydra.run.dir=$RUN 2>&1 | tee $OUT/train.log
cp $RUN/metrics.json $OUT/metrics.json
cp $RUN/samples/negative_particles.png $OUT/samples.png
cp "$(ls $RUN/samples/filters_epoch_*.png | tail -1)" $OUT/filters.png
