"""Checkpoints for every model: last.ckpt each epoch, every N minutes / N steps, and on Ctrl-C, SIGTERM or
a crash; best.ckpt by the model's own validation metric and direction (`val_metric`, `val_mode`). No
file is ever written with non-finite weights, and every file goes through the Trainer's CheckpointIO
plugin (`genexp.ckpt.AtomicCheckpointIO`: temp file, fsync, rename)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class Checkpoint(ModelCheckpoint):
    """ModelCheckpoint that reads what to monitor from the model, so one callbacks config serves every
    model. An epoch whose validation metric is missing (a DBN still pretraining a lower layer) or not
    finite ranks nothing; last.ckpt is written regardless.

    - `every_n_minutes`: also write last.ckpt at the first train batch end when that much wall time has
      passed since last.ckpt was last written (one `time.monotonic()` per batch; in a multi-process run
      rank 0's clock decides, broadcast each batch).
    - `every_n_train_steps`: also write last.ckpt once `trainer.global_step` has advanced that much
      since it was last written (under manual optimization a step is an optimizer step: k + 1 per batch
      for a GAN with k D-steps). Unlike ModelCheckpoint's argument of that name, this writes only
      last.ckpt: best.ckpt is still ranked once per validation, on fresh metrics. A mid-epoch last.ckpt
      is saved where Lightning's own step checkpoints are (train batch end), so `ckpt_path=` resumes
      mid-epoch (the rest of the epoch's batches; Lightning warns that a plain DataLoader restarts
      its order).
    - On Ctrl-C, SIGTERM (Lightning raises SIGTERMException at the next batch end) or an exception in
      `fit` after at least one batch trained: last.ckpt, unless the parameters are not finite (then the
      previous last.ckpt stays and one warning says so). In a multi-process run only SIGTERM and Ctrl-C
      save, as Lightning's own OnExceptionCheckpoint does (they reach every rank, and Lightning syncs
      SIGTERM across ranks at batch starts; an exception on one rank would leave the others waiting
      in the save's barrier).
    - best.ckpt is never written for a missing or non-finite metric, nor with non-finite parameters.
    - `enable_version_counter` defaults to False: a resumed or re-used run dir keeps writing last.ckpt
      and best.ckpt (never last-v1.ckpt, which `ckpt_path=last` would not find).
    """

    def __init__(
        self,
        *args,
        every_n_minutes: float | None = None,
        every_n_train_steps: int | None = None,
        enable_version_counter: bool = False,
        **kwargs,
    ):
        # every_n_train_steps is not passed on: ModelCheckpoint would then rank best.ckpt on stale metrics
        # mid-epoch and stop ranking at epoch ends (its every_n_epochs becomes 0)
        super().__init__(*args, enable_version_counter=enable_version_counter, **kwargs)
        if every_n_minutes is not None and not every_n_minutes > 0:
            raise ValueError(f"every_n_minutes={every_n_minutes} must be > 0 (or null: off)")
        if every_n_train_steps is not None and every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps={every_n_train_steps} must be >= 0 (0 or null: off)")
        self.every_n_minutes = every_n_minutes
        self.last_every_n_train_steps = int(every_n_train_steps or 0)
        self._last_saved_time = time.monotonic()  # when last.ckpt was last written (or training started)
        self._last_saved_step: int | None = None  # global_step of that write
        self._last_saves = 0  # how many last.ckpt writes so far
        self._trained = False  # a train batch ended in this fit: there is something new to save
        self._nonfinite_warned = False

    # ---- what to monitor -------------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage):
        if self.monitor is None and getattr(pl_module, "val_metric", ""):
            self.monitor, self.mode = pl_module.val_metric, pl_module.val_mode
            self.kth_value = torch.tensor(torch.inf if self.mode == "min" else -torch.inf)
        elif self.monitor is None:
            self.save_top_k = 0  # nothing to rank by: a "best" file would only be the latest
        super().setup(trainer, pl_module, stage)

    def on_train_start(self, trainer, pl_module):
        super().on_train_start(trainer, pl_module)
        self._last_saved_time = time.monotonic()
        self._last_saved_step = trainer.global_step
        self._trained = False

    # ---- finite weights only ---------------------------------------------------------------------------
    @staticmethod
    def _local_finite(trainer) -> bool:
        """All floating parameters of this rank's model finite (one device sync)."""
        flags = [
            torch.isfinite(p.detach()).all() for p in trainer.lightning_module.parameters() if p.is_floating_point()
        ]
        return bool(torch.stack(flags).all()) if flags else True

    @staticmethod
    def _everywhere(trainer, ok: bool) -> bool:
        """`ok` on every rank (a collective in a multi-process run: every rank must ask together)."""
        return trainer.strategy.reduce_boolean_decision(ok, all=True) if trainer.world_size > 1 else ok

    def _warn_nonfinite(self, trainer, what: str) -> None:
        if not self._nonfinite_warned and trainer.is_global_zero:  # one line, from rank 0
            log.warning(
                "%s not written at step %d: the parameters are not finite (NaN/Inf); keeping the previous file",
                what,
                trainer.global_step,
            )
        self._nonfinite_warned = True

    def _refuse_nonfinite(self, trainer, what: str, collective: bool = True) -> bool:
        """True (and one warning per run of bad steps) when the parameters are not finite on some rank
        (`collective=False`: on this rank; DDP keeps the parameters of all ranks equal)."""
        finite = self._local_finite(trainer)
        if finite if not collective else self._everywhere(trainer, finite):
            self._nonfinite_warned = False
            return False
        self._warn_nonfinite(trainer, what)
        return True

    def _is_last(self, filepath) -> bool:
        return Path(filepath).name == f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}" or (
            self.last_model_path and Path(filepath) == Path(self.last_model_path)
        )

    def _save_checkpoint(self, trainer, filepath, collective: bool = True) -> bool:
        """Every write goes through here: False (nothing written) when the parameters are not finite."""
        if self._refuse_nonfinite(trainer, Path(filepath).name, collective):
            return False
        super()._save_checkpoint(trainer, filepath)
        if self._is_last(filepath):
            self._last_saved_time = time.monotonic()
            self._last_saved_step = trainer.global_step
            self._last_saves += 1
        return True

    def _save_topk_checkpoint(self, trainer, monitor_candidates):
        if not self.save_top_k or not self.monitor:
            return super()._save_topk_checkpoint(trainer, monitor_candidates)
        value = monitor_candidates.get(self.monitor)
        comparable = value is not None and math.isfinite(float(value))  # else keep the best so far
        weights_ok = self._local_finite(trainer)  # else rank nothing: the best score needs a file behind it
        # one decision for all ranks (a metric logged without sync_dist may differ between them)
        if not self._everywhere(trainer, comparable and weights_ok):
            if comparable and not weights_ok:
                self._warn_nonfinite(trainer, f"{self.filename or 'best'}{self.FILE_EXTENSION}")
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)

    # ---- when ------------------------------------------------------------------------------------------
    def _save_last_only(self, trainer) -> None:
        """last.ckpt now, without marking the step as saved for ranking (so best.ckpt is still ranked at
        this step's epoch end, after validation)."""
        ranked_step = self._last_global_step_saved
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_global_step_saved = ranked_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # ModelCheckpoint's own hook only acts on every_n_train_steps / train_time_interval, kept off here
        self._trained = True
        if not self.save_last or trainer.fast_dev_run or trainer.sanity_checking:
            return
        if trainer.fit_loop.epoch_loop._num_ready_batches_reached():
            # the epoch's last batch: the epoch-end save follows; a save here would make a resume start
            # in the next epoch and skip this epoch's validation and epoch-end hooks (Lightning 2.6)
            return
        step = trainer.global_step
        n = self.last_every_n_train_steps
        due = n > 0 and step - (self._last_saved_step or 0) >= n
        if self.every_n_minutes is not None:
            late = time.monotonic() - self._last_saved_time >= 60.0 * self.every_n_minutes
            if trainer.world_size > 1:
                late = trainer.strategy.broadcast(late)  # one clock for all ranks: they must save together
            due = due or late
        if due and self._last_saved_step != step:
            self._save_last_only(trainer)
        elif due:
            self._last_saved_time = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module):
        # Lightning >= 2.x writes last.ckpt only when a top-k file was written at the same step; a run
        # whose validation metric stopped improving would keep an old last.ckpt. Write it every epoch.
        saves = self._last_saves
        super().on_train_epoch_end(trainer, pl_module)
        if not self.save_last or self._last_saves > saves:
            return  # off, or written just now (after ranking)
        if trainer.fast_dev_run or trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_exception(self, trainer, pl_module, exception):
        name = type(exception).__name__
        if not self.dirpath or trainer.state.fn != TrainerFn.FITTING or not self._trained:
            return  # nothing trained in this fit: the files on disk are as new as it gets
        world = trainer.world_size
        if world > 1 and not isinstance(exception, (SIGTERMException, KeyboardInterrupt)):
            # every rank says so: the one that raised may not be rank 0
            log.warning("%s in a %d-process run: last.ckpt not written (ranks may be out of step)", name, world)
            return
        if self._last_saved_step == trainer.global_step and self.last_model_path:
            if trainer.is_global_zero:
                log.warning("%s: last.ckpt of step %d is already on disk", name, trainer.global_step)
            return
        path = Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
        try:
            self.last_model_path = str(path)  # before saving: it is part of the saved callback state
            # no collective of ours on the way out (ranks may stop at different points); not finite: one
            # warning, the old file stays
            saved = self._save_checkpoint(trainer, str(path), collective=False)
        except Exception as e:  # never hide the exception that stopped training behind a failed save
            log.warning("%s: could not write %s (%s: %s)", name, path, type(e).__name__, e)
            return
        if saved and trainer.is_global_zero:
            log.warning("%s: saved %s (step %d)", name, path, trainer.global_step)
