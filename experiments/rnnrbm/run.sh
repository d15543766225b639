#!/usr/bin/env bash
# Issue 14: the RNN-RBM on the Bach chorales (experiment=rnnrbm_bach) and, on the same frames, a plain RBM
# 88-150 (model=rbm on data.frames=true: the frames of the same pieces as rows) and the independent-Bernoulli
# model (closed form, in table.py); then table.py writes experiments/rnnrbm/table.md with the paper's figures
# beside them. One torch thread each, one after the other (this 2-core CPU is shared).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PY:-.venv/bin/python}
out=experiments/rnnrbm
# 1. the RNN-RBM (results.md / results.json / train.log by the shared study script)
experiments/study.sh rnnrbm experiment=rnnrbm_bach "$@"
# 2. the plain RBM on the frames: CD-15 like the RNN-RBM's RBM, SGD, 40 epochs of 100 frames a batch;
#    its test log-likelihood per frame by AIS (100 chains, 14500 temperatures: one RBM)
rm -rf outputs/studies/rnnrbm_rbm
date -u +"start %FT%TZ" > "$out/train_rbm.log"
nice -n 10 "$PY" -m genexp model=rbm data=bach_chorales data.frames=true data.batch_size=100 model.n_visible=88 \
  model.n_hidden=150 model.k=15 model.persistent=false model.lr=0.05 model.momentum=0.5 model.weight_decay=1e-4 \
  model.lr_schedule=linear trainer.max_epochs=40 logger=csv callbacks.progress_bar.refresh_rate=0 \
  hydra.run.dir=outputs/studies/rnnrbm_rbm >> "$out/train_rbm.log" 2>&1
date -u +"end %FT%TZ" >> "$out/train_rbm.log"
# 3. the table (the independent-Bernoulli row computed there), the sample's piano roll and MIDI file
"$PY" "$out/table.py"
