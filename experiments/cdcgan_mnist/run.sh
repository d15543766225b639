#!/usr/bin/env bash
# The CPU acceptance run of the conditional DCGAN (5 epochs), its FID floor, the grids, and samples for
# outside evaluation. From the repository root; GENEXP_DATA_DIR points at the MNIST IDX files.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # shared 2-core machine: 1 thread avoids OpenMP spin contention
run=outputs/cdcgan_cpu5
date -u +"start %FT%TZ" > experiments/cdcgan_mnist/train.log
nice /usr/bin/time -f "wall %e s" .venv/bin/python -m genexp experiment=cdcgan_cpu5 hydra.run.dir=$run \
  >> experiments/cdcgan_mnist/train.log 2>&1
cp $run/metrics.json experiments/cdcgan_mnist/metrics.json
cp $run/samples/epoch_001.png experiments/cdcgan_mnist/epoch_001.png
cp $run/samples/epoch_005.png experiments/cdcgan_mnist/epoch_005.png
nice .venv/bin/python experiments/cdcgan_mnist/fid_floor.py
nice .venv/bin/python -m genexp.sample $run/checkpoints/last.ckpt n=10000 out=$run/samples_10k.npz
