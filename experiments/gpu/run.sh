#!/usr/bin/env bash
# The GPU proof of issue 9, one prepared script for a lent GPU machine (at most 9 min, typically 6-7).
# Every step has its own time limit, and a failed step does not stop the next:
#   1. bench: every model's training speed in genexp and in a plain loop (experiments/bench) on the GPU;
#   2. the chapter's RBM recipe (experiment=rbm_tutorial: PCD-15, 15 epochs) at batch 100 and at the
#      chapter's batch 20, each for as many epochs as fit in its minutes, data on the GPU; the epoch
#      times are in its metrics.json (epoch_time_s);
#   3. the chapter's cDCGAN (experiment=cdcgan_chapter: its widths, 45 epochs) for as many epochs as fit;
#   4. every model under trainer=gpu trainer.precision=bf16-mixed data.on_device=true (a smoke multirun);
#   5. a 2-job multirun of the RBM on the GPU (one dir per job, the sweep's result lines).
# Everything goes to OUT (default experiments/gpu/results), with nvidia-smi and steps.txt.
#   bash experiments/gpu/run.sh                   # on the GPU machine
#   GPU_DRY=1 bash experiments/gpu/run.sh         # the same commands on CPU, smoke-sized (a rehearsal)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-experiments/gpu/results}
PY=${PY:-.venv/bin/python}
export GENEXP_DATA_DIR=${GENEXP_DATA_DIR:-$PWD/../shared/data/mnist} PYTHONWARNINGS=ignore
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)  # absolute: the studies' copies below change directory
if [ -n "${GPU_DRY:-}" ]; then
  dev=(trainer=cpu debug=smoke data=fake) ; on_device=() ; bench=(--device cpu --models rbm --seconds 0.5)
  export OMP_NUM_THREADS=1
else
  dev=(trainer=gpu) ; on_device=(data.on_device=true) ; bench=(--device cuda --seconds 1 --warmup 10)
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
fi
: >> "$OUT/steps.txt"
step() {  # name, time limit (s), then the command; its console log and exit code are kept
  local name=$1 limit=$2; shift 2
  [[ -z "${STEPS:-}" || " $STEPS " == *" $name "* ]] || return 0  # STEPS="bench bf16_all": only those
  local start=$SECONDS
  timeout --signal=TERM --kill-after=20 "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $? in $(( SECONDS - start )) s" | tee -a "$OUT/steps.txt"
}
hms() { printf '00:00:%02d:%02d' "$(( $1 / 60 ))" "$(( $1 % 60 ))"; }  # Lightning's max_time from seconds
max_time() { echo "+trainer.max_time=$(hms "$1")"; }

step bench 220 "$PY" experiments/bench/bench.py "${bench[@]}" --repeats 1 --out "$OUT"
step rbm_b100 70 "$PY" -m genexp experiment=rbm_tutorial data.batch_size=100 "${dev[@]}" "${on_device[@]}" \
  logger=csv test=false "$(max_time 45)" hydra.run.dir="$OUT/rbm_b100"
step rbm_b20 50 "$PY" -m genexp experiment=rbm_tutorial "${dev[@]}" "${on_device[@]}" logger=csv test=false \
  "$(max_time 30)" hydra.run.dir="$OUT/rbm_b20"
step cdcgan_chapter 100 "$PY" -m genexp experiment=cdcgan_chapter "${dev[@]}" "${on_device[@]}" logger=csv \
  "$(max_time 60)" hydra.run.dir="$OUT/cdcgan_chapter"
