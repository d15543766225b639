"""The project's MNIST classifier (`genexp.nn.cnn.SmallCNN`) as a model: `test/acc` is a result in
itself, and the same recipe trained the shipped feature network of the sample metrics
(genexp/metrics/weights/, `experiments/feature_net/`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genexp.data.augment import random_shift
from genexp.models.base import GenexpModule
from genexp.nn.cnn import SmallCNN
from genexp.validate import number


class Classifier(GenexpModule):
    val_metric, val_mode = "val/acc", "max"
    needs_labels = True
    ddp_unused_parameters = False

    def __init__(
        self, *, channels: int, n_features: int, dropout: float, lr: float, weight_decay: float, max_shift: int
    ):
        super().__init__()
        number("model.channels", channels, 1, integer=True)
        number("model.n_features", n_features, 1, integer=True)
        number("model.dropout", dropout, 0, 1, high_open=True)
        number("model.lr", lr, 0, low_open=True)
        number("model.weight_decay", weight_decay, 0)
        number("model.max_shift", max_shift, 0, 27, integer=True, hint="pixels")
        self.save_hyperparameters()
        self.net = SmallCNN(channels, n_features, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_classes] (the classifier contract ClassifierErrors uses)."""
        return self.net(x)

    @staticmethod
    def _labels(y: torch.Tensor) -> torch.Tensor:
        return y.argmax(1) if y.ndim == 2 else y

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(random_shift(x, self.hparams.max_shift)), self._labels(y))
        self.log("train/loss", loss, prog_bar=True)
        return {"loss": loss}

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

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        # one-cycle over the whole run (Smith & Topin 2019): fast, and the final low lr settles the weights
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.hparams.lr, total_steps=self.trainer.estimated_stepping_batches
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
