"""Logging that survives a resume: a CSV history appended across `ckpt_path=` resumes, with no gap and no
duplicate row, and the epoch means of the interrupted epoch kept whole.

What Lightning 2.6 loses on a resume, and what travels here instead (saved and restored by
`genexp.models.base.GenexpModule`'s checkpoint hooks):

- Its `CSVLogger` deletes an existing `metrics.csv` when the new run first writes
  (`lightning_fabric/loggers/csv_logs.py`, `_ExperimentWriter._check_log_dir_exists`): a resumed run
  starts the history over. `CSVLogger` here keeps the rows written before the checkpoint (the checkpoint
  records how many: `csv_log.rows`), drops the ones written after it (the resumed run writes them again),
  and rewrites its header atomically (temp file + rename) when new columns appear.
- The row a checkpoint's own step logs after it is saved: a checkpoint written at a train batch end
  precedes that batch's step metrics, one written at a train epoch end precedes the epoch's means
  (`_TrainingEpochLoop.advance` / `_FitLoop.on_advance_end` log after the callbacks). A resumed run
  does not replay that batch or epoch end, so the checkpoint carries the row (`csv_log.pending`).
- The epoch accumulators of `self.log(..., on_epoch=True)` (`_ResultCollection`, not in any checkpoint):
  a run resumed mid-epoch would average the epoch's metrics over the batches after the resume only.
  The sums and counts travel per rank (`epoch_sums`) and are added back when the resumed run first logs
  each metric: the same additions as an uninterrupted run, so the epoch means are bitwise equal.
"""

from __future__ import annotations

import csv
import logging
import os
import tempfile
from typing import Any

import torch
from lightning_fabric.utilities.apply_func import convert_tensors_to_scalars
from pytorch_lightning.loggers import CSVLogger as _LightningCSVLogger
from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.utilities import rank_zero_only

log = logging.getLogger(__name__)


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, minus the deletion at start: what happens to an existing metrics.csv is
    decided at the first write, when it is known whether this run resumed (`resume` called) or not."""

    def __init__(self, log_dir: str) -> None:
        self._resume: dict | None = None  # {"rows": int | None, "pending": [...]} once `resume` is called
        self._started = False
        self.rows = 0  # rows logged by the run so far (kept on resume + written here + buffered)
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # Lightning deletes metrics.csv here; decided in _start
        pass

    def resume(self, rows: int | None, pending: list[dict]) -> None:
        """Called before the resumed run logs anything: keep the first `rows` rows of the file (all rows
        with a step below the first step this run logs when `rows` is None), then `pending`."""
        self._resume = {"rows": rows, "pending": pending}

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        if self._resume is not None and self._resume["rows"] is None and step is not None:
            self._resume["first_step"] = step  # the fallback cut of a checkpoint without a row count
        super().log_metrics(metrics_dict, step)
        self.rows += 1

    def _read(self) -> tuple[list[str], list[dict]]:
        if not self._fs.isfile(self.metrics_file_path):
            return [], []
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)

    def _write_all(self, keys: list[str], rows: list[dict]) -> None:
        """The whole file at once: a temp file beside it, renamed over it (never half a history)."""
        fd, tmp = tempfile.mkstemp(dir=self.log_dir, prefix=".metrics-", suffix=".csv")
        try:
            with os.fdopen(fd, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=keys)
                writer.writeheader()
                writer.writerows(rows)
            os.replace(tmp, self.metrics_file_path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _start(self) -> None:
        """A fresh run replaces an old metrics.csv (as Lightning does); a resumed run keeps its past."""
        self._started = True
        if self._resume is None:
            if self._fs.isfile(self.metrics_file_path):
                self._fs.rm_file(self.metrics_file_path)
            return
        keys, rows = self._read()
        n = self._resume["rows"]
        if n is None:  # no row count in the checkpoint: cut at the first step this run logs
            first = self._resume.get("first_step")
            n = sum(1 for _ in rows) if first is None else sum(1 for r in rows if _step(r) < first)
        if len(rows) < n:
            log.warning("metrics.csv has %d rows, the checkpoint counted %d: some history is missing", len(rows), n)
        kept = rows[:n]
        pending = [{**p["metrics"], "step": p["step"]} for p in self._resume["pending"]]
        self.metrics_keys = sorted(set(keys) | {k for r in pending for k in r})
        self._write_all(self.metrics_keys, kept + pending)
        # rows logged by this run: the kept ones and the pending ones come before what it logs now
        self.rows += len(kept) + len(pending)

    def save(self) -> None:
        if not self._started:
            self._start()
        if not self.metrics:
            return
        new_keys = self._record_new_keys()
        if new_keys and self._fs.isfile(self.metrics_file_path):  # a new column: rewrite, atomically
            _, rows = self._read()
            self._write_all(self.metrics_keys, rows + self.metrics)
        else:
            file_exists = self._fs.isfile(self.metrics_file_path)
            with self._fs.open(self.metrics_file_path, mode="a" if file_exists else "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                if not file_exists:
                    writer.writeheader()
                writer.writerows(self.metrics)
        self.metrics = []


def _step(row: dict) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


class CSVLogger(_LightningCSVLogger):
    """Lightning's CSVLogger, appending across resumes (see the module docstring): a run resumed with
    `ckpt_path=` into the same run dir continues `metrics.csv` where its checkpoint stood."""

    @property
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            if rank_zero_only.rank != 0:
                return super().experiment  # a dummy experiment, as Lightning gives other ranks
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    def checkpoint_state(self) -> dict:
        """What a checkpoint keeps of this history: how many rows were logged before it."""
        exp = self._experiment
        return {"rows": exp.rows if isinstance(exp, _AppendingWriter) else 0}

    @rank_zero_only
    def resume(self, state: dict | None, pending: list[dict]) -> None:
        """Continue the history of a checkpoint (`state` from `checkpoint_state`, None if it has none)."""
        self.experiment.resume(None if state is None else int(state["rows"]), pending)


# ---- what a checkpoint carries for the logs: called by GenexpModule's checkpoint hooks ---------------
def _at_train_batch_end(trainer) -> bool:
    """Saving inside on_train_batch_end: the batch ran, its step metrics are not logged yet (the same
    progress test Lightning uses for RESTARTED_ON_TRAIN_BATCH_END)."""
    total = trainer.fit_loop.epoch_loop.batch_progress.total
    return trainer.training and total.processed == total.ready and total.completed == total.processed - 1


def _at_train_epoch_end(trainer) -> bool:
    """Saving inside on_train_epoch_end: the epoch's means are not logged yet."""
    current = trainer.fit_loop.epoch_progress.current
    return (
        trainer.training
        and trainer._logger_connector._first_loop_iter is None
        and current.processed == current.completed + 1
        and not _at_train_batch_end(trainer)
    )