models=$(ls conf/model/*.yaml | xargs -n1 basename | sed 's/\.yaml$//' | paste -sd, -)
if [ -n "${GPU_DRY:-}" ]; then bf16=(trainer=cpu) ; else bf16=(trainer=gpu trainer.precision=bf16-mixed data.on_device=true) ; fi
step bf16_all 100 "$PY" -m genexp -m "model=$models" "${bf16[@]}" debug=smoke logger=csv hydra.sweep.dir="$OUT/bf16_all"
step multirun 70 "$PY" -m genexp -m model=rbm "${dev[@]}" seed=1,2 trainer.max_epochs=1 eval_size.ais_betas=2000 \
  logger=csv hydra.sweep.dir="$OUT/multirun"
# the studies of issues 10 and 11 at once on the one GPU (each a Hydra multirun whose jobs run in parallel
# processes: hydra/launcher=joblib_local), each job stopped by its time budget (then tested):
#   infogan_paper: InfoGAN at the paper's widths, lambda_cont 1 and 0.1 x 3 seeds (6 jobs, 20 epochs);
#   ssgan: the semi-supervised GAN's label sweep, N = 20, 50, 100, 200 x 3 seeds (12 jobs);
#   ssgan_conv: its convolutional variant, N = 100 x 3 seeds (3 jobs).
# Their tables (study.sh) and run dirs (no checkpoints) go to $OUT/studies.tgz.
# Measured on the H100 (2026-11-26): 21 jobs at once made each ~6x slower than one alone (an SSGAN epoch
# 45 s against 7.5 s: the processes time-share the GPU and 16 cores), so 4.5 min gave 6-11 epochs per job.
if [ -n "${GPU_DRY:-}" ]; then st=(trainer=cpu debug=smoke data=fake) ; else st=(trainer=gpu data.on_device=true) ; fi
study_step() {  # study, jobs, time budget per job (s), step limit (s)
  step "$1" "$4" experiments/"$1"/run.sh "${st[@]}" hydra/launcher=joblib_local hydra.launcher.n_jobs="$2" \
    "$(max_time "$3")"
}
if [[ -z "${STEPS:-}" || " $STEPS " == *" studies "* ]]; then
  STEPS="${STEPS:-} infogan_paper ssgan ssgan_conv"
  study_step infogan_paper 6 "${STUDY_S:-270}" 400 &
  study_step ssgan 12 "${STUDY_S:-270}" 400 &
  study_step ssgan_conv 3 "${STUDY_S:-270}" 400 &
  wait
  # one archive (the device tool brings back a limited number of files): the run dirs less checkpoints
  # and W&B, and the studies' logs and tables; locally: tar -xzf studies.tgz, then
  # PUBLISH_ONLY=1 experiments/study.sh <study> rebuilds each table with this checkout's provenance
  tar --exclude='*.ckpt' --exclude=wandb -czf "$OUT/studies.tgz" outputs/studies/{infogan_paper,ssgan,ssgan_conv} \
    experiments/{infogan_paper,ssgan,ssgan_conv}
fi
# Issues 12 and 11 on a lent GPU (2026-11-27), run only when STEPS names them:
#   STEPS="pixelcnn_large ssgan_long" bash experiments/gpu/run.sh
#   pixelcnn_large: experiment=pixelcnn_large (128 maps, 12 blocks), cosine lr over 15 epochs, capped at 6 min
#     of training; test/loglik = the exact NLL of the fixed binarized test set (issue 12's larger preset);
#   ssgan_long: the semi-supervised GAN at 100 labels x 3 seeds (experiments/ssgan_long), each job given
#     7 min, beside it on the same GPU.
# Both run at once; their run dirs (no checkpoints) come back as $OUT/session5.tgz; locally
# tar -xzf session5.tgz, then PUBLISH_ONLY=1 experiments/study.sh pixelcnn_large (and ssgan_long).
if [[ " ${STEPS:-} " == *" pixelcnn_large "* || " ${STEPS:-} " == *" ssgan_long "* ]]; then
  if [ -n "${GPU_DRY:-}" ]; then px=(trainer=cpu debug=smoke data=fake trainer.max_epochs=1) ; else px=(trainer=gpu) ; fi
  step pixelcnn_large "${PIXELCNN_LIMIT:-480}" experiments/pixelcnn_large/run.sh "${px[@]}" trainer.max_epochs="${PIXELCNN_EPOCHS:-15}" \
    trainer.max_time="$(hms "${PIXELCNN_S:-360}")" &
  step ssgan_long "${SSGAN_LIMIT:-520}" experiments/ssgan_long/run.sh "${st[@]}" hydra/launcher=joblib_local \
    hydra.launcher.n_jobs=3 "++trainer.max_time=$(hms "${SSGAN_S:-420}")" &
  wait
  tar --exclude='*.ckpt' --exclude=wandb -czf "$OUT/session5.tgz" outputs/studies/{pixelcnn_large,ssgan_long} \
    experiments/{pixelcnn_large,ssgan_long}
fi
# Issues 12 and 10 on a lent GPU (session of 2026-11-27, second), run only when STEPS names session6:
#   infogan_long: InfoGAN at the paper's widths, 3 seeds, 40 epochs or INFOGAN_S seconds each, all at once;
#   pixelcnn_probe: 2 epochs of 100 batches of experiment=pixelcnn_large (bf16, beside infogan_long), whose
#     warm epoch time sets how many epochs fit in PIXELCNN_S (the cosine lr must reach 0: a run cut by
#     max_time mid-schedule would report an un-annealed model);
#   pixelcnn_large: that many epochs (at most 60), then the test-end exact NLL of the binarized test set.
# Their run dirs (no checkpoints) come back as $OUT/session6.tgz; locally tar -xzf session6.tgz, then
# PUBLISH_ONLY=1 experiments/study.sh pixelcnn_large (and infogan_long).
if [[ " ${STEPS:-} " == *" session6 "* ]]; then
  STEPS="${STEPS} infogan_long pixelcnn_probe pixelcnn_large"
  if [ -n "${GPU_DRY:-}" ]; then px=(trainer=cpu debug=smoke data=fake) ; else px=(trainer=gpu) ; fi
  step infogan_long "${INFOGAN_LIMIT:-540}" experiments/infogan_long/run.sh "${st[@]}" hydra/launcher=joblib_local \
    hydra.launcher.n_jobs=3 "++trainer.max_time=$(hms "${INFOGAN_S:-420}")" &
  step pixelcnn_probe 120 "$PY" -m genexp experiment=pixelcnn_large "${px[@]}" trainer.max_epochs=2 \
    trainer.limit_train_batches=100 trainer.check_val_every_n_epoch=100 test=false logger=csv \
    hydra.run.dir="$OUT/pixelcnn_probe"
  epochs=$("$PY" - "$OUT/pixelcnn_probe/metrics.json" "${PIXELCNN_S:-400}" <<'EOF'
import json, math, sys
t100 = json.load(open(sys.argv[1]))["epoch_time_s"][-1]  # 100 batches, warm, no validation
epoch = t100 * math.ceil(50000 / 128) / 100 + 5  # + the val pass and the sample grid (a few s on a GPU)
print(max(1, min(60, int(float(sys.argv[2]) / epoch))))
EOF
  ) || epochs=10
  echo "pixelcnn_large: $epochs epochs planned" | tee -a "$OUT/steps.txt"
  step pixelcnn_large "${PIXELCNN_LIMIT:-500}" experiments/pixelcnn_large/run.sh "${px[@]}" \
    trainer.max_epochs="$epochs" trainer.max_time="$(hms $(( ${PIXELCNN_S:-400} + 40 )))"
  wait
  tar --exclude='*.ckpt' --exclude=wandb -czf "$OUT/session6.tgz" outputs/studies/{pixelcnn_large,infogan_long} \
    experiments/{pixelcnn_large,infogan_long} "$OUT/pixelcnn_probe/metrics.json"
fi
# Issue 10 on a lent GPU (prepared 2026-11-27, third session), run only when STEPS names session8:
#   infogan_restarts: InfoGAN at the paper's widths, 40 epochs or INFOGAN_S seconds, 3 restarts of each of
#   3 seeds (run seeds SEEDS, 1-9), all at once; experiments/infogan_restarts/keep_best.py keeps each
#   seed's restart with the highest val/code_mi (no label). Run dirs (no checkpoints) come back as
#   $OUT/session8.tgz; locally tar -xzf session8.tgz, PUBLISH_ONLY=1 experiments/study.sh infogan_restarts,
#   then python experiments/infogan_restarts/keep_best.py.
if [[ " ${STEPS:-} " == *" session8 "* ]]; then
  STEPS="${STEPS} infogan_restarts"
  step infogan_restarts "${INFOGAN_LIMIT:-540}" experiments/infogan_restarts/run.sh "${st[@]}" \
    hydra/launcher=joblib_local hydra.launcher.n_jobs=9 "++trainer.max_time=$(hms "${INFOGAN_S:-450}")"
  "$PY" experiments/infogan_restarts/keep_best.py > "$OUT/infogan_restarts_kept.md" 2>&1
  tar --exclude='*.ckpt' --exclude=wandb -czf "$OUT/session8.tgz" outputs/studies/infogan_restarts \
    experiments/infogan_restarts
fi
for d in rbm_b100 rbm_b20 cdcgan_chapter; do
  "$PY" -m genexp.summary "$OUT/$d" --title "$d" --out "$OUT/$d.md" --json "$OUT/$d.json" > /dev/null 2>&1 || true
done
for d in bf16_all multirun; do
  "$PY" -m genexp.summary "$OUT/$d" --title "$d" --out "$OUT/$d.md" --json "$OUT/$d.json" > /dev/null 2>&1 || true
done
"$PY" - "$OUT" <<'EOF' | tee "$OUT/epochs.md"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| run | epochs done | seconds per epoch (each) | status |\n|---|---:|---|---|")
for name in ("rbm_b100", "rbm_b20", "cdcgan_chapter"):
    f = out / name / "metrics.json"
    if f.is_file():
        m = json.loads(f.read_text())
        times = m.get("epoch_time_s") or []
        print(f"| {name} | {len(times)} | {', '.join(f'{t:.2f}' for t in times)} | {m.get('status')} |")
EOF
cat "$OUT/steps.txt"
