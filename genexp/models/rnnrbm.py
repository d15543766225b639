"""The RNN-RBM (Boulanger-Lewandowski, Bengio & Vincent 2012, "Modeling temporal dependencies in
high-dimensional sequences", sec. 3; the deeplearning.net RNN-RBM tutorial): a sequence of binary frames
v^(1..T) (piano rolls, 88 keys) where the frame at time t is drawn from an RBM whose biases are set by an
RNN that has read the frames before it:

    b_h^(t) = b_h + W_uh u^(t-1),   b_v^(t) = b_v + W_uv u^(t-1)          (eq. 9-10)
    u^(t)   = tanh(b_u + W_uu u^(t-1) + W_vu v^(t)),   u^(0) = 0          (eq. 11, an Elman RNN)
    p(v^(t) | v^(<t)) = the RBM with W, b_v^(t), b_h^(t): exp(-F_t(v^(t))) / Z_t

The RBM maths (conditionals, free energy, Gibbs steps) are `genexp.nn.rbm.RBMCore`'s with per-frame
biases. Training: CD-k per frame (k = 15 in the tutorial), chains started at the data, written as the
chapter's free-energy difference `mean_t F_t(v^(t)) - mean_t F_t(v*^(t))` with the negative particles v*
detached; its gradient flows through b_v^(t), b_h^(t) into the RNN by backprop through time (the
tutorial's `T.grad(cost, params, consider_constant=[v_sample])`). Generation: the RNN runs forward and
each frame is the end of `sample_steps` Gibbs steps from an empty frame (25 in the tutorial).

Evaluation (conf/eval/sequence.yaml): `log_likelihood` sums log p(v^(t) | v^(<t)) = -F_t(v^(t)) - log Z_t
over a piece's frames; Z_t changes with t, so it is computed per frame: exactly (the smaller layer
enumerated) when min(n_visible, n_hidden) <= 20, else by AIS (Salakhutdinov & Murray 2008) for every
frame at once, each frame annealed from a base-rate model at its own mean-field visible marginals (an
estimate: unbiased in Z_t, so log p is optimistic on average). `predict_frames` gives the mean-field
visible marginals of each frame's RBM given the frames before it (the frame-accuracy prediction).
"""

from __future__ import annotations

import torch
from torch import nn

from genexp.models.base import GenerativeModule
from genexp.nn import ais
from genexp.nn.rbm import RBMCore
from genexp.validate import flag, number


