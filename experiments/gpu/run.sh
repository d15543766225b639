#!/usr/bin/env bash
# The GPU proof of issue 9, as one prepared script for a lent GPU machine (budget: < 8 min on one H100):
#   1. the chapter's RBM recipe at full size (experiment=rbm_tutorial: PCD-15, batch 20, 15 epochs on the
#      training split), data kept on the GPU;
#   2. the chapter's cDCGAN (experiment=cdcgan_chapter: its widths, 45 epochs) for as many epochs as fit
#      in CDCGAN_MINUTES (Lightning's max_time); epochs done and wall time in its metrics.json;
#   3. a 2-job multirun on the GPU (one dir per job, the sweep's result lines).
# Everything goes to OUT (default experiments/gpu/results), with nvidia-smi and a results table.
#   bash experiments/gpu/run.sh                   # on the GPU machine
#   GPU_DRY=1 bash experiments/gpu/run.sh         # the same commands on CPU, smoke-sized (a rehearsal)
# Not yet in it: the genexp-vs-plain-loop benchmark of every model (experiments/bench, still to write).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-experiments/gpu/results}
PY=${PY:-.venv/bin/python}
CDCGAN_MINUTES=${CDCGAN_MINUTES:-4}
mkdir -p "$OUT"
if [ -n "${GPU_DRY:-}" ]; then
  dev=(trainer=cpu debug=smoke data=fake) ; on_device=() ; export OMP_NUM_THREADS=1
else
  dev=(trainer=gpu) ; on_device=(data.on_device=true)
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
fi
step() {  # name, then the genexp arguments; the console log and the exit code are kept
  local name=$1; shift
  local start=$SECONDS
  "$PY" -m genexp "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $? in $(( SECONDS - start )) s" | tee -a "$OUT/steps.txt"
}
: > "$OUT/steps.txt"
step rbm_tutorial experiment=rbm_tutorial "${dev[@]}" "${on_device[@]}" logger=csv hydra.run.dir="$OUT/rbm_tutorial"
step cdcgan_chapter experiment=cdcgan_chapter "${dev[@]}" "${on_device[@]}" logger=csv \
  "+trainer.max_time=00:00:$(printf %02d "$CDCGAN_MINUTES"):00" hydra.run.dir="$OUT/cdcgan_chapter"
step multirun -m model=rbm "${dev[@]}" seed=1,2 logger=csv hydra.sweep.dir="$OUT/multirun"
for d in rbm_tutorial cdcgan_chapter; do
  "$PY" -m genexp.summary "$OUT/$d" --title "$d on $(head -c 60 "$OUT/nvidia-smi.txt" 2>/dev/null || echo cpu)" \
    --out "$OUT/$d.md" --json "$OUT/$d.json" || true
done
"$PY" -m genexp.summary "$OUT/multirun" --title "2-job multirun" --out "$OUT/multirun.md" --json "$OUT/multirun.json" || true
cat "$OUT/steps.txt"
