"""Bernoulli-Bernoulli Restricted Boltzmann Machine trained by CD-k or PCD-k.

Energy E(v, h) = -v.vbias - h.hbias - v^T W h, so that (Hinton 2002; the deeplearning.net RBM tutorial)

    p(h_j = 1 | v) = sigm(v W_{:,j} + hbias_j)        (propup)
    p(v_i = 1 | h) = sigm(W_{i,:} h + vbias_i)         (propdown)
    F(v) = -v.vbias - sum_j softplus(v W_{:,j} + hbias_j)   (free energy, p(v) = exp(-F(v)) / Z)

The update is the chapter's cost `mean F(v0) - mean F(chain_end)` with the negative particles
detached: its gradient is the CD-k (chain started at the data) or PCD-k (chain kept between updates,
Tieleman 2008) estimate of -d log p(v0) / d theta, stepped by an ordinary torch optimizer, so DDP
averages it like any other gradient. Names follow the Theano tutorial the chapter is built on.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from genexp import GenexpError
from genexp.models.base import GenerativeModule

log = logging.getLogger(__name__)

LR_SCHEDULES = ("constant", "exponential", "linear")


class RBM(GenerativeModule):
    monitor = "val/recon_xent"
    monitor_mode = "min"
    primary_metric = "test/loglik_ais"

    def __init__(
        self,
        n_visible: int = 784,
        n_hidden: int = 500,
        k: int = 1,
        persistent: bool = False,
        lr: float = 0.1,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
        lr_decay: float = 1.0,
        batch_size_hint: int | None = None,
        sample_steps: int = 1000,
        n_chains_plot: int = 20,
        n_samples_plot: int = 10,
        plot_every: int = 1000,
        n_gap: int = 1000,
        ais_chains: int = 100,
        ais_betas: int = 14500,
        ais_seed: int = 0,
        test_binarize_seed: int = 0,
        seed: int | None = None,
    ):
        super().__init__()
        for name, value, low in (
            ("n_visible", n_visible, 1),
            ("n_hidden", n_hidden, 1),
            ("k", k, 1),
            ("sample_steps", sample_steps, 1),
            ("plot_every", plot_every, 1),
            ("ais_chains", ais_chains, 0),
            ("ais_betas", ais_betas, 2),
        ):
            if int(value) < low:
                raise GenexpError(f"model.{name}={value} must be an integer >= {low}")
        if lr <= 0:
            raise GenexpError(f"model.lr={lr} must be > 0")
        if lr_schedule not in LR_SCHEDULES:
            raise GenexpError(f"model.lr_schedule={lr_schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
        if not 0 < lr_decay <= 1:
            raise GenexpError(f"model.lr_decay={lr_decay} must be in (0, 1]")
        self.save_hyperparameters()
        # Glorot-uniform W (the chapter: U(-4 sqrt(6/(nv+nh)), ...) is for sigmoid units; we keep the
        # factor 4 like the tutorial), zero biases.
        bound = 4.0 * math.sqrt(6.0 / (n_visible + n_hidden))
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        self.W = nn.Parameter(torch.empty(n_visible, n_hidden).uniform_(-bound, bound, generator=g))
        self.hbias = nn.Parameter(torch.zeros(n_hidden))
        self.vbias = nn.Parameter(torch.zeros(n_visible))
        # PCD: one chain (hidden state, like the tutorial's `persistent_chain`) per batch row, per rank.
        # Created at the first batch; in the state_dict (so a DBN holding RBMs saves it too) and, for
        # every rank, in the Lightning checkpoint (`on_save_checkpoint`).
        self.register_buffer("persistent_chain", torch.zeros(0, n_hidden))
        self._pll_index = 0  # the tutorial's `bit_i_idx`: which bit the stochastic PLL flips next

    # ---- conditionals and Gibbs steps (the tutorial's vocabulary) --------------------------------------
    def propup(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre_sigmoid_h, p(h=1|v)) for v [B, n_visible]."""
        pre_sigmoid_h = torch.addmm(self.hbias, v, self.W)  # [B, n_hidden]
        return pre_sigmoid_h, torch.sigmoid(pre_sigmoid_h)

    def propdown(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre_sigmoid_v, p(v=1|h)) for h [B, n_hidden]."""
        pre_sigmoid_v = torch.addmm(self.vbias, h, self.W.t())  # [B, n_visible]
        return pre_sigmoid_v, torch.sigmoid(pre_sigmoid_v)

    def sample_h_given_v(self, v0: torch.Tensor, generator: torch.Generator | None = None):
        """(pre_sigmoid_h1, h1_mean, h1_sample)."""
        pre_sigmoid_h1, h1_mean = self.propup(v0)
        return pre_sigmoid_h1, h1_mean, torch.bernoulli(h1_mean, generator=generator)

    def sample_v_given_h(self, h0: torch.Tensor, generator: torch.Generator | None = None):
        """(pre_sigmoid_v1, v1_mean, v1_sample)."""
        pre_sigmoid_v1, v1_mean = self.propdown(h0)
        return pre_sigmoid_v1, v1_mean, torch.bernoulli(v1_mean, generator=generator)

    def gibbs_hvh(self, h0: torch.Tensor, generator: torch.Generator | None = None):
        """One step h -> v -> h: (pre_v, v_mean, v_sample, pre_h, h_mean, h_sample)."""
        pre_v, v_mean, v_sample = self.sample_v_given_h(h0, generator)
        pre_h, h_mean, h_sample = self.sample_h_given_v(v_sample, generator)
        return pre_v, v_mean, v_sample, pre_h, h_mean, h_sample

    def gibbs_vhv(self, v0: torch.Tensor, generator: torch.Generator | None = None):
        """One step v -> h -> v: (pre_h, h_mean, h_sample, pre_v, v_mean, v_sample)."""
        pre_h, h_mean, h_sample = self.sample_h_given_v(v0, generator)
        pre_v, v_mean, v_sample = self.sample_v_given_h(h_sample, generator)
        return pre_h, h_mean, h_sample, pre_v, v_mean, v_sample

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """F(v) = -v.vbias - sum_j softplus(v W + hbias)_j, shape [B]."""
        return -(v @ self.vbias) - F.softplus(torch.addmm(self.hbias, v, self.W)).sum(1)

    # ---- the learning signal --------------------------------------------------------------------------
    def _chain_start(self, v0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not self.hparams.persistent:  # CD-k: the chain starts at h ~ p(h | v0)
            return self.sample_h_given_v(v0, generator)[2]
        if self.persistent_chain.shape != (len(v0), self.hparams.n_hidden):
            if self.persistent_chain.numel():
                log.warning(
                    "PCD: %d chains but a batch of %d rows; restarting the chains", len(self.persistent_chain), len(v0)
                )
            # the tutorial starts its persistent chain at h = 0
            self.persistent_chain = torch.zeros(len(v0), self.hparams.n_hidden, device=v0.device, dtype=v0.dtype)
        return self.persistent_chain

    def cd_loss(self, v0: torch.Tensor, generator: torch.Generator | None = None):
        """(cost, chain_end): cost = mean F(v0) - mean F(chain_end) after k Gibbs steps h -> v -> h.

        d cost / d theta = E_data[dF/dtheta] - E_chain[dF/dtheta], the CD-k / PCD-k estimate of
        -d log p(v0)/d theta (Hinton 2002; Tieleman 2008). v0: [B, n_visible] in [0, 1].
        """
        with torch.no_grad():
            h = self._chain_start(v0, generator)
            for _ in range(self.hparams.k):
                _, _, v_sample, _, _, h = self.gibbs_hvh(h, generator)
            if self.hparams.persistent:
                self.persistent_chain.copy_(h)
        chain_end = v_sample.detach()
        cost = self.free_energy(v0).mean() - self.free_energy(chain_end).mean()
        return cost, chain_end

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the chains' shape is only known once trained (batch size): take the saved one
        key = prefix + "persistent_chain"
        if key in state_dict:
            self.persistent_chain = torch.empty_like(state_dict[key], device=self.persistent_chain.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ---- Lightning -----------------------------------------------------------------------------------
    @staticmethod
    def _flat(batch) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return x.reshape(len(x), -1)  # [B, 1, 28, 28] -> [B, 784]; [B, n_visible] unchanged

    def lr_factor(self) -> float:
        """The schedule: constant, lr_decay ** epoch, or linear to 0 over the run (Tieleman 2008)."""
        schedule = self.hparams.lr_schedule
        if schedule == "exponential":
            return self.hparams.lr_decay**self.current_epoch
        if schedule == "linear" and self._trainer is not None:
            total = max(1, self.trainer.max_epochs * self.trainer.num_training_batches)
            return max(0.0, 1.0 - float(self.gen_step) / total)
        return 1.0

    def training_step(self, batch, batch_idx):
        v0 = self._flat(batch)
        opt = self.optimizers()
        # 1. learning rate of this update
        lr = self.hparams.lr * self.lr_factor()
        for group in opt.param_groups:
            group["lr"] = lr
        # 2. negative particles (detached) and the free-energy difference
        cost, _ = self.cd_loss(v0)
        # 3. one SGD step on it
        self.step_optimizer(opt, cost)
        self.gen_step += 1
        self.log("train/cost", cost.detach(), on_step=False, on_epoch=True)
        return cost.detach()

    def configure_optimizers(self):
        # weight decay on W only (Hinton 2010, "A practical guide...", sec. 10): biases are not decayed
        groups = [
            {"params": [self.W], "weight_decay": self.hparams.weight_decay},
            {"params": [self.hbias, self.vbias], "weight_decay": 0.0},
        ]
        return torch.optim.SGD(groups, lr=self.hparams.lr, momentum=self.hparams.momentum)
