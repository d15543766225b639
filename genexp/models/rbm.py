"""The RBM as a genexp model: CD-k or PCD-k training of `genexp.nn.rbm.RBMCore` (the maths), its
validation monitors, sampling, and its log-likelihood through AIS (`genexp.nn.ais`).

Pictures (filters, negative particles), the free-energy gap and the log-likelihood evaluation are
callbacks switched on in conf/eval/rbm.yaml; this file holds the training maths only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genexp.models.base import GenerativeModule, flat
from genexp.nn import ais
from genexp.nn.rbm import RBMCore, bernoulli
from genexp.validate import choice, flag, number

LR_SCHEDULES = ("constant", "exponential", "linear")


class RBM(GenerativeModule):
    """n_visible x n_hidden binary RBM. k Gibbs steps per update, CD (`persistent=False`) or PCD; SGD
    with `momentum`, L2 `weight_decay` on W, learning-rate schedule `lr_schedule` (`lr_decay` per
    epoch for "exponential", to 0 over the run for "linear")."""

    val_metric, val_mode = "val/recon_xent", "min"
    ddp_unused_parameters = False  # the free-energy loss uses W and both biases at every step
    resizable_buffers = ("rbm.persistent_chain",)  # the PCD chains follow the batch size

    def __init__(
        self,
        *,
        n_visible: int,
        n_hidden: int,
        k: int,
        persistent: bool,
        lr: float,
        momentum: float,
        weight_decay: float,
        lr_schedule: str,
        lr_decay: float,
        sample_steps: int,
        seed: int | None,
    ):
        super().__init__()
        number("model.n_visible", n_visible, 1, integer=True)
        number("model.n_hidden", n_hidden, 1, integer=True)
        number("model.k", k, 1, integer=True)
        flag("model.persistent", persistent)
        number("model.lr", lr, 0, low_open=True)
        number("model.momentum", momentum, 0, 1, high_open=True)
        number("model.weight_decay", weight_decay, 0)
        choice("model.lr_schedule", lr_schedule, LR_SCHEDULES)
        number("model.lr_decay", lr_decay, 0, 1, low_open=True)
        number("model.sample_steps", sample_steps, 1, integer=True)
        number("model.seed", seed, integer=True, null=True)
        self.save_hyperparameters()
        self.n_inputs, self.n_inputs_key = n_visible, "model.n_visible"  # named by check_data on a mismatch
        g = torch.Generator().manual_seed(seed) if seed is not None else None  # the initial weights
        self.rbm = RBMCore(n_visible, n_hidden, k=k, persistent=persistent, generator=g)
        # sum and count of the training pixels (set in on_fit_start): the base-rate model of AIS (S&M 2008, sec. 4.2)
        self.register_buffer("data_sum", torch.zeros(n_visible, dtype=torch.float64))
        self.register_buffer("data_count", torch.zeros((), dtype=torch.float64))
        self._log_z: tuple | None = None  # (parameter versions, options, AISResult) of the last AIS

    # ---- training ------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        """The AIS base rate's pixel sums: the whole training split, once per fit (every DDP rank holds
        the whole split, so all ranks agree; no per-step cost)."""
        dm = self.trainer.datamodule
        if dm is not None and hasattr(dm, "split_tensors"):
            x = dm.split_tensors("train")[0]
            self.data_sum.copy_(x.reshape(len(x), -1).sum(0))  # float32 pairwise sums: ~1e-6 relative
            self.data_count.fill_(len(x))

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
        v0 = flat(batch)
        opt = self.optimizers()
        # 1. learning rate of this update
        for group in opt.param_groups:
            group["lr"] = self.hparams.lr * self.lr_factor()
        # 2. negative particles and the free-energy gradient, in closed form
        cost, grads, _ = self.rbm.cd_grads(v0)
        # 3. one SGD step on it (under DDP averaged over ranks)
        self.step_with_grads(opt, (self.rbm.W, self.rbm.hbias, self.rbm.vbias), grads)
        self.gen_step += 1
        self.log_epoch_mean("train/cost", cost)
        return {"cost": cost.detach()}  # loss terms, for the divergence guard

    def configure_optimizers(self):
        # weight decay on W only (Hinton 2010, "A practical guide...", sec. 10): biases are not decayed
        groups = [
            {"params": [self.rbm.W], "weight_decay": self.hparams.weight_decay},
            {"params": [self.rbm.hbias, self.rbm.vbias], "weight_decay": 0.0},
        ]
        return torch.optim.SGD(groups, lr=self.hparams.lr, momentum=self.hparams.momentum)

    # ---- checkpoints: the PCD chains of every rank -----------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep each rank's chains: the state_dict holds rank 0's, `pcd_chains` [world, B, n_hidden] all."""
        super().on_save_checkpoint(checkpoint)
        chains = self.rbm.persistent_chain
        if self.hparams.persistent and chains.numel():
            world = self.trainer.world_size if self._trainer is not None else 1
            chains = self.all_gather(chains) if world > 1 else chains[None]  # every rank gets here
            checkpoint["pcd_chains"] = chains.detach().cpu()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        chains = checkpoint.get("pcd_chains")
        if chains is not None and "state_dict" in checkpoint:
            rank = self.global_rank if self._trainer is not None else 0
            checkpoint["state_dict"]["rbm.persistent_chain"] = chains[rank % len(chains)]

    # ---- validation ------------------------------------------------------------------------------------
    def pseudo_loglik(self, v: torch.Tensor) -> torch.Tensor:
        """Pseudo-log-likelihood of the deeplearning.net tutorial, per image [B]:
        n_visible * log sigm(F(xi with bit i flipped) - F(xi)), xi = round(v), with row b flipping bit
        b mod n_visible (deterministic, so runs compare)."""
        xi = torch.round(v)
        rows = torch.arange(len(v), device=v.device)
        bit = rows % self.hparams.n_visible
        xi_flip = xi.clone()
        xi_flip[rows, bit] = 1 - xi_flip[rows, bit]
        return self.hparams.n_visible * F.logsigmoid(self.rbm.free_energy(xi_flip) - self.rbm.free_energy(xi))

    def _eval(self, batch, split: str) -> None:
        v = flat(batch)
        sync = self._trainer is not None and self.trainer.world_size > 1
        self.log(f"{split}/recon_xent", self.rbm.recon_xent(v).mean(), sync_dist=sync, prog_bar=split == "val")
        self.log(f"{split}/pseudo_loglik", self.pseudo_loglik(v).mean(), sync_dist=sync)

    def validation_step(self, batch, batch_idx):
        self._eval(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval(batch, "test")

    # ---- what the evaluation callbacks use -------------------------------------------------------------
    def free_energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.rbm.free_energy(x.reshape(len(x), -1))

    def filters(self) -> torch.Tensor:
        return self.rbm.W

    def gibbs_chain(self, x0: torch.Tensor, n_rows: int, steps_between: int, generator=None) -> torch.Tensor:
        rows = self.rbm.gibbs_chain(x0.reshape(len(x0), -1), n_rows, steps_between, generator)
        return rows.reshape(n_rows, len(x0), *x0.shape[1:])

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """n fantasies: v ~ Bernoulli(sigm(vbias)), `sample_steps` Gibbs steps v -> h -> v, the last
        step's p(v | h) (the tutorial plots these means). [n, 1, 28, 28] when n_visible is 784."""
        v = bernoulli(torch.sigmoid(self.rbm.vbias).expand(n, -1).contiguous(), generator)
        v_mean = v
        for _ in range(self.hparams.sample_steps):
            *_, v_mean, v = self.rbm.gibbs_vhv(v, generator)
        return v_mean.reshape(n, 1, 28, 28) if self.hparams.n_visible == 784 else v_mean

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (1, 28, 28) if self.hparams.n_visible == 784 else (self.hparams.n_visible,)

    def log_partition(self, ais_chains: int = 100, ais_betas: int = 14500, seed: int = 0) -> ais.AISResult:
        """log Z by AIS from the base-rate model of the training pixels (exact for tiny RBMs), kept
        until the parameters change."""
        key = (tuple(p._version for p in self.rbm.parameters()), ais_chains, ais_betas, seed)
        if self._log_z is None or self._log_z[0] != key:
            mean = self.data_sum / self.data_count if self.data_count > 0 else torch.full_like(self.data_sum, 0.5)
            p = mean.clamp(1e-3, 1 - 1e-3)  # smoothed base rate, b_A = logit(p)
            result = ais.log_partition(self.rbm, p.log() - (-p).log1p(), ais_chains, ais_betas, seed)
            self._log_z = (key, result)
        return self._log_z[1]

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, ais_chains: int = 100, ais_betas: int = 14500, seed: int = 0):
        """log p(x) = -F(x) - log Z per row [B], nats, float64; x binary."""
        log_z = self.log_partition(ais_chains, ais_betas, seed)
        return ais.neg_free_energy(self.rbm, x) - log_z.log_z

    @property
    def likelihood_kind(self) -> str:
        """log Z by AIS (unbiased in Z, so log p is optimistic on average: S&M 2008), exact when the
        smaller layer can be enumerated."""
        return "exact" if min(self.rbm.W.shape) <= ais.MAX_EXACT_UNITS else "ais"

    def likelihood_info(self) -> dict[str, float]:
        r = self._log_z[1] if self._log_z else None
        if r is None:
            return {}
        info = {"log_z": r.log_z, "log_z_lo": r.log_z_lo, "log_z_hi": r.log_z_hi}
        return info if self.likelihood_kind == "exact" else {**info, "ais_ess": r.ess}
