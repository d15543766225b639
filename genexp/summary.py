"""Run / sweep directories -> one results table (markdown, and JSON with --json), never typed by hand.

    python -m genexp.summary outputs/rbm/2024-01-01_12-00-00 multirun/2024-01-02/09-00-00 \\
        --out experiments/rbm/results.md --json experiments/rbm/results.json --metrics test/loglik_ais

Jobs are grouped by their overrides minus `seed=` and `hydra.*`; each group gets mean ± sample std of
every metric over its finished jobs. Exit code 0: every job finished; 1: some did not (the table is
still written); 2: bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from genexp.record import write_atomic

log = logging.getLogger("genexp.summary")
PROG = "genexp.summary"


class SummaryError(Exception):
    """Bad input: reported as one line `genexp.summary: error: ...`, exit code 2."""


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError) as e:
        raise SummaryError(f"cannot read {path}: {str(e).splitlines()[0]}") from None


def _override_key(o: str) -> str:
    return o.split("=", 1)[0].lstrip("+~")


def group_overrides(overrides: list[str]) -> list[str]:
    """The overrides that define a group: all but `seed=...`, `ckpt_path=...` (a resume, not a setting)
    and `hydra.*`."""
    return [o for o in overrides if (k := _override_key(o)) not in ("seed", "ckpt_path") and not k.startswith("hydra.")]


def launch_dir(run_dir: Path) -> Path:
    """The .hydra dir of a run's latest launch: a resumed run keeps its first launch's .hydra/ and saves each
    resume's config and overrides in .hydra/resume_<time>/ (genexp/__main__.py), and the run finished with
    the newest one's (a longer budget, say)."""
    resumes = sorted(p for p in (run_dir / ".hydra").glob("resume_*") if (p / "overrides.yaml").is_file())
    return resumes[-1] if resumes else run_dir / ".hydra"


def load_run(dir: str | os.PathLike) -> dict:
    """One run dir -> {name, dir, overrides, group, seed, status, reason, wall_time_s, epochs, metrics,
    provenance, config_path}, the overrides and config those of its latest launch (`launch_dir`)."""
    d = Path(dir)
    launch = launch_dir(d)
    overrides = [str(o) for o in (_read_yaml(launch / "overrides.yaml") or [])]
    config = _read_yaml(launch / "config.yaml") or {}
    data: dict = {"status": "missing"}
    if (d / "metrics.json").is_file():
        try:
            data = json.loads((d / "metrics.json").read_text())
        except (OSError, ValueError) as e:
            raise SummaryError(f"cannot read {d / 'metrics.json'}: {e}") from None
        if not isinstance(data, dict):
            raise SummaryError(f"{d / 'metrics.json'} is not a JSON object")
    seeds = [o.split("=", 1)[1] for o in overrides if _override_key(o) == "seed" and "=" in o]
    seed = config.get("seed") if isinstance(config, dict) else None
    metrics = {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {
        "name": d.name,
        "dir": str(d),
        "overrides": overrides,
        "group": " ".join(group_overrides(overrides)) or "defaults",
        "seed": seed if seed is not None else (seeds[-1] if seeds else None),
        "status": str(data.get("status", "unknown")),
        "reason": data.get("reason"),
        "wall_time_s": metrics.pop("wall_time_s", None),
        "epochs": data.get("epochs") if isinstance(data.get("epochs"), int) else None,
        "metrics": {k: v for k, v in metrics.items() if "/" in k},
        "provenance": data.get("provenance") or {},
        "config_path": str(launch / "config.yaml"),
    }


def _natural(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))]


def find_runs(paths: list[str | os.PathLike]) -> list[dict]:
    """Run dirs (with .hydra/) given directly or found below sweep dirs, loaded in natural order."""
    dirs: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise SummaryError(f"{p}: no such directory")
        found = []
        for root, subdirs, _ in os.walk(p):
            if ".hydra" in subdirs:
                found.append(Path(root))
                subdirs.clear()  # a run dir's own subfolders hold no runs
            subdirs[:] = [s for s in subdirs if not s.startswith(".") and s != "wandb"]
        if not found:
            raise SummaryError(f"{p}: no run directories (with .hydra/) found")
        dirs += sorted(found, key=_natural)
    runs = [load_run(d) for d in dict.fromkeys(dirs)]
    names = [r["name"] for r in runs]
    for r in runs:  # the same job name from two sweeps: tell them apart by the sweep's name
        if names.count(r["name"]) > 1:
            r["name"] = f"{Path(r['dir']).parent.name}/{r['name']}"
    return runs


def _stats(values: list[float]) -> dict:
    n = len(values)
    if n == 0 or not all(map(math.isfinite, values)):
        return {"mean": None, "std": None, "n": n}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if n > 1 else None, "n": n}


