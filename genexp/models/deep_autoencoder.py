"""The deep autoencoder of Hinton & Salakhutdinov (2006): a DBN stack (`genexp.models.dbn`) with a
linear (Gaussian) code layer, unrolled into encoder + decoder (decoder initialised with the transposed
encoder weights) and fine-tuned by backprop on the reconstruction cross-entropy."""

from __future__ import annotations

import itertools
import logging

import torch
import torch.nn.functional as F
from torch import nn

from genexp.models.dbn import FineTunedDBN
from genexp.nn.rbm import GaussianHiddenRBM, RBMCore
from genexp.validate import flag

log = logging.getLogger(__name__)


class DeepAutoencoder(FineTunedDBN):
    val_metric, val_mode = "val/recon_sq_error", "min"

    def __init__(
        self,
        *,
        finetune_lr: float,
        finetune_weight_decay: float,
        finetune_autocast: bool,
        dropout_input: float,
        dropout: float,
        linear_code: bool,
        **stack,
    ):
        self.check_finetune(finetune_lr, finetune_weight_decay, finetune_autocast, dropout_input, dropout)
        flag("model.linear_code", linear_code)
        self._linear_code = linear_code  # read by rbm_class while the stack is built
        super().__init__(**stack)
        # decoder layer j maps layer_sizes[j+1] -> layer_sizes[j]; Linear.weight [out, in] = W_j [n_v, n_h],
        # so "the transposed encoder weights" W_j^T as a map h -> v is weight = W_j (copied at unrolling)
        self.decoder = nn.ModuleList(nn.Linear(n_h, n_v) for n_v, n_h in itertools.pairwise(self.layer_sizes))
        # 1 once the decoder has been initialised from the pretrained encoder (travels in the checkpoint)
        self.register_buffer("unrolled", torch.zeros((), dtype=torch.long), persistent=True)

    def rbm_class(self, layer: int, n_rbms: int) -> type[RBMCore]:
        return GaussianHiddenRBM if self._linear_code and layer == n_rbms - 1 else RBMCore

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        if self.phase(self.current_epoch)[0] == "finetune" and not self.unrolled:
            self.unroll()

    def train_batch(self, batch) -> tuple:
        # a fit resumed from a checkpoint of the last pretraining batch skips on_train_epoch_start of the
        # first fine-tuning epoch (Lightning goes straight to its batches): unroll before the first step
        if not self.unrolled:
            self.unroll()
        return super().train_batch(batch)

    @torch.no_grad()
    def unroll(self) -> None:
        """Initialise the decoder with the transposed encoder weights and the visible biases
        (Hinton & Salakhutdinov 2006, Fig. 1 "Unrolling"); from here on they are fine-tuned separately."""
        for rbm, layer in zip(self.rbms, self.decoder, strict=True):
            layer.weight.copy_(rbm.W)  # [n_visible, n_hidden]: h -> h W^T
            layer.bias.copy_(rbm.vbias)
        self.unrolled.fill_(1)
        log.info("unrolled the autoencoder: %s", " -> ".join(map(str, self.layer_sizes + self.layer_sizes[-2::-1])))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Pixel logits [B, 784] from a code: sigmoid decoder layers, logistic output units."""
        h = code
        for j in reversed(range(len(self.decoder))):
            h = self.decoder[j](h)
            if j > 0:
                h = torch.sigmoid(h)
        return h

    def losses(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Cross-entropy of the logistic output units, summed over pixels (the paper's MNIST error)."""
        target = x.reshape(len(x), -1)
        logits = self.decode(self.encode(x, dropout_top=False))
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(x)
        sq = (torch.sigmoid(logits) - target).pow(2).sum(1).mean()
        return {"loss": loss, "recon_sq_error": sq}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions in [0, 1], shaped like x (for the Reconstructions callback)."""
        return torch.sigmoid(self.decode(self.encode(x, dropout_top=False))).reshape(x.shape)

    @property
    def code_size(self) -> int:
        return self.layer_sizes[-1]

    def finetune_parameters(self) -> list[nn.Parameter]:
        # the encoder uses W and hbias of every RBM; vbias lives on in the decoder
        return [p for rbm in self.rbms for p in (rbm.W, rbm.hbias)] + list(self.decoder.parameters())
