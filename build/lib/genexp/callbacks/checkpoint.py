"""Checkpoints for every model: last.ckpt each epoch (and on Ctrl-C or a crash), best.ckpt by the
model's own validation metric and direction (`val_metric`, `val_mode`)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from pytorch_lightning.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


class Checkpoint(ModelCheckpoint):
    """ModelCheckpoint that reads what to monitor from the model, so one callbacks config serves every
    model. An epoch whose validation metric is missing (a DBN still pretraining a lower layer) or not
    finite ranks nothing; last.ckpt is written regardless."""

    def setup(self, trainer, pl_module, stage):
        if self.monitor is None and getattr(pl_module, "val_metric", ""):
            self.monitor, self.mode = pl_module.val_metric, pl_module.val_mode
            self.kth_value = torch.tensor(torch.inf if self.mode == "min" else -torch.inf)
        elif self.monitor is None:
            self.save_top_k = 0  # nothing to rank by: a "best" file would only be the latest
        super().setup(trainer, pl_module, stage)

    def _save_topk_checkpoint(self, trainer, monitor_candidates):
        value = monitor_candidates.get(self.monitor) if self.monitor else None
        if self.monitor and (value is None or not math.isfinite(float(value))):
            return  # not comparable now: keep the best so far
        super()._save_topk_checkpoint(trainer, monitor_candidates)

    def on_train_epoch_end(self, trainer, pl_module):
        # Lightning >= 2.x writes last.ckpt only when a top-k file was written at the same step; a run
        # whose validation metric stopped improving would keep an old last.ckpt. Write it every epoch.
        super().on_train_epoch_end(trainer, pl_module)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            if self.last_model_path and self._last_global_step_saved == trainer.global_step:
                return  # already written at this step
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_exception(self, trainer, pl_module, exception):
        interrupted = isinstance(exception, KeyboardInterrupt)
        if self.dirpath and trainer.state.fn == "fit" and (interrupted or trainer.global_step > 0):
            path = Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
            trainer.save_checkpoint(path)  # Lightning writes through an fsspec transaction (temp + rename)
            log.warning("%s: saved %s", type(exception).__name__, path)
