"""The maths of the Bernoulli-Bernoulli Restricted Boltzmann Machine, as a plain `nn.Module` that the
RBM model, the DBN's layers, AIS and (later) the RNN-RBM share.

Energy E(v, h) = -v.vbias - h.hbias - v^T W h, so that (Hinton 2002; the deeplearning.net RBM tutorial)

    p(h_j = 1 | v) = sigm(v W_{:,j} + hbias_j)        (propup)
    p(v_i = 1 | h) = sigm(W_{i,:} h + vbias_i)         (propdown)
    F(v) = -v.vbias - sum_j softplus(v W_{:,j} + hbias_j)   (free energy, p(v) = exp(-F(v)) / Z)

Every conditional and the free energy also take per-row biases ([B, n] instead of the shared vectors):
the RNN-RBM's RBM at time t has biases b_v^(t), b_h^(t) set by its RNN (Boulanger-Lewandowski et al.
2012, eq. 9-10), with the same W.

The learning signal is the chapter's cost `mean F(v0) - mean F(chain_end)` with the negative particles
detached: its gradient is the CD-k (chain started at the data) or PCD-k (chain kept between updates,
Tieleman 2008) estimate of -d log p(v0) / d theta; `cd_grads` gives it in closed form, for any torch
optimizer to step.
Names follow the Theano tutorial the chapter is built on.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


def bernoulli(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Samples of Bernoulli(p) as float 0/1: 1[u < p] with u ~ U[0, 1). Same distribution as
    torch.bernoulli, 4-7x faster on CPU (measured at 20x500 .. 100x784, one thread)."""
    return torch.empty_like(p).uniform_(generator=generator).lt_(p)


def visible_term(v: torch.Tensor, vbias: torch.Tensor) -> torch.Tensor:
    """v.vbias per row [B]: one matrix-vector product for shared biases, a row-wise one for per-row biases."""
    return v @ vbias if vbias.dim() == 1 else (v * vbias).sum(1)


