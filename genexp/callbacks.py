"""Callbacks shared by every model: checkpoints (last + best), sample grids, sample-quality metrics."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger

from genexp import viz
from genexp.models.base import GenerativeModule

log = logging.getLogger(__name__)


def log_image(trainer: pl.Trainer, key: str, image, step: int | None = None) -> None:
    """Send a uint8 image (H, W) to whichever image-capable loggers the run has."""
    for lg in trainer.loggers:
        if isinstance(lg, WandbLogger):
            lg.log_image(key=key, images=[image], step=step)
        elif isinstance(lg, TensorBoardLogger):
            lg.experiment.add_image(key, image[None], global_step=step or 0)


class Checkpoint(ModelCheckpoint):
    """ModelCheckpoint that reads what to monitor from the model (`monitor`, `monitor_mode` class
    attributes), so one callbacks config serves every model, and that saves `last.ckpt` when the
    run is interrupted (Ctrl-C) or fails, so no work is lost."""

    def setup(self, trainer, pl_module, stage):
        if self.monitor is None and getattr(pl_module, "monitor", None):
            self.monitor = pl_module.monitor
            self.mode = pl_module.monitor_mode
            self.kth_value = torch.tensor(torch.inf if self.mode == "min" else -torch.inf)
        elif self.monitor is None:
            self.save_top_k = 0  # nothing to rank by: a "best" file would only be the latest; keep last.ckpt
        super().setup(trainer, pl_module, stage)

    def on_exception(self, trainer, pl_module, exception):
        interrupted = isinstance(exception, KeyboardInterrupt)
        if self.dirpath and trainer.state.fn == "fit" and (interrupted or trainer.global_step > 0):
            path = Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
            trainer.save_checkpoint(path)  # Lightning writes through an fsspec transaction (temp + rename)
            log.warning("%s: saved %s", type(exception).__name__, path)


class SampleGrid(pl.Callback):
    """Every `every_n_epochs`, a grid of `sample()` with fixed noise: one row per digit 0-9 for
    conditional models. The noise is fixed by a generator seed and the labels by the layout, both
    kept in the checkpoint (`state_dict`), so grids stay comparable across resume."""

    def __init__(self, every_n_epochs: int = 1, per_class: int = 10, seed: int = 1234, dirname: str = "samples"):
        self.every_n_epochs, self.per_class, self.seed, self.dirname = every_n_epochs, per_class, seed, dirname

    def state_dict(self):
        return {"seed": self.seed, "per_class": self.per_class}

    def load_state_dict(self, state):
        self.seed, self.per_class = state["seed"], state["per_class"]

    @torch.no_grad()
    def grid(self, pl_module: GenerativeModule):
        labels = torch.arange(10, device=pl_module.device).repeat_interleave(self.per_class)
        g = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        was_training = pl_module.training
        pl_module.eval()
        images = pl_module.sample(len(labels), labels=labels, generator=g)
        pl_module.train(was_training)
        return viz.grid(images, nrow=self.per_class, scale=2)

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        if not isinstance(pl_module, GenerativeModule) or self.every_n_epochs <= 0:
            return
        if epoch % self.every_n_epochs and epoch != trainer.max_epochs:
            return
        image = self.grid(pl_module)  # every rank samples (cheap); rank 0 writes
        if trainer.is_global_zero:
            viz.save_png(image, Path(trainer.default_root_dir) / self.dirname / f"epoch_{epoch:03d}.png")
            log_image(trainer, "samples", image, step=trainer.global_step)


class SampleQuality(pl.Callback):
    """At test end, score `n_samples` samples of any GenerativeModule with the project's MNIST
    classifier (genexp.metrics): fid_mnist_cnn, cond_acc, mode coverage, precision/recall."""

    def __init__(self, n_samples: int = 10000, batch_size: int = 500, seed: int = 0, data_root: str | None = None):
        self.n_samples, self.batch_size, self.seed, self.data_root = n_samples, batch_size, seed, data_root

    def on_test_epoch_end(self, trainer, pl_module):
        if not isinstance(pl_module, GenerativeModule) or self.n_samples <= 0:
            return
        from genexp.metrics import sample_quality

        real = trainer.datamodule.split_tensors("test")[0] if trainer.datamodule is not None else None
        metrics = sample_quality(
            pl_module, real, n=self.n_samples, batch_size=self.batch_size, seed=self.seed, data_root=self.data_root
        )
        for key, value in metrics.items():
            pl_module.log(f"test/{key}", value, sync_dist=False, rank_zero_only=True)
