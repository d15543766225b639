"""What a sweep leaves when some of its jobs fail: each failed job's own record, and one report at
the end (a Hydra callback) that names them and makes the sweep exit non-zero."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict

from genexp.record import write_json
from genexp.summary import launch_dir

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


def job_statuses(sweep_dir: Path) -> list[dict]:
    """One record per job dir (one holding .hydra/) of a sweep: name, status, reason, the validation
    metric and the job's own overrides."""
    out = []
    for d in sorted(p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()):
        try:
            data = json.loads((d / "metrics.json").read_text())
        except (OSError, ValueError):
            data = {"status": "missing", "reason": "no metrics.json"}
        try:
            overrides = " ".join(yaml.safe_load((launch_dir(d) / "overrides.yaml").read_text()) or [])
        except (OSError, yaml.YAMLError):
            overrides = ""
        val = data.get("val_metric") or {}
        out.append(
            {
                "name": d.name,
                "status": data.get("status", "unknown"),
                "reason": data.get("reason") or "",
                "val": f"{val['name']}={val['value']:.5g}" if isinstance(val.get("value"), (int, float)) else "",
                "overrides": overrides,
            }
        )
    return out


class SweepReport(Callback):
    """At the end of a multirun, whatever the launcher (jobs of submitit or joblib print elsewhere): one
    line per job with its status, validation metric and overrides, then a count; a non-zero exit if any
    job did not finish."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        # resolve the sweep dir (${now:}, a random suffix) once, before the launcher pickles the config:
        # a job that submitit requeues after preemption recomposes its dir from it and finds its own
        # last.ckpt there, instead of starting over in a dir with a new timestamp
        with open_dict(config):
            config.hydra.sweep.dir = str(config.hydra.sweep.dir)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        jobs = job_statuses(Path(config.hydra.sweep.dir))
        for j in jobs:
            result = j["val"] if j["status"] == "finished" else j["reason"]
            print(f"genexp: job {j['name']} {j['status']}: {result}  [{j['overrides']}]", file=sys.stderr)
        n_ok = sum(j["status"] == "finished" for j in jobs)
        print(f"genexp: sweep {config.hydra.sweep.dir}: {n_ok} of {len(jobs)} jobs finished", file=sys.stderr)
        if n_ok < len(jobs):
            sys.exit(1)
