"""Deep Belief Network: a stack of RBMs trained greedily layer by layer (Hinton, Osindero & Teh 2006;
the Theano DBN tutorial the chapter is built on), and its generative path.

One run goes through phases counted in epochs (`trainer.current_epoch`), so a checkpoint taken
anywhere resumes in the right phase and layer:

    epochs [0, e_0)             pretrain RBM 0 on the pixels (grey levels as probabilities, or binary)
    epochs [e_0, e_0 + e_1)     pretrain RBM 1 on RBM 0's p(h|v) ("mean") or h ~ p(h|v) ("sample"); RBM 0 frozen
    ...
    the remaining epochs        `DBN`: the top RBM keeps training (it is the DBN's prior);
                                the fine-tuned forms (`DBNClassifier`, `DeepAutoencoder`) run `finetune_step`

`sample()` is the DBN's generative path for every form: Gibbs sampling in the top RBM (the undirected
associative memory), then one down pass through the directed layers p(v|h) below it.
"""

from __future__ import annotations

import itertools
import logging

import torch
import torch.nn.functional as F
from torch import nn

from genexp import GenexpError
from genexp.models.base import GenerativeModule, flat
from genexp.nn.rbm import RBMCore, bernoulli
from genexp.validate import choice, fail, flag, number, numbers

log = logging.getLogger(__name__)

PROPAGATE = ("mean", "sample")
SAMPLE_DOWN = ("mean", "sample")


def per_layer(name: str, value, n: int, kind=float, **valid) -> list:
    """A scalar or a list of `n` values -> a list of `n` values, each checked as `genexp.validate.number`
    checks one (`valid`: its range)."""
    values = numbers(f"model.{name}", value, length=n, scalar=True, integer=kind is int, hint="one per RBM", **valid)
    return [kind(v) for v in values]


