"""The contracts every genexp model keeps, and the few helpers manual optimization needs.

Callbacks, metrics, `genexp.run` and the tests talk to a model only through these:

- `val_metric` / `val_mode`: the validation metric the model is judged by ("min" or "max"). The best
  checkpoint, the value a run returns to a sweeper and the Optuna direction all come from it; test
  metrics are reported, never optimised.
- `check_data(info)`: what the model asks of its data (shape, classes); a mismatch is a one-line error
  before anything trains.
- `GenerativeModule.sample(n, labels, generator)` (abstract): [n, *data shape] in [0, 1].
- Optional capabilities, found by `hasattr`, each used by one evaluation callback:
  `log_likelihood(x, **options) -> Tensor[B]` in nats, with `likelihood_kind` "exact" | "ais" | "bound"
  and `likelihood_info() -> dict` (LogLikelihood); `filters() -> Tensor[n_in, n_units]` (FilterMosaic);
  `gibbs_chain(x0, n_rows, steps_between, generator)` (MarkovChains); `reconstruct(x)` (Reconstructions);
  `infer_codes(x)` (later: InfoGAN purity).
"""

from __future__ import annotations

import abc
import math

import pytorch_lightning as pl
import torch

from genexp import GenexpError
from genexp.data.info import DataInfo


class GenexpModule(pl.LightningModule):
    """Every model: a validation metric with its direction, and declared data needs."""

    val_metric: str = ""  # e.g. "val/recon_xent"; logged by the model or one of its evaluation callbacks
    val_mode: str = "min"  # "min" | "max"
    n_inputs: int | None = 784  # pixels per image the model's first layer expects (None: any)
    needs_labels: bool = False  # trains on (x, y) pairs

    def check_data(self, info: DataInfo) -> None:
        """Refuse data this model cannot train on, naming the key and both values."""
        n = math.prod(info.shape)
        if self.n_inputs is not None and n != self.n_inputs:
            raise GenexpError(
                f"model expects {self.n_inputs} inputs per image but data={info.name} has shape {list(info.shape)} "
                f"({n}); set the model's input size to {n}"
            )
        if self.needs_labels and info.n_classes < 2:
            raise GenexpError(f"{type(self).__name__} needs labelled data; data={info.name} has no classes")

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is not None and hasattr(dm, "info"):
            self.check_data(dm.info)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Name the class in the checkpoint, so any model's file loads by itself (`genexp.sample`, loglik).
        Subclasses that save more call super() first."""
        checkpoint["genexp_class"] = f"{type(self).__module__}.{type(self).__qualname__}"


class GenerativeModule(GenexpModule, metaclass=abc.ABCMeta):
    """A LightningModule trained by manual optimization that can `sample()`.

    - `gen_step` counts generator (or model) updates. Under manual optimization
      `trainer.global_step` counts *optimizer* steps (k + 1 per batch for a GAN with k D-steps),
      so budgets and schedules that mean "updates of the model" read this buffer; it is a buffer,
      so it travels in every checkpoint.
    - noise is seeded per rank (`setup`): with one seed on every rank, each GPU would draw the
      same z and a DDP run would be a 1-GPU run with a bigger bill.
    """

    is_conditional: bool = False  # whether sample() uses `labels`

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.register_buffer("gen_step", torch.zeros((), dtype=torch.long), persistent=True)

    @abc.abstractmethod
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n samples [n, 1, 28, 28] in [0, 1]; `labels` [n] for conditional models; draws only from
        `generator` when given, so a seeded generator gives the same samples."""

    def setup(self, stage: str) -> None:
        super().setup(stage)
        # Same weights on every rank (DDP broadcasts them anyway), different noise on each.
        if self.trainer is not None and self.trainer.world_size > 1:
            torch.manual_seed(torch.initial_seed() + self.global_rank)

    def step_optimizer(self, opt, loss: torch.Tensor) -> None:
        """zero_grad -> manual_backward -> step: one update of one optimizer."""
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()


def flat(batch) -> torch.Tensor:
    """Images of a batch (x or (x, y)) as rows [B, n_pixels]."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    return x.reshape(len(x), -1)
