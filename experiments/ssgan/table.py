"""Issue 11's table: test error (%) of the semi-supervised GAN per number of labelled images N, mean ± std
over seeds, beside the supervised-only baseline on the same N labels, permutation-invariant and
convolutional results in separate rows. Reads the studies' results.json (written by experiments/study.sh
through `python -m genexp.summary`), prints the table and writes experiments/ssgan/table.md atomically.

    python experiments/ssgan/table.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from genexp.record import write_atomic  # noqa: E402

# (row label, study, published anchor for N = 100)
ROWS = [
    ("SSGAN, permutation-invariant MLP, feature matching", "ssgan", "0.93 ± 0.065 (Salimans et al.); 0.795 (Bad GAN)"),
    ("supervised-only baseline, the same MLP on the N labels", "ssgan_baseline", None),
    ("SSGAN, small conv net (not permutation-invariant)", "ssgan_conv", None),
]
NS = (20, 50, 100, 200)


def by_n(study: str) -> dict[int, dict]:
    """{N: group} of a study's results.json (N from its data.labelled override)."""
    f = HERE.parent / study / "results.json"
    if not f.is_file():
        return {}
    groups = {}
    for g in json.loads(f.read_text())["groups"]:
        found = [re.fullmatch(r"data\.labelled=(\d+)", o) for o in g["overrides"]]
        for m in filter(None, found):
            groups[int(m.group(1))] = g
    return groups


def cell(group: dict | None) -> str:
    stat = (group or {}).get("metrics", {}).get("test/error")
    if not stat:
        return "not run"
    std = f" ± {100 * stat['std']:.2f}" if stat["n"] > 1 and stat["std"] is not None else ""
    return f"{100 * stat['mean']:.2f}{std} (n={stat['n']})"


def main() -> int:
    lines = [
        "# Semi-supervised GAN: test error (%) on the official 10k test set, by labelled images N",
        "",
        "Mean ± sample std over seeds (each seed picks its own balanced labelled subset); the final weight",
        "averages are tested (val/error, on the held-out 10k of the training set, is in each results.md).",
        "The SSGAN rows trained 6 epochs each (21 jobs sharing one H100 for 4.5 min; Salimans et al. train",
        "300); the baseline 20 epochs of 500 updates on this CPU.",
        "",
        "| model | " + " | ".join(f"N = {n}" for n in NS) + " | wall time per run (s) | anchor (N = 100) |",
        "|---|" + "---:|" * len(NS) + "---:|---|",
    ]
    for label, study, anchor in ROWS:
        groups = by_n(study)
        walls = [g["wall_time_s"]["mean"] for g in groups.values() if g.get("wall_time_s")]
        wall = f"{sum(walls) / len(walls):.0f}" if walls else "-"
        lines.append(f"| {label} | " + " | ".join(cell(groups.get(n)) for n in NS) + f" | {wall} | {anchor or '-'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_atomic(HERE / "table.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
