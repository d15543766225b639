"""Faults injected into real CLI runs by tests (added with `+callbacks.x._target_=tests.inject.<Name>`)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class NaNAt(pl.Callback):
    """Sets every parameter to NaN at the start of epoch `epoch` (after the earlier epochs' checkpoints)."""

    value = float("nan")

    def __init__(self, epoch: int = 2):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(self.value)


class CrashAt(pl.Callback):
    """Raises a RuntimeError at the start of epoch `epoch`."""

    def __init__(self, epoch: int = 1):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"injected crash at epoch {self.epoch}")


class DumpWeights(pl.Callback):
    """At fit end, every rank saves its state_dict to `<run dir>/weights_rank<r>.pt` (DDP tests)."""

    def on_fit_end(self, trainer, pl_module):
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save(state, f"{trainer.default_root_dir}/weights_rank{trainer.global_rank}.pt")


class SpoilAt(NaNAt):
    """Zeroes every parameter at the start of epoch `epoch` (finite, unlike NaNAt; a ReLU net stays dead):
    the later epochs' validation scores at chance, below the earlier ones'."""

    value = 0.0
