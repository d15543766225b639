"""What a sweep leaves when some of its jobs fail: each failed job's own record, and one report at
the end (a Hydra callback) that names them and makes the sweep exit non-zero."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from genexp.record import write_json

log = logging.getLogger(__name__)


def record_failure(run_dir: Path, reason: str) -> None:
    """A job that failed before or during training: its metrics.json says so (status kept when the run
    already wrote one, e.g. "diverged")."""
    path = run_dir / "metrics.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    if data.get("status") in (None, "running"):
        data["status"] = "failed"
    data["reason"] = data.get("reason") or reason
    write_json(data, path)


def job_statuses(sweep_dir: Path) -> list[tuple[str, str, str]]:
    """(job dir name, status, reason) for every job dir (one holding .hydra/) of a sweep."""
    out = []
    for d in sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()):
        try:
            data = json.loads((d / "metrics.json").read_text())
        except (OSError, ValueError):
            data = {"status": "missing", "reason": "no metrics.json"}
        out.append((d.name, data.get("status", "unknown"), data.get("reason") or ""))
    return out


class SweepReport(Callback):
    """At the end of a multirun: one line per failed job and a non-zero exit if any job did not finish."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        jobs = job_statuses(Path(config.hydra.sweep.dir))
        bad = [(name, status, reason) for name, status, reason in jobs if status != "finished"]
        for name, status, reason in bad:
            print(f"genexp: job {name} {status}: {reason}", file=sys.stderr)
        print(
            f"genexp: sweep {config.hydra.sweep.dir}: {len(jobs) - len(bad)} of {len(jobs)} jobs finished",
            file=sys.stderr,
        )
        if bad:
            sys.exit(1)
