"""Deep Belief Network: a stack of RBMs trained greedily layer by layer, then fine-tuned.

Hinton, Osindero & Teh (2006), "A fast learning algorithm for deep belief nets"; Hinton &
Salakhutdinov (2006), "Reducing the dimensionality of data with neural networks"; the Theano DBN
tutorial the chapter is built on (`sigmoid_layers` sharing W and hbias with `rbm_layers`).

One `python -m genexp model=dbn` run goes through phases counted in epochs (`trainer.current_epoch`),
so a checkpoint taken anywhere resumes in the right phase and layer:

    epochs [0, e_0)               pretrain RBM 0 on the pixels (grey levels as probabilities, or binary)
    epochs [e_0, e_0 + e_1)       pretrain RBM 1 on RBM 0's hidden probabilities p(h|v) ("mean") or
                                  on samples h ~ p(h|v) ("sample"); RBM 0 frozen
    ...                           ...
    the remaining epochs          fine-tune, `finetune` =
        classifier   the up-pass sigm(h W + hbias) of every RBM, then linear + softmax; all weights by backprop
        autoencoder  the stack unrolled into encoder + decoder (decoder initialised with the transposed
                     encoder weights, linear code units), fine-tuned by backprop on the reconstruction
        generate     no backprop: the top RBM keeps training (it is the DBN's prior)

`sample()` is the DBN's generative path in every mode: Gibbs sampling in the top RBM (the undirected
associative memory), then one down pass through the directed layers p(v|h) below it.
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genexp import GenexpError, viz
from genexp.data.augment import random_shift
from genexp.models.base import GenerativeModule
from genexp.models.rbm import RBM

log = logging.getLogger(__name__)

FINETUNE = ("classifier", "autoencoder", "generate")
PROPAGATE = ("mean", "sample")
SAMPLE_DOWN = ("mean", "sample")


class GaussianHiddenRBM(RBM):
    """Binary visible units, linear hidden units with unit-variance Gaussian noise: the code layer of
    the deep autoencoder (Hinton & Salakhutdinov 2006, Fig. 1 and its notes).

        E(v, h) = -v.vbias - h.hbias - v^T W h + |h|^2 / 2
        p(h | v) = N(v W + hbias, I),   p(v_i = 1 | h) = sigm(W_i h + vbias_i)  (as in the RBM)
        F(v) = -v.vbias - sum_j (v W + hbias)_j^2 / 2   (+ a constant: the Gaussian integral over h)
    """

    def propup(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre_h = torch.addmm(self.hbias, v, self.W)  # [B, n_hidden]: linear units, mean = input
        return pre_h, pre_h

    def sample_h_given_v(self, v0: torch.Tensor, generator: torch.Generator | None = None):
        pre_h1, h1_mean = self.propup(v0)
        noise = torch.randn(h1_mean.shape, generator=generator, device=h1_mean.device, dtype=h1_mean.dtype)
        return pre_h1, h1_mean, h1_mean + noise

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        return -(v @ self.vbias) - 0.5 * torch.addmm(self.hbias, v, self.W).pow(2).sum(1)


def _per_layer(name: str, value, n: int, kind=float) -> list:
    """A scalar or a list of `n` values -> a list of `n` values."""
    values = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "__len__") else [value] * n
    if len(values) != n:
        raise GenexpError(f"model.{name}={list(values)} needs one value per RBM ({n}) or a single value")
    return [kind(v) for v in values]


def pca_recon_sq_error(train: torch.Tensor, test: torch.Tensor, n_components: int) -> float:
    """Mean over test images of sum_i (x_i - x^_i)^2 when x^ is the projection on the top
    `n_components` principal components of `train` (centred; float64 covariance eigendecomposition)."""
    x = train.reshape(len(train), -1).double()
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / len(x)  # [784, 784]
    _, vectors = torch.linalg.eigh(cov)  # ascending eigenvalues
    basis = vectors[:, -n_components:]  # [784, n_components]
    t = test.reshape(len(test), -1).double() - mean
    recon = t @ basis @ basis.T
    return float((t - recon).pow(2).sum(1).mean())


class DBN(GenerativeModule):
    monitor = None  # val metrics change meaning between phases: keep last.ckpt only
    primary_metric = "test/error"

    def __init__(
        self,
        layer_sizes: list[int] = (784, 500, 500, 2000),
        pretrain_epochs: int | list[int] = 2,
        k: int = 1,
        persistent: bool = False,
        pretrain_lr: float | list[float] = 0.1,
        momentum: float = 0.5,
        final_momentum: float = 0.9,
        momentum_epochs: int = 5,
        weight_decay: float = 2e-4,
        init_std: float | None = 0.01,
        propagate: str = "mean",
        finetune: str = "classifier",
        finetune_lr: float = 1e-3,
        finetune_weight_decay: float = 0.0,
        dropout_input: float = 0.0,
        dropout: float = 0.0,
        max_shift: int = 0,
        finetune_autocast: bool = False,
        linear_code: bool = True,
        sample_steps: int = 200,
        sample_down: str = "mean",
        n_classes: int = 10,
        seed: int | None = None,
    ):
        super().__init__()
        layer_sizes = [int(s) for s in layer_sizes]
        if len(layer_sizes) < 2 or min(layer_sizes) < 1:
            raise GenexpError(f"model.layer_sizes={layer_sizes} needs >= 2 positive sizes (visible, hidden, ...)")
        n_rbms = len(layer_sizes) - 1
        pretrain_epochs = _per_layer("pretrain_epochs", pretrain_epochs, n_rbms, int)
        pretrain_lr = _per_layer("pretrain_lr", pretrain_lr, n_rbms, float)
        if min(pretrain_epochs) < 0:
            raise GenexpError(f"model.pretrain_epochs={pretrain_epochs} must be >= 0")
        for name, value, valid in (
            ("finetune", finetune, FINETUNE),
            ("propagate", propagate, PROPAGATE),
            ("sample_down", sample_down, SAMPLE_DOWN),
        ):
            if value not in valid:
                raise GenexpError(f"model.{name}={value!r} is not one of {', '.join(valid)}")
        if finetune == "generate" and pretrain_epochs[-1] < 1:
            raise GenexpError(f"model.pretrain_epochs={pretrain_epochs}: finetune=generate needs the top RBM trained")
        for name, value in (("dropout_input", dropout_input), ("dropout", dropout)):
            if not 0 <= value < 1:
                raise GenexpError(f"model.{name}={value} must be in [0, 1)")
        if k < 1 or sample_steps < 1 or max_shift < 0:
            raise GenexpError(f"model.k={k}, sample_steps={sample_steps} must be >= 1 and max_shift={max_shift} >= 0")
        self.save_hyperparameters()
        self.layer_sizes, self.pretrain_epochs, self.pretrain_lr = layer_sizes, pretrain_epochs, pretrain_lr

        # the stack: RBM i has n_visible = layer_sizes[i], n_hidden = layer_sizes[i + 1]
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        rbms = []
        for i, (n_visible, n_hidden) in enumerate(itertools.pairwise(layer_sizes)):
            top_code = finetune == "autoencoder" and linear_code and i == n_rbms - 1
            cls = GaussianHiddenRBM if top_code else RBM
            rbm = cls(
                n_visible=n_visible,
                n_hidden=n_hidden,
                k=k,
                persistent=persistent,
                lr=pretrain_lr[i],
                momentum=momentum,
                weight_decay=weight_decay,
                ais_chains=0,
            )
            if init_std is not None:  # N(0, 0.01^2): Hinton 2010, "A practical guide to training RBMs", sec. 8
                with torch.no_grad():
                    rbm.W.normal_(0.0, init_std, generator=g)
            rbms.append(rbm)
        self.rbms = nn.ModuleList(rbms)

        # fine-tuning parameters that exist only in their mode (so checkpoints load alone)
        if finetune == "classifier":
            self.logreg = nn.Linear(layer_sizes[-1], n_classes)  # the Theano tutorial's LogisticRegression
            nn.init.zeros_(self.logreg.weight), nn.init.zeros_(self.logreg.bias)
        if finetune == "autoencoder":
            # decoder layer j maps layer_sizes[j+1] -> layer_sizes[j]; Linear.weight [out, in] = W_j [n_v, n_h],
            # so "the transposed encoder weights" W_j^T as a map h -> v is weight = W_j (copied at unrolling)
            self.decoder = nn.ModuleList(nn.Linear(n_h, n_v) for n_v, n_h in itertools.pairwise(layer_sizes))
        # 1 once the decoder has been initialised from the pretrained encoder (travels in the checkpoint)
        self.register_buffer("unrolled", torch.zeros((), dtype=torch.long), persistent=True)
        self.phase_history: list[tuple[int, str, int]] = []  # (epoch, phase, layer) actually trained

    # ---- phases ---------------------------------------------------------------------------------------
    @property
    def n_pretrain_epochs(self) -> int:
        return sum(self.pretrain_epochs)

    def phase(self, epoch: int) -> tuple[str, int]:
        """("pretrain", layer) or ("finetune", top layer) for a 0-based epoch."""
        for layer, end in enumerate(itertools.accumulate(self.pretrain_epochs)):
            if epoch < end:
                return "pretrain", layer
        if self.hparams.finetune == "generate":  # the top RBM keeps learning
            return "pretrain", len(self.rbms) - 1
        return "finetune", len(self.rbms) - 1

    def on_fit_start(self) -> None:
        needed = self.n_pretrain_epochs + (self.hparams.finetune != "generate")
        max_epochs = self.trainer.max_epochs
        if max_epochs is None or max_epochs < needed:
            raise GenexpError(
                f"trainer.max_epochs={max_epochs} must be >= sum(model.pretrain_epochs)={self.n_pretrain_epochs}"
                + (
                    f" + at least 1 epoch of finetune={self.hparams.finetune}"
                    if needed > self.n_pretrain_epochs
                    else ""
                )
            )

    def on_train_epoch_start(self) -> None:
        phase, layer = self.phase(self.current_epoch)
        self.phase_history.append((self.current_epoch, phase, layer))
        log.info("epoch %d: %s layer %d", self.current_epoch, phase, layer)
        if phase == "finetune" and self.hparams.finetune == "autoencoder" and not self.unrolled:
            self.unroll()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        # where the stack stood when saved (readable without loading the model); a resumed fit
        # recomputes its phase from the restored epoch, so it continues in this layer or the next
        phase, layer = self.phase(self.current_epoch)
        checkpoint["dbn_phase"] = {
            "epoch": self.current_epoch,
            "phase": phase,
            "layer": layer,
            "pretrain_epochs": list(self.pretrain_epochs),
        }

    # ---- the up pass and the stack's pieces -------------------------------------------------------------
    def propagate_up(self, v: torch.Tensor, n_layers: int) -> torch.Tensor:
        """The data for RBM `n_layers`: v pushed through RBMs [0, n_layers) as probabilities
        p(h|v) ("mean") or as samples h ~ p(h|v) ("sample")."""
        for rbm in self.rbms[:n_layers]:
            v = rbm.propup(v)[1] if self.hparams.propagate == "mean" else rbm.sample_h_given_v(v)[2]
        return v

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic up pass sigm(h W + hbias) (linear at a Gaussian code layer), with dropout
        (Srivastava et al. 2014) on the input and on every hidden layer while training."""
        h = F.dropout(x.reshape(len(x), -1), self.hparams.dropout_input, self.training)
        for i, rbm in enumerate(self.rbms):
            h = rbm.propup(h)[1]
            if i < len(self.rbms) - 1 or self.hparams.finetune == "classifier":
                h = F.dropout(h, self.hparams.dropout, self.training)
        return h

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_classes]."""
        return self.logreg(self.encode(x))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Pixel logits [B, 784] from a code: sigmoid decoder layers, logistic output units."""
        h = code
        for j in reversed(range(len(self.decoder))):
            h = self.decoder[j](h)
            if j > 0:
                h = torch.sigmoid(h)
        return h

    @torch.no_grad()
    def unroll(self) -> None:
        """Initialise the decoder with the transposed encoder weights and the visible biases
        (Hinton & Salakhutdinov 2006, Fig. 1 "Unrolling"); from here on they are fine-tuned separately."""
        for rbm, layer in zip(self.rbms, self.decoder, strict=True):
            layer.weight.copy_(rbm.W)  # [n_visible, n_hidden]: h -> h W^T
            layer.bias.copy_(rbm.vbias)
        self.unrolled.fill_(1)
        log.info("unrolled the autoencoder: %s", " -> ".join(map(str, self.layer_sizes + self.layer_sizes[-2::-1])))

    # ---- training -------------------------------------------------------------------------------------
    def _momentum(self, epoch_in_layer: int) -> float:
        # 0.5 for the first epochs of each layer, then 0.9 (Hinton & Salakhutdinov 2006, supporting notes)
        h = self.hparams
        return h.momentum if epoch_in_layer < h.momentum_epochs else h.final_momentum

    def _finetune_lr(self, batch_idx: int) -> float:
        """Cosine decay to 0 over the fine-tuning epochs (Loshchilov & Hutter 2017), a function of the
        epoch and batch only, so it resumes exactly."""
        n_batches = max(1, int(self.trainer.num_training_batches))
        total = max(1, (self.trainer.max_epochs - self.n_pretrain_epochs) * n_batches)
        t = (self.current_epoch - self.n_pretrain_epochs) * n_batches + batch_idx
        return self.hparams.finetune_lr * 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total))

    def training_step(self, batch, batch_idx):
        x, y = batch
        opts = self.optimizers()
        opts = opts if isinstance(opts, list) else [opts]
        phase, layer = self.phase(self.current_epoch)
        if phase == "pretrain":
            opt = opts[layer]
            start = sum(self.pretrain_epochs[:layer])
            for group in opt.param_groups:
                group["momentum"] = self._momentum(self.current_epoch - start)
            # 1. this layer's data: the frozen layers below, no graph
            with torch.no_grad():
                v = self.propagate_up(x.reshape(len(x), -1), layer)
            # 2. CD-k / PCD-k on RBM `layer` only: cost = mean F(v) - mean F(chain_end)
            cost, _ = self.rbms[layer].cd_loss(v)
            self.step_optimizer(opt, cost)
            self.log(f"train/cost_layer{layer}", cost.detach(), on_step=False, on_epoch=True)
            return cost.detach()
        # fine-tuning: all weights by backprop
        opt = opts[-1]
        for group in opt.param_groups:
            group["lr"] = self._finetune_lr(batch_idx)
        x = random_shift(x, self.hparams.max_shift)
        # bf16 autocast (float32 weights, optimizer and evaluation): ~2x faster matmuls on CPUs with bf16 units
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.hparams.finetune_autocast):
            if self.hparams.finetune == "classifier":
                losses = self.classifier_losses(x, y)
            else:
                losses = self.autoencoder_losses(x)
        self.step_optimizer(opt, losses["loss"])
        self.gen_step += 1
        for key, value in losses.items():
            self.log(f"train/{key}", value.detach(), on_step=False, on_epoch=True, prog_bar=key == "loss")
        return losses["loss"].detach()

    def classifier_losses(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.classify(x)
        loss = F.cross_entropy(logits, y)
        return {"loss": loss, "error": (logits.argmax(1) != y).float().mean()}

    def autoencoder_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy of the logistic output units, summed over pixels (the paper's MNIST error)."""
        target = x.reshape(len(x), -1)
        logits = self.decode(self.encode(x))
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(x)
        sq = (torch.sigmoid(logits) - target).pow(2).sum(1).mean()
        return {"loss": loss, "recon_sq_error": sq}

    def configure_optimizers(self):
        # one SGD per RBM (weight decay on W only: Hinton 2010, sec. 10), then one Adam for fine-tuning
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
        if self.hparams.finetune != "generate":
            # the classifier/encoder use W and hbias of every RBM; vbias only lives on in the decoder
            params = [p for rbm in self.rbms for p in (rbm.W, rbm.hbias)]
            params += list(self.logreg.parameters()) if self.hparams.finetune == "classifier" else []
            params += list(self.decoder.parameters()) if self.hparams.finetune == "autoencoder" else []
            opts.append(
                torch.optim.AdamW(params, lr=self.hparams.finetune_lr, weight_decay=self.hparams.finetune_weight_decay)
            )
        return opts

    # ---- evaluation -----------------------------------------------------------------------------------
    def _eval(self, batch, split: str) -> None:
        x, y = batch
        # validation follows the training phase; test evaluates the finished model
        phase, layer = self.phase(self.current_epoch if split == "val" else self.n_pretrain_epochs)
        if phase == "pretrain":
            # reconstruction cross-entropy of the current layer's input after one mean-field up-down pass
            v = self.propagate_up(x.reshape(len(x), -1), layer)
            pre_v = self.rbms[layer].propdown(self.rbms[layer].propup(v)[1])[0]
            xent = F.binary_cross_entropy_with_logits(pre_v, v, reduction="sum") / len(v)
            self.log(f"{split}/recon_xent_layer{layer}", xent, sync_dist=True)
            return
        if self.hparams.finetune == "classifier":
            losses = self.classifier_losses(x, y)
            self.log(f"{split}/acc", 1.0 - losses["error"], sync_dist=True)
        else:
            losses = self.autoencoder_losses(x)
        for key, value in losses.items():
            self.log(f"{split}/{key}", value, sync_dist=True, prog_bar=key != "loss")

    def validation_step(self, batch, batch_idx):
        self._eval(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval(batch, "test")

    def on_test_epoch_end(self) -> None:
        if self.hparams.finetune != "autoencoder" or self.trainer.datamodule is None:
            return
        # the PCA baseline at the code size, fitted on the same training images (H&S 2006, Fig. 2)
        dm = self.trainer.datamodule
        train, test = dm.split_tensors("train")[0], dm.split_tensors("test")[0]
        err = pca_recon_sq_error(train, test, self.layer_sizes[-1])
        self.log("test/pca_recon_sq_error", err, rank_zero_only=True)
        if self.trainer.is_global_zero:
            self._save_reconstructions(test[:10])

    @torch.no_grad()
    def _save_reconstructions(self, x: torch.Tensor) -> None:
        """Rows: test images, the fine-tuned autoencoder's reconstructions (the paper's Fig. 2A layout)."""
        recon = torch.sigmoid(self.decode(self.encode(x.to(self.device)))).reshape(-1, 1, 28, 28).cpu()
        path = Path(self.trainer.default_root_dir) / "reconstructions.png"
        viz.save_png(viz.grid(torch.cat([x, recon]), nrow=len(x), scale=2), path)

    # ---- generation -----------------------------------------------------------------------------------
    def sampling_depth(self) -> int:
        """How many RBMs the generative path uses: up to the one being (or last) trained."""
        if self._trainer is None:
            return len(self.rbms)
        phase, layer = self.phase(self.current_epoch)
        return layer + 1

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
            v = torch.rand(n, top.hparams.n_visible, generator=generator, device=self.device).lt(0.5).float()
        v_mean = v
        for _ in range(self.hparams.sample_steps):
            *_, v_mean, v = top.gibbs_vhv(v, generator)
        h = v_mean  # the top RBM's visible probabilities start the down pass
        for rbm in reversed(self.rbms[: depth - 1]):
            if self.hparams.sample_down == "sample":
                h = torch.bernoulli(h, generator=generator)
            h = rbm.propdown(h)[1]
        return h.reshape(n, 1, 28, 28).clamp(0, 1)