def pending_rows(trainer) -> list[dict]:
    """The row Lightning logs right after this checkpoint is written, which a resumed run would not
    log again: [{"step", "metrics"}] (or []). Under DDP every rank must call it (epoch means sync)."""
    if not trainer.loggers or trainer.state.fn != "fit":
        return []
    connector, epoch_loop = trainer._logger_connector, trainer.fit_loop.epoch_loop
    if _at_train_batch_end(trainer):
        if not (connector.should_update_logs or trainer.fast_dev_run):
            return []
        step = epoch_loop._batches_that_stepped
    elif _at_train_epoch_end(trainer):
        step = epoch_loop._batches_that_stepped - 1  # as _FitLoop.on_advance_end logs them
    else:
        return []
    metrics = connector.metrics["log"]
    if not metrics:
        return []
    row = convert_tensors_to_scalars(metrics)
    row.setdefault("epoch", trainer.current_epoch)
    return [{"step": int(step), "metrics": {k: _plain(v) for k, v in row.items()}}]


def _plain(v: Any) -> Any:
    return v if isinstance(v, (int, float, str, bool)) or v is None else float(v)


def log_state(trainer) -> dict | None:
    """checkpoint["csv_log"]: the row count of this run's CSV history and the pending row."""
    csv_loggers = [lg for lg in trainer.loggers if isinstance(lg, CSVLogger)]
    if not csv_loggers:
        return None
    return {**csv_loggers[0].checkpoint_state(), "pending": pending_rows(trainer)}


def resume_logs(trainer, state: dict | None) -> None:
    """Hand a checkpoint's `csv_log` to this run's CSV loggers (before they log anything)."""
    for lg in trainer.loggers:
        if isinstance(lg, CSVLogger):
            lg.resume(state, (state or {}).get("pending", []))


# ---- epoch accumulators of self.log(on_epoch=True) --------------------------------------------------
def mid_epoch(trainer) -> bool:
    """Saving while a training epoch runs (a train batch end, or an interrupt between batches)."""
    current = trainer.fit_loop.epoch_progress.current
    return trainer.training and current.started == current.processed + 1


def epoch_sums(trainer) -> dict[str, list[float]]:
    """{result key: [value, count]}: this rank's running sums of the epoch's on_epoch training metrics,
    saved mid-epoch; {} elsewhere (at an epoch end the means are in the pending row)."""
    if not mid_epoch(trainer):
        return {}
    out = {}
    for key, m in trainer.fit_loop.epoch_loop._results.items():
        if m.is_tensor and m.meta.on_epoch and m.value.numel() == 1 and not m.has_reset:
            count = m.cumulated_batch_size if m.meta.is_mean_reduction else torch.tensor(0)
            out[key] = [float(m.value), float(count)]
    return out


def add_epoch_sum(module, name: str, saved: dict) -> None:
    """After `module.log(name, ...)` created this epoch's accumulator in the resumed run: add what the
    interrupted run had summed before its checkpoint (once per metric)."""
    key = f"{module._current_fx_name}.{name}"
    results = module.trainer.fit_loop.epoch_loop._results
    if key not in saved or key not in results:
        return
    value, count = saved.pop(key)
    m = results[key]
    v = torch.tensor(value, dtype=m.value.dtype, device=m.value.device)
    if m.meta.is_mean_reduction:
        m.value = m.value + v  # the same addition as the uninterrupted run's (a + b == b + a)
        m.cumulated_batch_size = m.cumulated_batch_size + int(count)
    elif m.meta.is_sum_reduction:
        m.value = m.value + v
    elif m.meta.is_max_reduction or m.meta.is_min_reduction:
        m.value = m.meta.reduce_fx(m.value, v)


def wandb_run_id(trainer) -> str | None:
    """The id of the run's W&B run (rank 0, where the run exists), else None."""
    if not trainer.is_global_zero:
        return None
    return next((str(lg.experiment.id) for lg in trainer.loggers if isinstance(lg, _LightningWandbLogger)), None)


class WandbLogger(_LightningWandbLogger):
    """Lightning's W&B logger minus one line of noise: it always passes `anonymous=None` to `wandb.init`,
    and W&B (>= 0.19) warns "The anonymous setting has no effect" for any value but unset."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