class DBN(GenerativeModule):
    """The greedy stack; after pretraining, the top RBM keeps learning (generation)."""

    val_metric, val_mode = "val/recon_xent", "min"  # of the top RBM: logged in the final phase only
    resizable_buffers = ("rbms.*.persistent_chain",)  # the PCD chains follow the batch size
    finetunes = False  # the fine-tuned forms set True: epochs after pretraining run `finetune_step`

    def __init__(
        self,
        *,
        layer_sizes: list[int],
        pretrain_epochs: int | list[int],
        k: int,
        persistent: bool,
        pretrain_lr: float | list[float],
        momentum: float,
        final_momentum: float,
        momentum_epochs: int,
        weight_decay: float,
        init_std: float | None,
        propagate: str,
        sample_steps: int,
        sample_down: str,
        seed: int | None,
    ):
        super().__init__()
        layer_sizes = numbers("model.layer_sizes", layer_sizes, 1, integer=True, min_length=2, hint="visible, hidden")
        n_rbms = len(layer_sizes) - 1
        self.pretrain_epochs = per_layer("pretrain_epochs", pretrain_epochs, n_rbms, int, low=0)
        self.pretrain_lr = per_layer("pretrain_lr", pretrain_lr, n_rbms, float, low=0, low_open=True)
        if not self.finetunes and self.pretrain_epochs[-1] < 1:
            fail("model.pretrain_epochs", pretrain_epochs, "the top RBM needs >= 1 epoch (the DBN's prior)")
        number("model.k", k, 1, integer=True)
        flag("model.persistent", persistent)
        number("model.momentum", momentum, 0, 1, high_open=True)
        number("model.final_momentum", final_momentum, 0, 1, high_open=True)
        number("model.momentum_epochs", momentum_epochs, 0, integer=True)
        number("model.weight_decay", weight_decay, 0)
        number("model.init_std", init_std, 0, low_open=True, null=True)
        choice("model.propagate", propagate, PROPAGATE)
        number("model.sample_steps", sample_steps, 1, integer=True)
        choice("model.sample_down", sample_down, SAMPLE_DOWN)
        number("model.seed", seed, integer=True, null=True)
        self.save_hyperparameters()
        self.layer_sizes, self.n_inputs = layer_sizes, layer_sizes[0]
        self.n_inputs_key = "model.layer_sizes[0]"  # named by check_data on a mismatch
        # the stack: RBM i has n_visible = layer_sizes[i], n_hidden = layer_sizes[i + 1]
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        rbms = []
        for i, (n_visible, n_hidden) in enumerate(itertools.pairwise(layer_sizes)):
            rbm = self.rbm_class(i, n_rbms)(n_visible, n_hidden, k=k, persistent=persistent, generator=g)
            if init_std is not None:  # N(0, 0.01^2): Hinton 2010, "A practical guide to training RBMs", sec. 8
                with torch.no_grad():
                    rbm.W.normal_(0.0, init_std, generator=g)
            rbms.append(rbm)
        self.rbms = nn.ModuleList(rbms)

    def rbm_class(self, layer: int, n_rbms: int) -> type[RBMCore]:
        return RBMCore

    # ---- phases ---------------------------------------------------------------------------------------
    @property
    def n_pretrain_epochs(self) -> int:
        return sum(self.pretrain_epochs)

    def phase(self, epoch: int) -> tuple[str, int]:
        """("pretrain", layer) or ("finetune", top layer) for a 0-based epoch."""
        for layer, end in enumerate(itertools.accumulate(self.pretrain_epochs)):
            if epoch < end:
                return "pretrain", layer
        return ("finetune" if self.finetunes else "pretrain"), len(self.rbms) - 1

    def on_fit_start(self) -> None:
        needed = self.n_pretrain_epochs + self.finetunes
        if self.trainer.max_epochs is None or self.trainer.max_epochs < needed:
            raise GenexpError(
                f"trainer.max_epochs={self.trainer.max_epochs} must be >= sum(model.pretrain_epochs)="
                f"{self.n_pretrain_epochs}" + (" + at least 1 fine-tuning epoch" if self.finetunes else "")
            )

    def on_train_epoch_start(self) -> None:
        phase, layer = self.phase(self.current_epoch)
        log.info("epoch %d: %s layer %d", self.current_epoch, phase, layer)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        # where the stack stood when saved (readable without loading the model)
        phase, layer = self.phase(self.current_epoch)
        checkpoint["dbn_phase"] = {"epoch": self.current_epoch, "phase": phase, "layer": layer}

    # ---- the up pass ------------------------------------------------------------------------------------
    def propagate_up(self, v: torch.Tensor, n_layers: int) -> torch.Tensor:
        """The data for RBM `n_layers`: v pushed through RBMs [0, n_layers) as probabilities
        p(h|v) ("mean") or as samples h ~ p(h|v) ("sample")."""
        for rbm in self.rbms[:n_layers]:
            v = rbm.propup(v)[1] if self.hparams.propagate == "mean" else rbm.sample_h_given_v(v)[2]
        return v

    # ---- training -------------------------------------------------------------------------------------
    def _momentum(self, epoch_in_layer: int) -> float:
        # 0.5 for the first epochs of each layer, then 0.9 (Hinton & Salakhutdinov 2006, supporting notes)
        h = self.hparams
        return h.momentum if epoch_in_layer < h.momentum_epochs else h.final_momentum

    def training_step(self, batch, batch_idx):
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        phase, layer = self.phase(self.current_epoch)
        if phase == "finetune":
            return self.finetune_step(batch, batch_idx, opts[-1])
        opt = opts[layer]
        for group in opt.param_groups:
            group["momentum"] = self._momentum(self.current_epoch - sum(self.pretrain_epochs[:layer]))
        # 1. this layer's data: the frozen layers below, no graph
        with torch.no_grad():
            v = self.propagate_up(flat(batch), layer)
        # 2. CD-k / PCD-k on RBM `layer` only: cost = mean F(v) - mean F(chain_end), its gradient in closed form
        rbm = self.rbms[layer]
        cost, grads, _ = rbm.cd_grads(v)
        self.step_with_grads(opt, (rbm.W, rbm.hbias, rbm.vbias), grads)
        self.log_epoch_mean(f"train/cost_layer{layer}", cost)
        return {f"cost_layer{layer}": cost.detach()}

    def finetune_step(self, batch, batch_idx: int, opt) -> dict[str, torch.Tensor]:
        raise NotImplementedError  # the fine-tuned forms

    def finetune_parameters(self) -> list[nn.Parameter]:
        return []

    def configure_optimizers(self):
        # one SGD per RBM (weight decay on W only: Hinton 2010, sec. 10), then one AdamW for fine-tuning
        opts = [
            torch.optim.SGD(
                [
                    {"params": [rbm.W], "weight_decay": self.hparams.weight_decay},
                    {"params": [rbm.hbias, rbm.vbias], "weight_decay": 0.0},
                ],
                lr=lr,
                momentum=self.hparams.momentum,
            )
            for rbm, lr in zip(self.rbms, self.pretrain_lr, strict=True)
        ]
        if self.finetunes:
            h = self.hparams
            opts.append(
                torch.optim.AdamW(self.finetune_parameters(), lr=h.finetune_lr, weight_decay=h.finetune_weight_decay)
            )
        return opts

    def cosine_lr(self, batch_idx: int) -> float:
        """Fine-tuning lr: cosine decay to 0 over the fine-tuning epochs (`cosine_factor`)."""
        return self.hparams.finetune_lr * self.cosine_factor(batch_idx, self.n_pretrain_epochs)

    # ---- evaluation -----------------------------------------------------------------------------------
    def validation_step(self, batch, batch_idx):
        phase, layer = self.phase(self.current_epoch)
        if phase == "finetune":
            return self.finetune_eval(batch, "val")
        # reconstruction cross-entropy of this layer's input after one mean-field up-down pass
        v = self.propagate_up(flat(batch), layer)
        xent = self.rbms[layer].recon_xent(v).mean()
        self.log(f"val/recon_xent_layer{layer}", xent, sync_dist=True)
        if layer == len(self.rbms) - 1:
            self.log("val/recon_xent", xent, sync_dist=True, prog_bar=True)

    def test_step(self, batch, batch_idx):
        if self.finetunes:
            return self.finetune_eval(batch, "test")
        top = len(self.rbms) - 1
        v = self.propagate_up(flat(batch), top)
        self.log("test/recon_xent", self.rbms[top].recon_xent(v).mean(), sync_dist=True)

    def finetune_eval(self, batch, split: str) -> None:
        raise NotImplementedError

    # ---- generation -----------------------------------------------------------------------------------
    def filters(self) -> torch.Tensor:
        return self.rbms[0].W

    def sampling_depth(self) -> int:
        """How many RBMs the generative path uses: up to the one being (or last) trained."""
        return len(self.rbms) if self._trainer is None else self.phase(self.current_epoch)[1] + 1

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """Gibbs sampling in the top RBM (`sample_steps` steps v -> h -> v), then a down pass p(v|h)
        through the directed layers below (Hinton et al. 2006, sec. 2). The chains start from the top
        RBM's PCD fantasy particles when it has them (samples of the model already: a random start
        mostly falls into the blank-image mode), else from v ~ Bernoulli(1/2)."""
        depth = self.sampling_depth()
        top = self.rbms[depth - 1]
        particles = top.persistent_chain  # [chains, n_hidden], empty under CD
        if particles.numel():
            idx = torch.arange(n, device=particles.device) % len(particles)
            v = top.sample_v_given_h(particles[idx], generator)[2]
        else:
            v = bernoulli(torch.full((n, top.n_visible), 0.5, device=self.device), generator)
        v_mean = v
        for _ in range(self.hparams.sample_steps):
            *_, v_mean, v = top.gibbs_vhv(v, generator)
        h = v_mean  # the top RBM's visible probabilities start the down pass
        for rbm in reversed(self.rbms[: depth - 1]):
            if self.hparams.sample_down == "sample":
                h = bernoulli(h, generator)
            h = rbm.propdown(h)[1]
        return h.reshape(n, 1, 28, 28).clamp(0, 1)


