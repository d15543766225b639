"""Run every model exactly as a newcomer would — `python -m genexp model=<m>`, no other override — and
write the README's table of default runs: wall time, status, the headline test metric, the last
sample grid.

    GENEXP_DATA_DIR=../shared/data/mnist .venv/bin/python experiments/defaults/run.py [--jobs 2] [model ...]

Runs go to outputs/studies/defaults/<model>/ (one torch thread each, `nice`; --jobs runs that many at
once), the console logs to experiments/defaults/<model>.log. results.json keeps one record per model,
so a subset can be re-run; table.md (the README block, copied by experiments/make_readme.py) and
results.md are rewritten from all records each time. A run longer than --budget-min is marked over
budget: the newcomer issue wants every default within ~10 minutes on a laptop CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from genexp.record import git_state, write_atomic, write_json  # noqa: E402

# (key, label, format) of the test metrics shown, in this order, where a model reports them
SHOWN = [
    ("test/loglik", "log-lik. (nats)", ".2f"),
    ("test/error", "test error", ".2%"),
    ("test/acc", "test acc", ".2%"),
    ("test/recon_sq_error", "squared error / image", ".2f"),
    ("test/cond_acc", "cond_acc", ".3f"),
    ("test/fid_mnist_cnn", "fid_mnist_cnn", ".1f"),
    ("test/modes_covered", "modes", ".0f"),
    ("test/code_error", "code error", ".1%"),
    ("test/loglik_step", "log-lik. per time step (nats)", ".2f"),
    ("test/frame_acc", "frame accuracy", ".1%"),
]


EXTRA = ("reconstructions.png", "test_errors.png")
LAST = ("stages_epoch_*.png", "codes_cont0_epoch_*.png")  # the GANs' other pictures: the last of each


def run_one(model: str) -> dict:
    run_dir = ROOT / "outputs" / "studies" / "defaults" / model
    shutil.rmtree(run_dir, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.setdefault("GENEXP_DATA_DIR", str((ROOT / ".." / "shared" / "data" / "mnist").resolve()))
    cmd = ["nice", "-n", "10", sys.executable, "-m", "genexp", f"model={model}", f"hydra.run.dir={run_dir}"]
    start = time.monotonic()
    with open(HERE / f"{model}.log", "w") as log:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - start
    record = {"model": model, "command": f"python -m genexp model={model}", "exit_code": rc, "wall_s": seconds}
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        m = json.loads(metrics_file.read_text())
        record.update(status=m["status"], metrics={k: m[k] for k, _, _ in SHOWN if m.get(k) is not None})
    # the last sample grid, and the family's other telling picture: reconstructions, a classifier's mistakes
    grids = sorted((run_dir / "samples").glob("epoch_*.png"))
    found = [("", grids[-1])] if grids else []
    found += [(f"_{p.stem}", p) for name in EXTRA if (p := run_dir / "samples" / name).is_file()]
    found += [
        (f"_{pattern.split('_epoch')[0]}", ps[-1])
        for pattern in LAST
        if (ps := sorted((run_dir / "samples").glob(pattern)))
    ]
    record["pictures"] = []
    for suffix, src in found:
        shutil.copyfile(src, HERE / f"{model}{suffix}.png")
        record["pictures"].append(f"{model}{suffix}.png")
    print(f"{model:<16} {seconds:7.1f} s  exit {rc}  {record.get('metrics')}", flush=True)
    return record


def render(records: dict, budget_s: float) -> tuple[str, str]:
    git = git_state()
    head = [
        "| `python -m genexp model=` | wall time | status | test metrics | pictures: last sample grid, "
        "reconstructions, mistakes, stages, codes |",
        "|---|---:|---|---|---|",
    ]
    rows = []
    for model, r in sorted(records.items()):
        shown = "; ".join(
            f"{label} **{format(r['metrics'][k], fmt)}**" for k, label, fmt in SHOWN if k in r.get("metrics", {})
        )
        over = " (over budget)" if r["wall_s"] > budget_s else ""
        pic = " ".join(f'<img src="experiments/defaults/{p}" height="120">' for p in r.get("pictures", [])) or "—"
        rows.append(
            f"| `{model}` | {r['wall_s'] / 60:.1f} min{over} | {r.get('status', 'exit ' + str(r['exit_code']))} "
            f"| {shown or '—'} | {pic} |"
        )
    stamp = (
        f"Written by `experiments/defaults/run.py` (git {str(git['git_commit'])[:10]}; {platform.machine()}, "
        "one torch thread per run, two runs at a time on 2 cores, W&B offline; wall time of the whole command, "
        "evaluation included)."
    )
    table = "\n".join([*head, *rows]) + "\n"
    return table, "# Default runs, one per model\n\n" + stamp + "\n\n" + table.replace("experiments/defaults/", "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="models to run (default: every conf/model/*.yaml)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (each one torch thread)")
    ap.add_argument("--budget-min", type=float, default=10.0, help="the time a default run should stay within")
    args = ap.parse_args()
    every = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
    if unknown := sorted(set(args.models) - set(every)):
        print(f"defaults: error: unknown model(s) {unknown}; valid: {every}", file=sys.stderr)
        return 2
    results = HERE / "results.json"
    records = json.loads(results.read_text()) if results.is_file() else {}
    records = {k: v for k, v in records.items() if k in every}
    with ThreadPoolExecutor(args.jobs) as pool:
        for record in pool.map(run_one, args.models or every):
            records[record["model"]] = record
            write_json(records, results)
    table, md = render(records, args.budget_min * 60)
    write_atomic(HERE / "table.md", table)
    write_atomic(HERE / "results.md", md)
    print(md)
    return 0 if all(r.get("status") == "finished" for r in records.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
