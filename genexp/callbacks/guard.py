"""Divergence: a NaN/Inf loss or parameter stops training with one line, before a bad checkpoint exists."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from genexp import GenexpError


class Diverged(GenexpError):
    """Training produced a non-finite loss or parameter (metrics.json status "diverged")."""


class DivergenceGuard(pl.Callback):
    """Checks the loss terms a model's `training_step` returns (a dict of detached tensors) and its
    parameters every `every_n_steps` batches and at every epoch end (before the epoch's checkpoint is
    written: Lightning runs checkpoint callbacks last). A non-finite value raises `Diverged` naming the
    model, epoch, step and loss term (or parameter); the checkpoint callback then keeps the last good
    last.ckpt. Checking every step would cost a device sync per step on a GPU."""

    def __init__(self, every_n_steps: int = 10):
        self.every_n_steps = every_n_steps

    def _check(self, trainer, pl_module, losses) -> None:
        where = f"{type(pl_module).__name__} diverged at epoch {trainer.current_epoch}, step {trainer.global_step}"
        if isinstance(losses, torch.Tensor):
            losses = {"loss": losses}
        for key, value in (losses or {}).items():
            if isinstance(value, torch.Tensor) and not bool(torch.isfinite(value.detach()).all()):
                raise Diverged(f"{where}: train/{key} = {float(value.detach().float().mean())}")
            if isinstance(value, float) and not math.isfinite(value):
                raise Diverged(f"{where}: train/{key} = {value}")
        for name, p in pl_module.named_parameters():
            if not bool(torch.isfinite(p.detach()).all()):
                raise Diverged(f"{where}: parameter {name} is not finite")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.every_n_steps > 0 and (batch_idx + 1) % self.every_n_steps == 0:
            self._check(trainer, pl_module, outputs)

    def on_train_epoch_end(self, trainer, pl_module):
        self._check(trainer, pl_module, None)
