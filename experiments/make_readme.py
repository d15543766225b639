"""Regenerate README.md's model table from the studies' result files: the table is never edited by hand.

    python experiments/make_readme.py            # rewrite the lines between the markers (atomically)
    python experiments/make_readme.py --check    # exit 1, printing a diff, if README.md is not up to date

The table lives in README.md between the lines `<!-- models:begin -->` and `<!-- models:end -->`; the
tables other scripts wrote (`COPIED`: the default runs, the speed benchmarks) between
`<!-- <name>:begin -->` and `<!-- <name>:end -->`.
Each folder `experiments/<study>/` holding a `study.yaml` contributes rows; studies are sorted by
`order` (then by folder name), rows keep their order. study.yaml:

    order: 10                                  # position of the study in the table (default 1000)
    rows:
      - model: "RBM 784-500, PCD-1"            # first column (required)
        preset: "experiment=rbm_best"          # second column, shown as code
        results: results.json                  # written by `python -m genexp.summary --json` (or a flat
                                               #   {key: number} JSON: one group of one run), relative
                                               #   to the study dir; missing file: "not run yet"
        group: null                            # group label in results.json (null: the first group)
        metrics:                               # shown as "label **value**", joined by "; "
          - {key: test/loglik, label: "test log-lik. (nats)", fmt: ".2f"}   # fmt: a Python format spec
        anchor: "-86.34 (Salakhutdinov & Murray 2008)"                      # published number, or null
        pictures: {samples: samples.png}       # link text -> path relative to the study dir

A value is "mean ± std (n=N)" when the group has N > 1 finished jobs. The wall time column is the
group's mean `wall_time_s`. A results.md beside results.json is linked from the result cell.
Exit codes: 0 done / up to date, 1 (--check) README.md is stale, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import sys
from pathlib import Path

import yaml

from genexp.record import write_atomic

log = logging.getLogger("make_readme")
BEGIN, END = "<!-- models:begin -->", "<!-- models:end -->"
HEADER = [
    "| model | `model=` / preset | result (measured) | published anchor | wall time | pictures |",
    "|---|---|---|---|---|---|",
]
STUDY_KEYS = {"order", "rows"}
ROW_KEYS = {"model", "preset", "results", "group", "metrics", "anchor", "pictures"}
METRIC_KEYS = {"key", "label", "fmt"}


class ReadmeError(Exception):
    """Bad input: one line `make_readme: error: ...`, exit code 2."""


def _esc(s: object) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _check_keys(what: str, d: object, allowed: set[str]) -> dict:
    if not isinstance(d, dict):
        raise ReadmeError(f"{what}: expected a mapping, got {type(d).__name__}")
    if unknown := set(d) - allowed:
        raise ReadmeError(f"{what}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return d


def wall_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} h"


def _value(stat: dict, fmt: str, where: str) -> str:
    if stat.get("mean") is None:
        return "n/a"
    try:
        v = format(stat["mean"], fmt)
        return v if stat["n"] <= 1 else f"{v} ± {format(stat['std'], fmt)} (n={stat['n']})"
    except (TypeError, ValueError) as e:
        raise ReadmeError(f"{where}: cannot format {stat} with {fmt!r}: {e}") from None


def _flat_group(data: dict) -> dict:
    """A flat record (e.g. a shipped feature network's JSON: {"test_acc": 0.996, ...}) as one group."""
    metrics = {k: {"mean": v, "std": None, "n": 1} for k, v in data.items() if isinstance(v, (int, float))}
    return {"label": None, "n": 1, "n_failed": 0, "metrics": metrics}


def render_row(study: Path, root: Path, i: int, row: dict) -> str:
    where = f"{study / 'study.yaml'}: row {i + 1}"
    row = _check_keys(where, row, ROW_KEYS)
    if "model" not in row:
        raise ReadmeError(f"{where}: 'model' is required")
    rel = study.relative_to(root).as_posix()
    preset = f"`{row['preset']}`" if row.get("preset") else "—"
    anchor = _esc(row["anchor"]) if row.get("anchor") else "—"
    pics = ", ".join(f"[{_esc(k)}]({rel}/{v})" for k, v in (row.get("pictures") or {}).items()) or "—"
    for v in (row.get("pictures") or {}).values():
        if not (study / v).exists():
            log.warning("%s: picture %s not found", where, study / v)
    result, wall = "not run yet", "—"
    path = study / row["results"] if row.get("results") else None
    if path is not None and path.is_file():
        try:
            data = json.loads(path.read_text())
            groups = data["groups"] if "groups" in data else [_flat_group(data)]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ReadmeError(f"{path}: not a genexp.summary --json file ({e})") from None
        label = row.get("group")
        group = next((g for g in groups if label is None or g["label"] == label), None)
        if group is None:
            raise ReadmeError(f"{where}: no group {label!r} in {path}; groups: {[g['label'] for g in groups]}")
        if group["n"] == 0:
            result = f"no finished job ({group['n_failed']} did not finish)"
        else:
            parts = []
            for m in row.get("metrics") or []:
                m = _check_keys(f"{where}: metric", m, METRIC_KEYS)
                if m.get("key") not in group["metrics"]:
                    raise ReadmeError(f"{where}: metric {m.get('key')!r} not in {path}")
                value = _value(group["metrics"][m["key"]], m.get("fmt", ".4g"), where)
                parts.append(f"{_esc(m.get('label', m['key']))} **{value}**")
            result = "; ".join(parts) or "done"
            if path.with_suffix(".md").is_file():
                result += f" ([results]({rel}/{path.with_suffix('.md').relative_to(study).as_posix()}))"
            wall = wall_time((group.get("wall_time_s") or {}).get("mean"))
    return f"| {_esc(row['model'])} | {preset} | {result} | {anchor} | {wall} | {pics} |"


def render_table(root: Path) -> list[str]:
    """The table's lines, from every experiments/*/study.yaml under root."""
    studies = []
    for f in sorted((root / "experiments").glob("*/study.yaml")):
        try:
            spec = _check_keys(str(f), yaml.safe_load(f.read_text()) or {}, STUDY_KEYS)
        except (OSError, yaml.YAMLError) as e:
            raise ReadmeError(f"cannot read {f}: {str(e).splitlines()[0]}") from None
        studies.append((spec.get("order", 1000), f.parent.name, f.parent, spec.get("rows") or []))
    if not studies:
        log.warning("no study.yaml under %s", root / "experiments")
    lines = list(HEADER)
    for _, _, study, rows in sorted(studies, key=lambda s: (s[0], s[1])):
        lines += [render_row(study, root, i, row) for i, row in enumerate(rows)]
    return lines


# tables copied as they are: README markers <!-- name:begin/end --> -> (file, the script that writes it)
COPIED = {
    "defaults": ("experiments/defaults/table.md", "experiments/defaults/run.py"),
    "bench": ("experiments/bench/results.md", "experiments/bench/bench.py"),
    "gpu_bench": ("experiments/gpu/results/bench.md", "experiments/gpu/run.sh"),
    "gpu_epochs": ("experiments/gpu/results/epochs.md", "experiments/gpu/run.sh"),
    "ssgan": ("experiments/ssgan/table.md", "experiments/ssgan/table.py"),
    "ssgan_vs_baseline": ("experiments/ssgan/vs_baseline.md", "experiments/ssgan/table.py"),
    "ssgan_vs_baseline_best": ("experiments/ssgan/vs_baseline_best.md", "experiments/ssgan/table.py"),
    "likelihood": ("experiments/likelihood/results.md", "experiments/likelihood/table.py"),
    "fashion": ("experiments/fashion_mnist/table.md", "experiments/fashion_mnist/table.py"),
    "pixelcnn_sampling": ("experiments/pixelcnn_mnist/sampling.md", "experiments/pixelcnn_mnist/sampling.py"),
    "rnnrbm": ("experiments/rnnrbm/table.md", "experiments/rnnrbm/table.py"),
}


def copied_table(root: Path, name: str) -> list[str]:
    """The table lines (`|...`) of a result file a script wrote."""
    rel, script = COPIED[name]
    path = root / rel
    if not path.is_file():
        raise ReadmeError(f"{path} is missing: run {script}")
    return [line for line in path.read_text().splitlines() if line.startswith("|")]


def updated_readme(text: str, table: list[str], begin: str = BEGIN, end: str = END) -> str:
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ReadmeError(f"README.md needs exactly one line {begin} followed by one line {end}")
    return "".join(lines[: starts[0] + 1] + [t + "\n" for t in table] + lines[ends[0] :])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="the repository root")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 with a diff if README.md is stale")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    readme = args.root / "README.md"
    try:
        old = readme.read_text()
        new = updated_readme(old, render_table(args.root))
        for name in COPIED:
            if f"<!-- {name}:begin -->" in new:
                new = updated_readme(
                    new, copied_table(args.root, name), f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
                )
        if args.check:
            if new != old:
                diff = difflib.unified_diff(old.splitlines(True), new.splitlines(True), "README.md", "regenerated")
                sys.stdout.writelines(diff)
                print(
                    f"make_readme: {readme} is not up to date: run python experiments/make_readme.py", file=sys.stderr
                )
                return 1
            log.info("%s is up to date", readme)
        elif new != old:
            write_atomic(readme, new)
            log.info("rewrote the model table in %s", readme)
        else:
            log.info("%s already up to date", readme)
    except (ReadmeError, OSError) as e:
        print(f"make_readme: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
