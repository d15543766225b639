"""The project's own MNIST classifier: a small CNN whose penultimate features drive the sample metrics.

Its accuracy is a result in itself (`test/acc`), and `genexp.metrics` uses a cached checkpoint of it
as the feature network for `fid_mnist_cnn`, class-conditional accuracy, mode coverage and precision/
recall: Inception features mean little on 28x28 digits.
"""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from genexp import viz
from genexp.callbacks import log_image
from genexp.data.augment import random_shift


class Classifier(pl.LightningModule):
    monitor = "val/acc"
    monitor_mode = "max"
    primary_metric = "test/acc"

    def __init__(
        self,
        channels: int = 32,
        n_features: int = 128,
        dropout: float = 0.3,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        max_shift: int = 2,
    ):
        super().__init__()
        self.save_hyperparameters()
        c = channels

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *block(1, c),
            *block(c, c),
            nn.MaxPool2d(2),  # [B, c, 14, 14]
            *block(c, 2 * c),
            *block(2 * c, 2 * c),
            nn.MaxPool2d(2),  # [B, 2c, 7, 7]
            nn.Flatten(),
            nn.Linear(2 * c * 49, n_features),
            nn.BatchNorm1d(n_features),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_features, 10))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, n_features] for x [B, 1, 28, 28] in [0, 1]."""
        return self.body(x - 0.1307)  # centre on the MNIST mean pixel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def _labels(self, y):
        return y.argmax(1) if y.ndim == 2 else y

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(random_shift(x, self.hparams.max_shift)), self._labels(y))
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _eval(self, batch, split):
        x, y = batch
        y = self._labels(y)
        logits = self(x)
        self.log(f"{split}/loss", F.cross_entropy(logits, y), sync_dist=True)
        self.log(f"{split}/acc", (logits.argmax(1) == y).float().mean(), prog_bar=True, sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self._eval(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval(batch, "test")
        x, y = batch
        wrong = self(x).argmax(1) != self._labels(y)
        self._errors.append(x[wrong][: 100 - sum(len(e) for e in self._errors)].cpu())

    def on_test_epoch_start(self):
        self._errors: list[torch.Tensor] = []

    def on_test_epoch_end(self):
        """The misclassified test digits, as a picture (first 100)."""
        errors = torch.cat(self._errors) if self._errors else torch.zeros(0, 1, 28, 28)
        if len(errors) and self.trainer.is_global_zero:
            image = viz.grid(errors, nrow=10, scale=2)
            viz.save_png(image, Path(self.trainer.default_root_dir) / "samples" / "test_errors.png")
            log_image(self.trainer, "test/errors", image, step=self.global_step)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        # one-cycle over the whole run (Smith & Topin 2019): fast, and the final low lr settles the weights
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.hparams.lr, total_steps=self.trainer.estimated_stepping_batches
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
