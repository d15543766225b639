"""Best of k restarts by a label-free validation number: the restarts of a study (seeds 1..k are seed 1's,
k+1..2k seed 2's, ...) are grouped, each group keeps the run with the highest `--by` (default val/code_mi)
and reports its `--report` (default test/code_error); mean ± sample std over groups, and the failure rate
over all runs (`--fail`: test/digits_coded below 10, two digits sharing their codes). Reads
experiments/STUDY/results.json (experiments/study.sh), prints the table and writes experiments/STUDY/selected.md.

    python experiments/infogan_restarts/keep_best.py [--study infogan_restarts] [--restarts 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from genexp.record import write_atomic  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="infogan_restarts")
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--by", default="val/code_mi", help="kept: the run with the highest value")
    parser.add_argument("--report", default="test/code_error")
    parser.add_argument("--fail", default="test/digits_coded", help="a run fails when this is below 10")
    args = parser.parse_args(argv)
    study = HERE.parent / args.study
    jobs = [j for j in json.loads((study / "results.json").read_text())["jobs"] if j["status"] == "finished"]
    jobs = [j for j in jobs if args.by in j["metrics"] and args.report in j["metrics"]]
    if not jobs:
        print(f"genexp: error: no finished job of {study}/results.json has both {args.by} and {args.report}")
        return 2
    groups: dict[int, list[dict]] = {}
    for j in sorted(jobs, key=lambda j: j["seed"]):
        groups.setdefault((j["seed"] - 1) // args.restarts + 1, []).append(j)
    lines = [
        f"# {args.study}: of each seed's {args.restarts} restarts, the one with the highest `{args.by}`",
        "",
        f"| seed | restarts (run seed: {args.by}, {args.report}) | kept | its {args.report} |",
        "|---:|---|---:|---:|",
    ]
    kept = []
    for seed, runs in groups.items():
        best = max(runs, key=lambda j: j["metrics"][args.by])
        kept.append(best["metrics"][args.report])
        listing = "; ".join(f"{j['seed']}: {j['metrics'][args.by]:.4f}, {j['metrics'][args.report]:.4f}" for j in runs)
        lines.append(f"| {seed} | {listing} | {best['seed']} | {kept[-1]:.4f} |")
    std = f" ± {statistics.stdev(kept):.4f}" if len(kept) > 1 else ""
    failed = [j["seed"] for j in jobs if j["metrics"].get(args.fail, 10) < 10]
    every = [j["metrics"][args.report] for j in jobs]
    lines += [
        "",
        f"- kept runs' `{args.report}`: **{statistics.mean(kept):.4f}{std}** over {len(kept)} seeds "
        f"(every run: {statistics.mean(every):.4f} over {len(every)}).",
        f"- runs whose codes merge digits (`{args.fail}` < 10): {len(failed)} of {len(jobs)} "
        f"(run seeds {', '.join(map(str, failed)) or '-'}).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_atomic(study / "selected.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