class RBMCore(nn.Module):
    """W [n_visible, n_hidden], hbias, vbias, and the PCD chains (`persistent_chain`, hidden states,
    one per batch row; a buffer, so it travels in every state_dict)."""

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        k: int = 1,
        persistent: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.n_visible, self.n_hidden, self.k, self.persistent = n_visible, n_hidden, k, persistent
        # Glorot-uniform W with the tutorial's factor 4 for sigmoid units: U(+-4 sqrt(6 / (n_visible + n_hidden)))
        bound = 4.0 * math.sqrt(6.0 / (n_visible + n_hidden))
        self.W = nn.Parameter(torch.empty(n_visible, n_hidden).uniform_(-bound, bound, generator=generator))
        self.hbias = nn.Parameter(torch.zeros(n_hidden))
        self.vbias = nn.Parameter(torch.zeros(n_visible))
        self.register_buffer("persistent_chain", torch.zeros(0, n_hidden))

    # ---- conditionals and Gibbs steps (the tutorial's vocabulary) ------------------------------------
    def propup(self, v: torch.Tensor, hbias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre_sigmoid_h, p(h=1|v)) for v [B, n_visible]; `hbias` [B, n_hidden]: per-row hidden biases."""
        pre_sigmoid_h = torch.addmm(self.hbias if hbias is None else hbias, v, self.W)  # [B, n_hidden]
        return pre_sigmoid_h, torch.sigmoid(pre_sigmoid_h)

    def propdown(self, h: torch.Tensor, vbias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre_sigmoid_v, p(v=1|h)) for h [B, n_hidden]; `vbias` [B, n_visible]: per-row visible biases."""
        pre_sigmoid_v = torch.addmm(self.vbias if vbias is None else vbias, h, self.W.t())  # [B, n_visible]
        return pre_sigmoid_v, torch.sigmoid(pre_sigmoid_v)

    def sample_h(self, h_mean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """h ~ p(h | v) given its mean: binary units."""
        return bernoulli(h_mean, generator)

    def sample_h_given_v(self, v0: torch.Tensor, generator: torch.Generator | None = None, hbias=None):
        """(pre_sigmoid_h1, h1_mean, h1_sample)."""
        pre_sigmoid_h1, h1_mean = self.propup(v0, hbias)
        return pre_sigmoid_h1, h1_mean, self.sample_h(h1_mean, generator)

    def sample_v_given_h(self, h0: torch.Tensor, generator: torch.Generator | None = None, vbias=None):
        """(pre_sigmoid_v1, v1_mean, v1_sample)."""
        pre_sigmoid_v1, v1_mean = self.propdown(h0, vbias)
        return pre_sigmoid_v1, v1_mean, bernoulli(v1_mean, generator)

    def gibbs_hvh(self, h0: torch.Tensor, generator: torch.Generator | None = None):
        """One step h -> v -> h: (pre_v, v_mean, v_sample, pre_h, h_mean, h_sample)."""
        pre_v, v_mean, v_sample = self.sample_v_given_h(h0, generator)
        pre_h, h_mean, h_sample = self.sample_h_given_v(v_sample, generator)
        return pre_v, v_mean, v_sample, pre_h, h_mean, h_sample

    def gibbs_vhv(self, v0: torch.Tensor, generator: torch.Generator | None = None, hbias=None, vbias=None):
        """One step v -> h -> v: (pre_h, h_mean, h_sample, pre_v, v_mean, v_sample)."""
        # (per-row biases passed on only when given: subclasses and tests may wrap the two-argument form)
        pre_h, h_mean, h_sample = self.sample_h_given_v(v0, generator, *(() if hbias is None else (hbias,)))
        pre_v, v_mean, v_sample = self.sample_v_given_h(h_sample, generator, *(() if vbias is None else (vbias,)))
        return pre_h, h_mean, h_sample, pre_v, v_mean, v_sample

    def free_energy(self, v: torch.Tensor, hbias=None, vbias=None) -> torch.Tensor:
        """F(v) = -v.vbias - sum_j softplus(v W + hbias)_j, shape [B] (per-row biases [B, n] if given)."""
        return self.free_energy_from(v, torch.addmm(self.hbias if hbias is None else hbias, v, self.W), vbias)

    def free_energy_from(self, v: torch.Tensor, pre_h: torch.Tensor, vbias=None) -> torch.Tensor:
        """F(v) given pre_h = v W + hbias already computed."""
        return -visible_term(v, self.vbias if vbias is None else vbias) - F.softplus(pre_h).sum(1)

    # ---- the learning signal -------------------------------------------------------------------------
    def chains_for(self, v0: torch.Tensor) -> torch.Tensor:
        """The PCD chains, (re)started at h = 0 as in the tutorial when the batch size changes."""
        if self.persistent_chain.shape != (len(v0), self.n_hidden):
            if self.persistent_chain.numel():
                log.warning("PCD: %d chains, batch of %d rows: restarting them", len(self.persistent_chain), len(v0))
            self.persistent_chain = torch.zeros(len(v0), self.n_hidden, device=v0.device, dtype=self.W.dtype)
        return self.persistent_chain

    @torch.no_grad()
    def cd_grads(self, v0: torch.Tensor, generator: torch.Generator | None = None):
        """(cost, (dW, dhbias, dvbias), chain_end) for cost = mean F(v0) - mean F(chain_end) after k Gibbs
        steps h -> v -> h, the gradient in closed form (no autograd):

            dF(v)/dW = -v^T E[h|v],   dF(v)/dhbias = -E[h|v],   dF(v)/dvbias = -v

        with E[h|v] = propup's mean (sigm(vW + hbias) for binary units, vW + hbias for linear ones), so
        d cost/d theta = E_data[dF/dtheta] - E_chain[dF/dtheta] is the CD-k (chain started at h ~ p(h|v0))
        or PCD-k (chains kept between updates, Tieleman 2008) estimate of -d log p(v0)/d theta (Hinton
        2002). v0: [B, n_visible] in [0, 1] (data, or a lower layer's activations in a DBN). The chain's
        first and last `propup` are shared with the gradient: 2k + 1 matrix products per update, plus
        the two of dW. Without autograd's graph this is the plain loop's cost (experiments/bench).
        """
        pre_h0, h0_mean = self.propup(v0)  # [B, n_hidden]: the positive phase, and CD's chain start
        h = self.chains_for(v0) if self.persistent else self.sample_h(h0_mean, generator)
        for _ in range(self.k - 1):
            h = self.gibbs_hvh(h, generator)[5]
        chain_end = self.sample_v_given_h(h, generator)[2]  # the k-th step's v
        pre_h_end, h_end_mean = self.propup(chain_end)  # the negative phase, and the k-th step's h
        if self.persistent:
            self.persistent_chain.copy_(self.sample_h(h_end_mean, generator))
        n = len(v0)
        d_w = torch.mm(chain_end.t(), h_end_mean).sub_(torch.mm(v0.t(), h0_mean)).div_(n)
        d_hbias = (h_end_mean - h0_mean).mean(0)
        d_vbias = (chain_end - v0).mean(0)
        cost = (self.free_energy_from(v0, pre_h0) - self.free_energy_from(chain_end, pre_h_end)).mean()
        return cost, (d_w, d_hbias, d_vbias), chain_end

    def recon_xent(self, v: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of v and its mean-field reconstruction sigm(propdown(p(h|v))), summed over
        pixels, per row [B] (the tutorial's reconstruction cost, without the sampling noise)."""
        pre_sigmoid_v, _ = self.propdown(self.propup(v)[1])
        return F.binary_cross_entropy_with_logits(pre_sigmoid_v, v, reduction="none").sum(1)

    @torch.no_grad()
    def gibbs_chain(self, v0: torch.Tensor, n_rows: int, steps_between: int, generator=None) -> torch.Tensor:
        """Chains started at v0 [C, n_visible]; p(v | h) every `steps_between` Gibbs steps:
        [n_rows, C, n_visible] (row t = step (t + 1) * steps_between; the chapter's second figure)."""
        rows, v = [], v0
        for _ in range(n_rows):
            for _ in range(steps_between):
                _, _, _, _, v_mean, v = self.gibbs_vhv(v, generator)
            rows.append(v_mean)
        return torch.stack(rows)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the chains' shape is only known once trained (batch size): take the saved one
        key = prefix + "persistent_chain"
        if key in state_dict:
            self.persistent_chain = torch.empty_like(state_dict[key], device=self.persistent_chain.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class GaussianHiddenRBM(RBMCore):
    """Binary visible units, linear hidden units with unit-variance Gaussian noise: the code layer of
    the deep autoencoder (Hinton & Salakhutdinov 2006, Fig. 1 and its notes).

        E(v, h) = -v.vbias - h.hbias - v^T W h + |h|^2 / 2
        p(h | v) = N(v W + hbias, I),   p(v_i = 1 | h) = sigm(W_i h + vbias_i)  (as in the RBM)
        F(v) = -v.vbias - sum_j (v W + hbias)_j^2 / 2   (+ a constant: the Gaussian integral over h)
    """

    def propup(self, v: torch.Tensor, hbias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        pre_h = torch.addmm(self.hbias if hbias is None else hbias, v, self.W)  # [B, n_hidden]: linear, mean = input
        return pre_h, pre_h

    def sample_h(self, h_mean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """h ~ N(h_mean, I): linear units with unit-variance Gaussian noise."""
        return h_mean + torch.randn(h_mean.shape, generator=generator, device=h_mean.device, dtype=h_mean.dtype)

    def free_energy_from(self, v: torch.Tensor, pre_h: torch.Tensor, vbias=None) -> torch.Tensor:
        return -visible_term(v, self.vbias if vbias is None else vbias) - 0.5 * pre_h.pow(2).sum(1)