class RNNRBM(GenerativeModule):
    val_metric, val_mode = "val/frame_acc", "max"  # frame-level accuracy of the next-frame prediction (Bay et al. 2009)
    data_kinds = ("sequence",)
    ddp_unused_parameters = False  # every parameter is in every step's free-energy difference

    def __init__(
        self,
        *,
        n_visible: int,
        n_hidden: int,
        n_hidden_recurrent: int,
        k: int,
        sample_steps: int,
        sample_length: int,
        lr: float,
        cosine: bool,
        seed: int | None,
    ):
        super().__init__()
        number("model.n_visible", n_visible, 1, integer=True)
        number("model.n_hidden", n_hidden, 1, integer=True)
        number("model.n_hidden_recurrent", n_hidden_recurrent, 1, integer=True)
        number("model.k", k, 1, integer=True)
        number("model.sample_steps", sample_steps, 1, integer=True)
        number("model.sample_length", sample_length, 1, integer=True)
        number("model.lr", lr, 0, low_open=True)
        flag("model.cosine", cosine)
        number("model.seed", seed, integer=True, null=True)
        self.save_hyperparameters()
        self.n_inputs, self.n_inputs_key = n_visible, "model.n_visible"  # keys per frame, named on a mismatch
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        # the tutorial's initialisation: W ~ N(0, 0.01), the RNN's weights ~ N(0, 1e-4), biases 0
        self.rbm = RBMCore(n_visible, n_hidden, k=k, generator=g)
        self.W_uv = nn.Parameter(torch.empty(n_hidden_recurrent, n_visible))
        self.W_uh = nn.Parameter(torch.empty(n_hidden_recurrent, n_hidden))
        self.rnn = nn.RNN(n_visible, n_hidden_recurrent, nonlinearity="tanh", batch_first=True)  # eq. 11
        with torch.no_grad():
            self.rbm.W.normal_(0.0, 0.01, generator=g)
            for w in (self.W_uv, self.W_uh, self.rnn.weight_ih_l0, self.rnn.weight_hh_l0):
                w.normal_(0.0, 1e-4, generator=g)
            self.rnn.bias_ih_l0.zero_(), self.rnn.bias_hh_l0.zero_()  # b_u = their sum

    # ---- the model ---------------------------------------------------------------------------------------
    def biases(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """b_v^(t), b_h^(t) for t = 1..T from the frames before t: x [B, T, n_visible] -> [B, T, n_visible],
        [B, T, n_hidden] (teacher forcing: the RNN reads the data)."""
        u, _ = self.rnn(x)  # [B, T, n_u]: u^(1..T)
        u_prev = torch.cat([torch.zeros_like(u[:, :1]), u[:, :-1]], 1)  # u^(0..T-1), u^(0) = 0
        return self.rbm.vbias + u_prev @ self.W_uv, self.rbm.hbias + u_prev @ self.W_uh

    @staticmethod
    def mask(lengths: torch.Tensor, n_frames: int) -> torch.Tensor:
        """[B, T] True on each piece's frames (the rest is padding)."""
        return torch.arange(n_frames, device=lengths.device)[None] < lengths[:, None]

    def frames(self, x: torch.Tensor, lengths: torch.Tensor):
        """The valid frames and their RBMs' biases as rows: (v [N, n_visible], b_v [N, n_visible], b_h [N, n_hidden],
        mask [B, T]), x trimmed to the longest piece."""
        x = x[:, : int(lengths.max())]
        bv, bh = self.biases(x)
        m = self.mask(lengths, x.shape[1])
        return x[m], bv[m], bh[m], m

    def mean_field(self, bv: torch.Tensor, bh: torch.Tensor) -> torch.Tensor:
        """The mean-field visible marginals of RBMs with biases bv, bh: `sample_steps` iterations of
        v = sigm(b_v + W sigm(b_h + W^T v)) from v = sigm(b_v)."""
        shape, bv, bh = bv.shape, bv.reshape(-1, bv.shape[-1]), bh.reshape(-1, bh.shape[-1])  # rows [N, n]
        v = torch.sigmoid(bv)
        for _ in range(self.hparams.sample_steps):
            v = self.rbm.propdown(self.rbm.propup(v, bh)[1], bv)[1]
        return v.reshape(shape)

    # ---- training ----------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x, lengths = batch
        opt = self.optimizers()
        if self.hparams.cosine:
            self.set_cosine_lr(opt, self.hparams.lr, batch_idx)
        # 1. the RNN over the data: every frame's RBM biases
        v, bv, bh, _ = self.frames(x, lengths)
        # 2. CD-k negative particles, chains started at the data, no gradient through them
        with torch.no_grad():
            v_neg = v
            for _ in range(self.hparams.k):
                v_neg = self.rbm.gibbs_vhv(v_neg, None, bh, bv)[5]
        # 3. the free-energy difference, its gradient through b_v^(t), b_h^(t) into the RNN (BPTT)
        cost = (self.rbm.free_energy(v, bh, bv) - self.rbm.free_energy(v_neg, bh, bv)).mean()
        self.step_optimizer(opt, cost)
        self.gen_step += 1
        self.log_epoch_mean("train/cost", cost.detach())
        return {"cost": cost.detach()}

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    # ---- validation: the next-frame prediction ------------------------------------------------------------
    def _eval(self, batch, split: str) -> dict[str, torch.Tensor]:
        """`<split>/pred_xent`: cross-entropy (nats per frame) of the frames under the mean-field prediction
        (keys taken as independent: not the log-likelihood). Returns the prediction, from which the
        FrameAccuracy callback counts val/frame_acc (conf/eval/sequence.yaml)."""
        x, lengths = batch
        p = self.predict_frames(x, lengths)
        m = self.mask(lengths, p.shape[1])
        truth = x[:, : p.shape[1]]
        q, t = p[m].clamp(1e-6, 1 - 1e-6), truth[m]  # (written out: a NaN prediction gives NaN, not an error)
        xent = -(t * q.log() + (1 - t) * (-q).log1p()).sum() / m.sum()
        sync = self._trainer is not None and self.trainer.world_size > 1
        self.log(f"{split}/pred_xent", xent, sync_dist=sync, batch_size=int(m.sum()))
        return {"frames": p}

    def validation_step(self, batch, batch_idx):
        return self._eval(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval(batch, "test")  # test/frame_acc and test/loglik_step: conf/eval/sequence.yaml

    # ---- what the evaluation callbacks use ------------------------------------------------------------------
    @torch.no_grad()
    def predict_frames(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """p(v_i^(t) = 1 | v^(<t)) by mean field, [B, T_longest, n_visible] (0 after each piece's end)."""
        x = x[:, : int(lengths.max())]
        bv, bh = self.biases(x)
        return self.mean_field(bv, bh) * self.mask(lengths, x.shape[1])[..., None]

    @torch.no_grad()
    def log_likelihood(self, x, lengths, ais_chains: int = 20, ais_betas: int = 1000, seed: int = 0):
        """log p(piece) = sum_t -F_t(v^(t)) - log Z_t per piece [B], nats, float64 (see the module docstring)."""
        v, bv, bh, m = self.frames(x, lengths)
        W = self.rbm.W
        if min(W.shape) <= ais.MAX_EXACT_UNITS:
            log_z, self._ess = ais.exact_log_partition_rows(W, bh, bv), None
        else:
            p = self.mean_field(bv, bh).clamp(1e-3, 1 - 1e-3)  # the base-rate model of each frame
            log_z, self._ess = ais.ais_log_partition_rows(
                W, bh, bv, p.log() - (-p).log1p(), ais_chains, ais_betas, seed
            )
        per_frame = -_free_energy64(self.rbm, v, bh, bv) - log_z
        piece = torch.arange(len(m), device=m.device)[:, None].expand_as(m)[m]  # the piece of each frame
        return torch.zeros(len(m), dtype=torch.float64, device=v.device).index_add_(0, piece, per_frame)

    @property
    def likelihood_kind(self) -> str:
        return "exact" if min(self.rbm.W.shape) <= ais.MAX_EXACT_UNITS else "ais"

    def likelihood_info(self) -> dict[str, float]:
        ess = getattr(self, "_ess", None)
        return {} if ess is None else {"ais_ess_mean": float(ess.mean()), "ais_ess_min": float(ess.min())}

    # ---- sampling ------------------------------------------------------------------------------------------
    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.hparams.sample_length, self.hparams.n_visible)

    @torch.no_grad()
    def sample(self, n: int, labels=None, generator: torch.Generator | None = None, length: int | None = None):
        """n binary piano rolls [n, length (default sample_length), n_visible]: the RNN runs forward on its own
        frames, each frame the end of `sample_steps` Gibbs steps from an empty frame (the tutorial's 25)."""
        length = self.hparams.sample_length if length is None else length
        out = torch.zeros(n, length, self.hparams.n_visible, device=self.device)
        u = torch.zeros(1, n, self.hparams.n_hidden_recurrent, device=self.device)  # u^(0)
        for t in range(length):
            bv, bh = self.rbm.vbias + u[0] @ self.W_uv, self.rbm.hbias + u[0] @ self.W_uh
            v = torch.zeros(n, self.hparams.n_visible, device=self.device)
            for _ in range(self.hparams.sample_steps):
                v = self.rbm.gibbs_vhv(v, generator, bh, bv)[5]
            out[:, t] = v
            u = self.rnn(v[:, None], u)[1]  # u^(t) from v^(t), u^(t-1)
        return out


def _free_energy64(rbm: RBMCore, v, bh, bv) -> torch.Tensor:
    """F_t(v) per row in float64 (the log-likelihood sums thousands of them)."""
    return rbm.free_energy_from(v.double(), torch.addmm(bh.double(), v.double(), rbm.W.double()), bv.double())
