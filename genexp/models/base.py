"""The contract every generative model keeps, and the few helpers manual optimization needs."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class GenerativeModule(pl.LightningModule):
    """A LightningModule trained by manual optimization that can `sample()`.

    - `sample(n, labels=None, generator=None)` returns images [n, 1, 28, 28] in [0, 1]; callbacks,
      metrics and tests rely on this alone.
    - `gen_step` counts generator (or model) updates. Under manual optimization
      `trainer.global_step` counts *optimizer* steps (k + 1 per batch for a GAN with k D-steps),
      so budgets and schedules that mean "updates of the model" read this buffer; it is a buffer,
      so it travels in every checkpoint.
    - noise is seeded per rank (`setup`): with one seed on every rank, each GPU would draw the
      same z and a DDP run would be a 1-GPU run with a bigger bill.
    """

    monitor: str | None = None  # metric for the "best" checkpoint, e.g. "val/loss"
    monitor_mode: str = "min"
    primary_metric: str | None = None  # what `genexp.run.run` returns (Optuna optimises it)
    is_conditional: bool = False  # whether sample() uses `labels`

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.register_buffer("gen_step", torch.zeros((), dtype=torch.long), persistent=True)

    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None):
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        # Same weights on every rank (DDP broadcasts them anyway), different noise on each.
        if self.trainer is not None and self.trainer.world_size > 1:
            torch.manual_seed(torch.initial_seed() + self.global_rank)

    def step_optimizer(self, opt, loss: torch.Tensor) -> None:
        """zero_grad -> manual_backward -> step: one update of one optimizer."""
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Name the class in the checkpoint, so `python -m genexp.sample` can load any model's file.
        Subclasses that save more call super() first."""
        checkpoint["genexp_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
