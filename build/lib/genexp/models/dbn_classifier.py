"""A DBN fine-tuned as a classifier: the greedy stack (`genexp.models.dbn`), then the up pass
sigm(h W + hbias) of every RBM and a softmax layer (the Theano tutorial's LogisticRegression), all
weights trained by backprop (Hinton, Osindero & Teh 2006; Hinton & Salakhutdinov 2006)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genexp import GenexpError
from genexp.data.augment import random_shift
from genexp.models.dbn import FineTunedDBN


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
        for name, value in (("dropout_input", dropout_input), ("dropout", dropout)):
            if not 0 <= value < 1:
                raise GenexpError(f"model.{name}={value} must be in [0, 1)")
        if max_shift < 0 or not finetune_lr > 0:
            raise GenexpError(f"model.max_shift={max_shift} must be >= 0 and model.finetune_lr={finetune_lr} > 0")
        super().__init__(**stack)
        self.logreg = nn.Linear(self.layer_sizes[-1], n_classes)
        nn.init.zeros_(self.logreg.weight), nn.init.zeros_(self.logreg.bias)

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
