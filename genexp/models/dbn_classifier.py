"""A DBN fine-tuned as a classifier: the greedy stack (`genexp.models.dbn`), then the up pass
sigm(h W + hbias) of every RBM and a softmax layer (the Theano tutorial's LogisticRegression), all
weights trained by backprop (Hinton, Osindero & Teh 2006; Hinton & Salakhutdinov 2006)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genexp.data.augment import random_shift
from genexp.models.dbn import FineTunedDBN
from genexp.validate import fail, number


class DBNClassifier(FineTunedDBN):
    val_metric, val_mode = "val/error", "min"
    needs_labels = True

    def __init__(
        self,
        *,
        finetune_lr: float,
        finetune_weight_decay: float,
        finetune_autocast: bool,
        dropout_input: float,
        dropout: float,
        max_shift: int,
        n_classes: int,
        **stack,
    ):
        self.check_finetune(finetune_lr, finetune_weight_decay, finetune_autocast, dropout_input, dropout)
        number("model.max_shift", max_shift, 0, 27, integer=True, hint="pixels")
        number("model.n_classes", n_classes, 2, integer=True)
        super().__init__(**stack)
        self.logreg = nn.Linear(self.layer_sizes[-1], n_classes)
        nn.init.zeros_(self.logreg.weight), nn.init.zeros_(self.logreg.bias)

    def check_data(self, info, *args, **kwargs) -> None:
        super().check_data(info, *args, **kwargs)
        if info.n_classes != self.hparams.n_classes:  # a label >= n_classes would fail mid-training
            n = self.hparams.n_classes
            fail("model.n_classes", n, f"must be {info.n_classes}, the number of classes in data={info.name}")

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_classes]."""
        return self.logreg(self.encode(x, dropout_top=True))

    def train_batch(self, batch) -> tuple:
        x, y = batch
        return random_shift(x, self.hparams.max_shift), y  # translations of <= max_shift px

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.classify(x)
        return {"loss": F.cross_entropy(logits, y), "error": (logits.argmax(1) != y).float().mean()}

    def finetune_parameters(self) -> list[nn.Parameter]:
        # the classifier uses W and hbias of every RBM; vbias has no role in the up pass
        return [p for rbm in self.rbms for p in (rbm.W, rbm.hbias)] + list(self.logreg.parameters())