class FineTunedDBN(DBN):
    """What the two fine-tuned forms share: the deterministic up pass with dropout, the cosine lr,
    optional bf16 autocast."""

    finetunes = True

    @staticmethod
    def check_finetune(finetune_lr, finetune_weight_decay, finetune_autocast, dropout_input, dropout) -> None:
        """The fine-tuning hyper-parameters both forms take: one line per bad value."""
        number("model.finetune_lr", finetune_lr, 0, low_open=True)
        number("model.finetune_weight_decay", finetune_weight_decay, 0)
        flag("model.finetune_autocast", finetune_autocast)
        number("model.dropout_input", dropout_input, 0, 1, high_open=True)
        number("model.dropout", dropout, 0, 1, high_open=True)

    def encode(self, x: torch.Tensor, dropout_top: bool) -> torch.Tensor:
        """The up pass sigm(h W + hbias) (linear at a Gaussian code layer), with dropout (Srivastava et
        al. 2014) on the input and on every hidden layer (the top one when `dropout_top`) while training."""
        h = F.dropout(x.reshape(len(x), -1), self.hparams.dropout_input, self.training)
        for i, rbm in enumerate(self.rbms):
            h = rbm.propup(h)[1]
            if i < len(self.rbms) - 1 or dropout_top:
                h = F.dropout(h, self.hparams.dropout, self.training)
        return h

    def finetune_step(self, batch, batch_idx: int, opt) -> dict[str, torch.Tensor]:
        for group in opt.param_groups:
            group["lr"] = self.cosine_lr(batch_idx)
        with self.bf16(self.hparams.finetune_autocast):
            losses = self.losses(*self.train_batch(batch))
        self.step_optimizer(opt, losses["loss"])
        self.gen_step += 1
        for key, value in losses.items():
            self.log_epoch_mean(f"train/{key}", value)
        return {k: v.detach() for k, v in losses.items()}

    def train_batch(self, batch) -> tuple:
        return tuple(batch)

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def finetune_eval(self, batch, split: str) -> None:
        for key, value in self.losses(*batch).items():
            self.log(f"{split}/{key}", value, sync_dist=True, prog_bar=key != "loss")