def summarize(runs: list[dict], metrics: list[str] | None = None) -> dict:
    """Group the runs; mean / sample std / n of each metric (and of wall_time_s) over finished jobs."""
    done = [r for r in runs if r["status"] == "finished"]
    if metrics is None:
        metrics = sorted({k for r in done for k in r["metrics"] if k.startswith(("test/", "val/", "last/test/"))})
    groups: dict[str, dict] = {}
    for r in runs:
        g = groups.setdefault(r["group"], {"label": r["group"], "overrides": group_overrides(r["overrides"])})
        g.setdefault("runs", [])
        g["runs"].append(r)
    for k in metrics:
        if not any(k in r["metrics"] for r in done):
            log.warning("metric %s: in no finished job", k)
    out = []
    for g in groups.values():
        members = g.pop("runs")
        ok = [r for r in members if r["status"] == "finished"]
        g["n"], g["n_failed"] = len(ok), len(members) - len(ok)
        g["metrics"] = {k: _stats([r["metrics"][k] for r in ok if k in r["metrics"]]) for k in metrics}
        g["wall_time_s"] = _stats([r["wall_time_s"] for r in ok if r["wall_time_s"] is not None])
        out.append(g)
    prov = [r["provenance"] for r in runs]
    nets = {(p["feature_net"].get("name"), p["feature_net"].get("sha256")) for p in prov if p.get("feature_net")}
    dirty = [p["git_dirty"] for p in prov if "git_dirty" in p]
    provenance = {
        "made": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commits": sorted({p["git_commit"] for p in prov if p.get("git_commit")}),
        "git_dirty": any(dirty) if dirty else None,
        "feature_nets": [{"name": n, "sha256": s} for n, s in sorted(nets, key=str)],
        "configs": [r["config_path"] for r in runs],  # the latest launch's (a resume's config beside the first)
    }
    keys = ("name", "dir", "group", "seed", "status", "reason", "wall_time_s", "epochs")
    jobs = [{k: r[k] for k in keys} for r in runs]
    for j, r in zip(jobs, runs, strict=True):
        j["metrics"] = {k: r["metrics"][k] for k in metrics if k in r["metrics"]}
    return {"title": "Results", "provenance": provenance, "metric_keys": list(metrics), "groups": out, "jobs": jobs}


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def _cell(s: dict) -> str:
    if s["mean"] is None:
        return "—" if s["n"] == 0 else "nan"
    return _num(s["mean"]) + (f" ± {_num(s['std'])}" if s["n"] > 1 else "")


def to_markdown(summary: dict) -> str:
    """The summary as markdown: provenance header, per-group metric table, per-job table."""
    p, groups, jobs = summary["provenance"], summary["groups"], summary["jobs"]
    commits = ", ".join(f"`{c[:10]}`" for c in p["git_commits"]) or "unknown"
    dirty = {True: " (dirty: uncommitted changes)", False: " (clean)", None: ""}[p["git_dirty"]]
    nets = ", ".join(f"{n['name']} sha256 `{(n['sha256'] or '?')[:12]}`" for n in p["feature_nets"]) or "—"
    configs = ", ".join(f"[{j['name']}]({c})" for j, c in zip(jobs, p["configs"], strict=True))
    n_ok = sum(j["status"] == "finished" for j in jobs)
    lines = [f"# {summary['title']}", ""]
    lines += [f"- made: {p['made']} by `python -m genexp.summary`", f"- git commit: {commits}{dirty}"]
    lines += [f"- feature net: {nets}", f"- configs: {configs}", f"- jobs: {n_ok} of {len(jobs)} finished", ""]
    lines += ["## Metrics (mean ± sample std over finished jobs)", ""]
    lines += ["| metric | " + " | ".join(f"`{g['label']}`" for g in groups) + " |", "|---" * (len(groups) + 1) + "|"]
    rows = [("finished / not", [f"{g['n']} / {g['n_failed']}" for g in groups])]
    rows += [("wall time (s)", [_cell(g["wall_time_s"]) for g in groups])]
    rows += [(f"`{k}`", [_cell(g["metrics"][k]) for g in groups]) for k in summary["metric_keys"]]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    lines += ["", "## Jobs", "", "| job | group | seed | status | wall time (s) |", "|---|---|---|---|---|"]
    for j in jobs:
        status = j["status"] + (f": {j['reason']}" if j.get("reason") else "")
        status = status.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {j['name']} | `{j['group']}` | {j['seed']} | {status} | {_num(j['wall_time_s'])} |")
    return "\n".join(lines) + "\n"


def _strict(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    return [_strict(v) for v in x] if isinstance(x, (list, tuple)) else x


def _relative(summary: dict, base: Path) -> None:
    """Config paths and job dirs relative to the results file's folder (where possible)."""
    try:
        summary["provenance"]["configs"] = [os.path.relpath(c, base) for c in summary["provenance"]["configs"]]
        for j in summary["jobs"]:
            j["dir"] = os.path.relpath(j["dir"], base)
    except ValueError:  # another drive (Windows): keep the paths as given
        pass


def main(argv: list[str] | None = None, prog: str = f"python -m {PROG}") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", metavar="PATH", help="run dirs (with .hydra/) or sweep dirs holding them")
    ap.add_argument("--out", metavar="FILE.md", help="also write the markdown here (atomically)")
    ap.add_argument("--json", metavar="FILE.json", help="write a machine-readable summary here (atomically)")
    ap.add_argument("--metrics", help="comma-separated metric keys, in order (default: every test/ and val/ key)")
    ap.add_argument("--title", default="Results", help="the markdown title")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        runs = find_runs(args.paths)
        keys = [k.strip() for k in args.metrics.split(",") if k.strip()] if args.metrics else None
        summary = summarize(runs, keys)
        summary["title"] = args.title
        results = args.out or args.json
        _relative(summary, Path(results).resolve().parent if results else Path.cwd())
        md = to_markdown(summary)
        sys.stdout.write(md)
        if args.out:
            write_atomic(args.out, md)
            log.info("wrote %s", args.out)
        if args.json:
            write_atomic(args.json, json.dumps(_strict(summary), indent=2, allow_nan=False) + "\n")
            log.info("wrote %s", args.json)
    except (SummaryError, OSError) as e:
        print(f"{prog.removeprefix('python -m ')}: error: {e}", file=sys.stderr)
        return 2
    bad = [j["name"] for j in summary["jobs"] if j["status"] != "finished"]
    if bad:
        print(
            f"{prog.removeprefix('python -m ')}: {len(bad)} of {len(runs)} jobs did not finish: {', '.join(bad)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
