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
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genexp import GenexpError
from genexp.models.base import GenerativeModule

log = logging.getLogger(__name__)

LR_SCHEDULES = ("constant", "exponential", "linear")


def bernoulli(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Samples of Bernoulli(p) as float 0/1: 1[u < p] with u ~ U[0, 1). Same distribution as
    torch.bernoulli, 4-7x faster on CPU (measured at 20x500 .. 100x784, one thread)."""
    return torch.empty_like(p).uniform_(generator=generator).lt_(p)


class RBM(GenerativeModule):
    """n_visible x n_hidden binary RBM. Training: k Gibbs steps per update, CD (`persistent=False`) or
    PCD; SGD with `momentum`, L2 `weight_decay` on W, lr schedule `lr_schedule` (`lr_decay` per epoch
    for "exponential"). Monitoring, pictures and AIS at test end as in conf/model/rbm.yaml."""

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
        # Glorot-uniform W with the tutorial's factor 4 for sigmoid units: U(+-4 sqrt(6 / (n_visible + n_hidden)))
        bound = 4.0 * math.sqrt(6.0 / (n_visible + n_hidden))
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        self.W = nn.Parameter(torch.empty(n_visible, n_hidden).uniform_(-bound, bound, generator=g))
        self.hbias = nn.Parameter(torch.zeros(n_hidden))
        self.vbias = nn.Parameter(torch.zeros(n_visible))
        # PCD: one chain (hidden state, like the tutorial's `persistent_chain`) per batch row, per rank,
        # in the state_dict (so a DBN holding RBMs saves it too) and, for every rank, in the Lightning
        # checkpoint (`on_save_checkpoint`). Zeros of [batch_size_hint, n_hidden] as in the tutorial when
        # the batch size is known; a batch of another size restarts the chains at its size.
        n_chains = batch_size_hint if persistent and batch_size_hint else 0
        self.register_buffer("persistent_chain", torch.zeros(n_chains, n_hidden))
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
        return pre_sigmoid_h1, h1_mean, bernoulli(h1_mean, generator)

    def sample_v_given_h(self, h0: torch.Tensor, generator: torch.Generator | None = None):
        """(pre_sigmoid_v1, v1_mean, v1_sample)."""
        pre_sigmoid_v1, v1_mean = self.propdown(h0)
        return pre_sigmoid_v1, v1_mean, bernoulli(v1_mean, generator)

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
    def _persistent_chain(self, v0: torch.Tensor) -> torch.Tensor:
        if self.persistent_chain.shape != (len(v0), self.hparams.n_hidden):
            if self.persistent_chain.numel():
                log.warning(
                    "PCD: %d chains but a batch of %d rows; restarting the chains", len(self.persistent_chain), len(v0)
                )
            # the tutorial starts its persistent chain at h = 0
            self.persistent_chain = torch.zeros(len(v0), self.hparams.n_hidden, device=v0.device, dtype=v0.dtype)
        return self.persistent_chain

    def _free_energy_from(self, v: torch.Tensor, pre_sigmoid_h: torch.Tensor) -> torch.Tensor:
        """F(v) given pre_sigmoid_h = v W + hbias already computed."""
        return -(v @ self.vbias) - F.softplus(pre_sigmoid_h).sum(1)

    def cd_loss(self, v0: torch.Tensor, generator: torch.Generator | None = None):
        """(cost, chain_end): cost = mean F(v0) - mean F(chain_end) after k Gibbs steps h -> v -> h.

        d cost / d theta = E_data[dF/dtheta] - E_chain[dF/dtheta], the CD-k / PCD-k estimate of
        -d log p(v0)/d theta (Hinton 2002; Tieleman 2008). v0: [B, n_visible] in [0, 1].
        """
        v0 = v0.detach()  # data (or a lower layer's activations in a DBN): no gradient flows into it
        if self._shares_propup():
            return self._cd_loss_shared(v0, generator)
        with torch.no_grad():  # the general form, for subclasses with other conditionals / free energy
            h = self._persistent_chain(v0) if self.hparams.persistent else self.sample_h_given_v(v0, generator)[2]
            for _ in range(self.hparams.k):
                _, _, chain_end, _, _, h = self.gibbs_hvh(h, generator)
            if self.hparams.persistent:
                self.persistent_chain.copy_(h)
        cost = self.free_energy(v0).mean() - self.free_energy(chain_end).mean()
        return cost, chain_end

    def _shares_propup(self) -> bool:
        cls = type(self)
        return all(getattr(cls, f) is getattr(RBM, f) for f in ("propup", "sample_h_given_v", "free_energy"))

    def _cd_loss_shared(self, v0: torch.Tensor, generator: torch.Generator | None):
        """cd_loss for the binary RBM with the chain's first and last `propup` shared with F(v0) and
        F(chain_end) (each computed once, with grad): 2k + 1 matrix products per update, not 2k + 3."""
        pre_h0 = torch.addmm(self.hbias, v0, self.W)  # [B, n_hidden]: F(v0), and CD's chain start
        with torch.no_grad():
            if self.hparams.persistent:  # PCD-k: continue the chains of the previous update
                h = self._persistent_chain(v0)
            else:  # CD-k: start at h ~ p(h | v0)
                h = bernoulli(torch.sigmoid(pre_h0.detach()), generator)
            for _ in range(self.hparams.k - 1):
                _, _, _, _, _, h = self.gibbs_hvh(h, generator)
            _, _, chain_end = self.sample_v_given_h(h, generator)  # the k-th step's v
        pre_h_end = torch.addmm(self.hbias, chain_end, self.W)  # F(chain_end), and the k-th step's h
        if self.hparams.persistent:
            with torch.no_grad():
                self.persistent_chain.copy_(bernoulli(torch.sigmoid(pre_h_end.detach()), generator))
        cost = self._free_energy_from(v0, pre_h0).mean() - self._free_energy_from(chain_end, pre_h_end).mean()
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
        # the epoch mean is logged in on_train_epoch_end: a self.log per step costs more than a
        # PCD-1 update's bookkeeping should
        self._cost_sum = self._cost_sum + cost.detach() if batch_idx else cost.detach()
        self._cost_n = batch_idx + 1
        return None

    def configure_optimizers(self):
        # weight decay on W only (Hinton 2010, "A practical guide...", sec. 10): biases are not decayed
        groups = [
            {"params": [self.W], "weight_decay": self.hparams.weight_decay},
            {"params": [self.hbias, self.vbias], "weight_decay": 0.0},
        ]
        return torch.optim.SGD(groups, lr=self.hparams.lr, momentum=self.hparams.momentum)

    # ---- checkpoints: the PCD chains of every rank -------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep each rank's chains: the state_dict holds rank 0's, `pcd_chains` [world, B, n_hidden] all."""
        super().on_save_checkpoint(checkpoint)
        if self.hparams.persistent and self.persistent_chain.numel():
            chains = self.persistent_chain
            world = self.trainer.world_size if self._trainer is not None else 1
            chains = self.all_gather(chains) if world > 1 else chains[None]  # every rank gets here
            checkpoint["pcd_chains"] = chains.detach().cpu()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        chains = checkpoint.get("pcd_chains")
        if chains is not None and "state_dict" in checkpoint:
            rank = self.global_rank if self._trainer is not None else 0
            if self._trainer is not None and self.trainer.world_size != len(chains):
                log.warning(
                    "PCD chains saved by %d ranks, resuming on %d: rank r takes rank r %% %d's",
                    len(chains),
                    self.trainer.world_size,
                    len(chains),
                )
            checkpoint["state_dict"]["persistent_chain"] = chains[rank % len(chains)]

    # ---- monitoring ------------------------------------------------------------------------------------
    def recon_xent(self, v: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of v and its mean-field reconstruction sigm(propdown(p(h|v))), summed over
        pixels, per image [B] (the tutorial's reconstruction cost, without the sampling noise)."""
        pre_sigmoid_v, _ = self.propdown(self.propup(v)[1])
        return F.binary_cross_entropy_with_logits(pre_sigmoid_v, v, reduction="none").sum(1)

    def pseudo_loglik(self, v: torch.Tensor) -> torch.Tensor:
        """Stochastic pseudo-log-likelihood of the deeplearning.net tutorial, per image [B]:
        n_visible * log sigm(F(xi with bit i flipped) - F(xi)), xi = round(v). The tutorial flips one
        bit per mini-batch and moves it on at each call; here row b flips bit (offset + b) mod
        n_visible and the offset moves on by B, so one evaluation pass visits every pixel."""
        xi = torch.round(v)
        rows = torch.arange(len(v), device=v.device)
        bit = (rows + self._pll_index) % self.hparams.n_visible
        self._pll_index = (self._pll_index + len(v)) % self.hparams.n_visible
        xi_flip = xi.clone()
        xi_flip[rows, bit] = 1 - xi_flip[rows, bit]
        return self.hparams.n_visible * F.logsigmoid(self.free_energy(xi_flip) - self.free_energy(xi))

    def _eval(self, batch, split: str) -> None:
        v = self._flat(batch)
        sync = self._trainer is not None and self.trainer.world_size > 1
        self.log(f"{split}/recon_xent", self.recon_xent(v).mean(), sync_dist=sync, prog_bar=split == "val")
        self.log(f"{split}/pseudo_loglik", self.pseudo_loglik(v).mean(), sync_dist=sync)
        self.log(f"{split}/free_energy", self.free_energy(v).mean(), sync_dist=sync)

    def validation_step(self, batch, batch_idx):
        self._eval(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval(batch, "test")

    def _subset(self, split: str) -> torch.Tensor | None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is None or not hasattr(dm, "split_tensors"):
            return None
        x = dm.split_tensors(split)[0][: self.hparams.n_gap]
        return x.reshape(len(x), -1).to(self.device)

    @torch.no_grad()
    def on_validation_epoch_end(self) -> None:
        # overfitting monitor (Hinton 2010, "A practical guide", sec. 6): mean F(val) - mean F(train)
        train_v, val_v = self._subset("train"), self._subset("val")
        if train_v is not None and val_v is not None and len(val_v):
            gap = self.free_energy(val_v).mean() - self.free_energy(train_v).mean()
            self.log("val/free_energy_gap", gap, sync_dist=self.trainer.world_size > 1)

    # ---- sampling and pictures ---------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """n fantasies: v ~ Bernoulli(sigm(vbias)), `sample_steps` Gibbs steps v -> h -> v, the last
        step's p(v | h) (the tutorial plots these means). [n, 1, 28, 28] when n_visible is 784."""
        v = bernoulli(torch.sigmoid(self.vbias).expand(n, -1).contiguous(), generator)
        for _ in range(self.hparams.sample_steps):
            _, _, _, _, v_mean, v = self.gibbs_vhv(v, generator)
        return v_mean.reshape(n, 1, 28, 28) if self.hparams.n_visible == 784 else v_mean

    @torch.no_grad()
    def negative_particles(
        self, v0: torch.Tensor, n_samples: int, plot_every: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The chapter's second figure: chains started at v0 [C, n_visible], p(v | h) every `plot_every`
        Gibbs steps, [n_samples, C, n_visible] (row t = step (t + 1) * plot_every)."""
        rows, v = [], v0
        for _ in range(n_samples):
            for _ in range(plot_every):
                _, _, _, _, v_mean, v = self.gibbs_vhv(v, generator)
            rows.append(v_mean)
        return torch.stack(rows)

    def _save_picture(self, image, name: str, key: str) -> None:
        from genexp import viz
        from genexp.callbacks import log_image

        viz.save_png(image, Path(self.trainer.default_root_dir) / "samples" / name)
        log_image(self.trainer, key, image, step=self.trainer.global_step)

    def on_train_epoch_end(self) -> None:
        if getattr(self, "_cost_n", 0):
            sync = self.trainer.world_size > 1
            self.log("train/cost", self._cost_sum / self._cost_n, sync_dist=sync)
            self._cost_n = 0
        if self.trainer.is_global_zero and self.hparams.n_visible == 784:
            from genexp import viz

            self._save_picture(viz.tile_filters(self.W), f"filters_epoch_{self.current_epoch + 1:03d}.png", "filters")

    def on_train_end(self) -> None:
        n = self.hparams.n_chains_plot
        if not self.trainer.is_global_zero or n <= 0 or self.hparams.n_visible != 784:
            return
        test_v = self._subset("test")
        if test_v is None:
            return
        from genexp import viz

        # 20 consecutive test images (the tutorial picks a random block), fixed generator for the chains
        g = torch.Generator(device=self.device).manual_seed(self.hparams.ais_seed)
        start = int(torch.randint(0, len(test_v) - n + 1, (1,), generator=torch.Generator().manual_seed(123)))
        rows = self.negative_particles(
            test_v[start : start + n], self.hparams.n_samples_plot, self.hparams.plot_every, g
        )
        image = viz.grid(rows.reshape(-1, 1, 28, 28), nrow=n, pad=1)
        self._save_picture(image, "negative_particles.png", "negative_particles")
        log.info("negative particles: %d chains, %d rows %d Gibbs steps apart", n, len(rows), self.hparams.plot_every)

    # ---- log-likelihood by AIS at test end -----------------------------------------------------------
    def on_test_epoch_end(self) -> None:
        if self.hparams.ais_chains <= 0 or self._subset("test") is None:
            return
        if self.trainer.is_global_zero:
            from genexp.metrics.ais import ais_loglik, binarize_test

            dm = self.trainer.datamodule
            train_v = dm.split_tensors("train")[0]
            test_v = binarize_test(dm.split_tensors("test")[0], seed=self.hparams.test_binarize_seed)
            r = ais_loglik(
                self,
                train_v,
                test_v.to(self.device),
                n_chains=self.hparams.ais_chains,
                n_betas=self.hparams.ais_betas,
                seed=self.hparams.ais_seed,
            )
            log.info(
                "AIS: log Z %.3f [%.3f, %.3f], test log-likelihood %.3f nats, ESS %.1f/%d (%.0f s)",
                r.log_z,
                r.log_z_lo,
                r.log_z_hi,
                r.loglik,
                r.ess,
                r.n_chains,
                r.seconds,
            )
            for key, value in (
                ("loglik_ais", r.loglik),
                ("loglik_ais_lo", r.loglik_lo),
                ("loglik_ais_hi", r.loglik_hi),
                ("log_z", r.log_z),
                ("ais_ess", r.ess),
            ):
                self.log(f"test/{key}", float(value), rank_zero_only=True)
