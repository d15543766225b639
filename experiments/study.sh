#!/usr/bin/env bash
# The one way to run a study and publish its table:
#
#   experiments/study.sh STUDY [-m] [genexp overrides ...]
#
# trains `python -m genexp [-m] overrides` into outputs/studies/STUDY (a Hydra multirun when -m is given,
# e.g. over seed=1,2,3), keeps the console log in experiments/STUDY/train.log, writes
# experiments/STUDY/results.md and results.json with `python -m genexp.summary` (git commit, config,
# feature-network hash, mean ± std over seeds), and copies the run's final pictures beside them.
# One torch thread and `nice`: several studies share this 2-core machine (OpenMP contention).
# PUBLISH_ONLY=1 experiments/study.sh STUDY: no training, only the table and pictures of the run dirs
# already in outputs/studies/STUDY (e.g. fetched from a GPU machine, console log in train.log).
# RESUME_FROM=OTHER experiments/study.sh STUDY ... ckpt_path=last: STUDY starts as a copy of OTHER's run
# dirs and its jobs resume from their last.ckpt (a longer run of the same jobs; OTHER is left as it was).
# RESUME_FROM=STUDY with ckpt_path=auto: a study spread over several sittings (each job resumes if it had
# started, starts otherwise); the console log is then appended to.
set -euo pipefail
cd "$(dirname "$0")/.."
study=$1; shift
out=experiments/$study
runs=outputs/studies/$study
mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} GENEXP_DATA_DIR=${GENEXP_DATA_DIR:-$(realpath ../shared/data/mnist)}
PY=${PY:-.venv/bin/python}
rc=0
if [ -z "${PUBLISH_ONLY:-}" ]; then
if [ "${RESUME_FROM:-}" != "$study" ]; then  # RESUME_FROM=STUDY itself: its run dirs are kept as they are
  rm -rf "$runs"
  if [ -n "${RESUME_FROM:-}" ]; then cp -a "outputs/studies/$RESUME_FROM" "$runs"; fi
fi
if [ "${1:-}" = "-m" ]; then
  shift
  dirs=(hydra.sweep.dir="$runs")
  multirun=(-m)
else
  dirs=(hydra.run.dir="$runs")
  multirun=()
fi
[ "${RESUME_FROM:-}" = "$study" ] || : > "$out/train.log"
date -u +"start %FT%TZ: python -m genexp ${multirun[*]} $*" >> "$out/train.log"
nice -n 10 "$PY" -m genexp "${multirun[@]}" "$@" "${dirs[@]}" >> "$out/train.log" 2>&1 || rc=$?
date -u +"end %FT%TZ (exit $rc)" >> "$out/train.log"
fi
"$PY" -m genexp.summary "$runs" --title "$study" --out "$out/results.md" --json "$out/results.json" || true
# the final pictures of the (first) run: last sample grid, last filters, chains, reconstructions, errors
first=$(dirname "$(find "$runs" -name metrics.json | sort | head -1)")
last() { find "$first/samples" -name "$1" 2>/dev/null | sort | tail -1 || true; }
for pair in "epoch_*.png:samples.png" "filters_epoch_*.png:filters.png" "negative_particles.png:negative_particles.png" \
            "reconstructions.png:reconstructions.png" "test_errors.png:test_errors.png" \
            "stages_epoch_*.png:stages.png" "codes_cont0_epoch_*.png:codes_cont0.png" "codes_cont1_epoch_*.png:codes_cont1.png"; do
  src=$(last "${pair%%:*}")
  [ -n "$src" ] && cp "$src" "$out/${pair##*:}"
done
exit $rc
