"""Log-partition function and test log-likelihood of a binary RBM by Annealed Importance Sampling.

Salakhutdinov & Murray (2008), "On the quantitative analysis of deep belief networks", sec. 3-4:
anneal from a base-rate model A (W = 0, visible biases b_A from the training pixel means, so
Z_A = 2^n_hidden prod_i (1 + e^{b_A_i})) to the RBM B through

    p*_k(v) = exp((1 - beta_k) v.b_A + beta_k v.b_B) prod_j (1 + exp(beta_k (v W_{:,j} + c_j)))   (eq. 13)

with Gibbs transitions that leave p_k invariant; log w = sum_k log p*_k(v_k) - log p*_{k-1}(v_k),
Z_B / Z_A ~= mean(w). The weights are accumulated in float64 (the Gibbs sampling is float32).
When min(n_visible, n_hidden) <= 20, `exact_log_partition` enumerates the smaller layer instead.

Used by the RBM's `log_likelihood` (and so by the `LogLikelihood` callback).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genexp import GenexpError
from genexp.nn.rbm import RBMCore, bernoulli

MAX_EXACT_UNITS = 20


@dataclass
class AISResult:
    log_z: float  # log Z_B estimate
    log_z_lo: float  # log(Z_hat - 3 sigma); -inf when 3 sigma exceeds Z_hat
    log_z_hi: float  # log(Z_hat + 3 sigma)
    log_z_base: float  # log Z_A of the base-rate model
    ess: float  # effective sample size (sum w)^2 / sum w^2, out of n_chains
    n_chains: int
    n_betas: int
    seconds: float


def beta_schedule(n_betas: int) -> torch.Tensor:
    """Inverse temperatures 0 = beta_0 < ... < beta_K = 1 spaced like S&M 2008 (500 in [0, 0.5),
    4000 in [0.5, 0.9), 10000 in [0.9, 1]) scaled to n_betas points; float64."""
    if n_betas < 2:
        raise GenexpError(f"ais betas={n_betas} must be >= 2")
    n1, n2 = round(n_betas * 500 / 14500), round(n_betas * 4000 / 14500)
    n3 = n_betas - n1 - n2
    parts = [
        torch.linspace(0.0, 0.5, n1 + 1, dtype=torch.float64)[:-1],
        torch.linspace(0.5, 0.9, n2 + 1, dtype=torch.float64)[:-1],
        torch.linspace(0.9, 1.0, n3, dtype=torch.float64),
    ]
    betas = torch.cat(parts)
    betas[0], betas[-1] = 0.0, 1.0
    return betas


def base_rate_vbias(train_v: torch.Tensor, smoothing: float = 5.0) -> torch.Tensor:
    """b_A = logit of the smoothed pixel means of the training data (S&M 2008, sec. 4.2), float64."""
    v = train_v.reshape(len(train_v), -1).double()
    p = (v.sum(0) + smoothing) / (len(v) + 2 * smoothing)
    return torch.log(p) - torch.log1p(-p)


def _params(rbm: RBMCore) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return rbm.W.detach(), rbm.hbias.detach(), rbm.vbias.detach()


def exact_log_partition(rbm=None, W=None, hbias=None, vbias=None, chunk: int = 4096) -> torch.Tensor:
    """log Z by enumerating the smaller layer (min(n_visible, n_hidden) <= 20), float64.

    Summing out the other layer analytically: log Z = logsumexp_h [h.c + sum_i softplus(b_i + W_i h)]
    (or the same with v and h swapped). Differentiable in W, hbias, vbias when given as tensors
    (tests compute the exact log-likelihood gradient with it).
    """
    if rbm is not None:
        W, hbias, vbias = rbm.W, rbm.hbias, rbm.vbias
    W, hbias, vbias = W.double(), hbias.double(), vbias.double()
    n_visible, n_hidden = W.shape
    if min(n_visible, n_hidden) > MAX_EXACT_UNITS:
        raise GenexpError(
            f"exact log Z needs min(n_visible, n_hidden) <= {MAX_EXACT_UNITS}, got {n_visible}x{n_hidden}"
        )
    if n_hidden <= n_visible:  # enumerate h, sum out v
        W_, a, b, n = W.t(), hbias, vbias, n_hidden  # states s over the hidden layer
    else:  # enumerate v, sum out h
        W_, a, b, n = W, vbias, hbias, n_visible
    terms = []
    for start in range(0, 2**n, chunk):
        idx = torch.arange(start, min(2**n, start + chunk), device=W.device)
        s = ((idx[:, None] >> torch.arange(n, device=W.device)) & 1).double()  # [S, n] all binary states
        terms.append(s @ a + F.softplus(s @ W_ + b).sum(1))
    return torch.logsumexp(torch.cat(terms), 0)


def _log_p_star(beta: float, v_dot: torch.Tensor, pre_h: torch.Tensor) -> torch.Tensor:
    """log p*_k(v) of eq. 13 given v.(b_A, b_B) terms and pre_h = v W + c, float64 [M]."""
    return v_dot + F.softplus(beta * pre_h).sum(1)


@torch.no_grad()
def ais_log_partition(
    rbm: RBMCore,
    base_vbias: torch.Tensor,
    n_chains: int = 100,
    n_betas: int = 14500,
    seed: int = 0,
    betas: torch.Tensor | None = None,
) -> AISResult:
    """AIS estimate of log Z of `rbm` (anything with W [n_visible, n_hidden], hbias, vbias)."""
    if n_chains < 1:
        raise GenexpError(f"ais chains={n_chains} must be >= 1")
    start = time.time()
    W, c, b = _params(rbm)
    device, dtype = W.device, W.dtype
    betas = beta_schedule(n_betas) if betas is None else betas.double()
    n_hidden = W.shape[1]
    b_a = base_vbias.to(device).double()
    b_b = b.double()
    g = torch.Generator(device=device).manual_seed(seed)
    # log Z_A: hidden units of the base model have W = 0 and zero biases, each contributing log 2
    log_z_base = float(F.softplus(b_a).sum() + n_hidden * math.log(2.0))
    # v_1 ~ p_0 = the base-rate model
    v = bernoulli(torch.sigmoid(b_a).to(dtype).expand(n_chains, -1).contiguous(), g)
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=device)
    b_a32, b_b32 = b_a.to(dtype), b_b.to(dtype)
    for k in range(1, len(betas)):
        beta_prev, beta = float(betas[k - 1]), float(betas[k])
        pre_h = torch.addmm(c, v, W)  # [M, n_hidden], float32 matmul
        pre_h64 = pre_h.double()
        v64 = v.double()
        # log p*_k(v_k) - log p*_{k-1}(v_k): the visible-bias terms differ by (beta - beta_prev) v.(b_B - b_A)
        log_w += (beta - beta_prev) * (v64 @ (b_b - b_a))
        log_w += F.softplus(beta * pre_h64).sum(1) - F.softplus(beta_prev * pre_h64).sum(1)
        if k == len(betas) - 1:
            break
        # T_k: h ~ p_k(h | v), v ~ p_k(v | h), leaving p_k invariant
        h = bernoulli(torch.sigmoid(beta * pre_h), g)
        pre_v = (1.0 - beta) * b_a32 + beta * torch.addmm(b_b32, h, W.t())
        v = bernoulli(torch.sigmoid(pre_v), g)
    # log Z_B = log Z_A + log mean w; sigma of mean(w) for the ±3 sigma interval (S&M 2008, sec. 4.2)
    log_w = log_w.cpu()
    m = float(log_w.max())
    w = torch.exp(log_w - m)
    mean_w, std_w = float(w.mean()), float(w.std(unbiased=True)) if n_chains > 1 else 0.0
    sigma = std_w / math.sqrt(n_chains)
    log_z = log_z_base + m + math.log(mean_w)
    lo = log_z_base + m + math.log(mean_w - 3 * sigma) if mean_w > 3 * sigma else -math.inf
    hi = log_z_base + m + math.log(mean_w + 3 * sigma)
    ess = float(w.sum() ** 2 / (w**2).sum())
    return AISResult(
        log_z=log_z,
        log_z_lo=lo,
        log_z_hi=hi,
        log_z_base=log_z_base,
        ess=ess,
        n_chains=n_chains,
        n_betas=len(betas),
        seconds=time.time() - start,
    )


@torch.no_grad()
def neg_free_energy(rbm: RBMCore, v: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """-F(v) per row in float64 [B] (log p(v) = -F(v) - log Z)."""
    W, c, b = (t.double() for t in _params(rbm))
    out = [
        (x @ b + F.softplus(x @ W + c).sum(1)) for x in v.reshape(len(v), -1).to(W.device).double().split(batch_size)
    ]
    return torch.cat(out)


def log_partition(
    rbm: RBMCore, base_vbias: torch.Tensor, n_chains: int = 100, n_betas: int = 14500, seed: int = 0
) -> AISResult:
    """log Z: exact when the smaller layer has <= MAX_EXACT_UNITS units, else by AIS."""
    if min(rbm.W.shape) <= MAX_EXACT_UNITS:
        t = time.time()
        log_z = float(exact_log_partition(W=rbm.W.detach(), hbias=rbm.hbias.detach(), vbias=rbm.vbias.detach()))
        return AISResult(log_z, log_z, log_z, math.nan, float(n_chains), n_chains, 0, time.time() - t)
    return ais_log_partition(rbm, base_vbias, n_chains=n_chains, n_betas=n_betas, seed=seed)


# ---- many RBMs sharing W, each with its own biases (the RNN-RBM's RBM of each time step) --------------------
def exact_log_partition_rows(W: torch.Tensor, hbias: torch.Tensor, vbias: torch.Tensor, budget: int = 1 << 22):
    """log Z [R] (float64) of R RBMs sharing W [n_visible, n_hidden], with biases hbias [R, n_hidden] and
    vbias [R, n_visible], enumerating the smaller layer as `exact_log_partition` does (chunks of about
    `budget` numbers in memory)."""
    W, hbias, vbias = W.detach().double(), hbias.detach().double(), vbias.detach().double()
    n_visible, n_hidden = W.shape
    if min(n_visible, n_hidden) > MAX_EXACT_UNITS:
        raise GenexpError(
            f"exact log Z needs min(n_visible, n_hidden) <= {MAX_EXACT_UNITS}, got {n_visible}x{n_hidden}"
        )
    if n_hidden <= n_visible:  # states s of the hidden layer; the visible layer summed out
        W_, a, b, n = W.t(), hbias, vbias, n_hidden
    else:
        W_, a, b, n = W, vbias, hbias, n_visible
    states = ((torch.arange(2**n, device=W.device)[:, None] >> torch.arange(n, device=W.device)) & 1).double()
    rows = max(1, budget // (len(states) * b.shape[1]))
    out = []
    for a_r, b_r in zip(a.split(rows), b.split(rows), strict=True):
        # [r, S]: s.a + sum_i softplus(b_i + (s W_)_i), per row r and state s
        terms = a_r @ states.t() + F.softplus(b_r[:, None, :] + (states @ W_)[None]).sum(-1)
        out.append(torch.logsumexp(terms, 1))
    return torch.cat(out)


@torch.no_grad()
def ais_log_partition_rows(
    W: torch.Tensor,
    hbias: torch.Tensor,
    vbias: torch.Tensor,
    base_vbias: torch.Tensor,
    n_chains: int = 20,
    n_betas: int = 1000,
    seed: int = 0,
    max_rows: int = 16384,
) -> tuple[torch.Tensor, torch.Tensor]:
    """AIS estimates of log Z [R] of R RBMs sharing W, with biases hbias [R, n_hidden] and vbias [R, n_visible],
    each annealed from its own base-rate model (W = 0, visible biases base_vbias [R, n_visible]) through eq. 13
    of Salakhutdinov & Murray 2008, exactly as `ais_log_partition` but for all rows at once (n_chains chains
    each, R * n_chains at a time up to `max_rows`). Returns (log_z float64 [R], ess [R]). The per-step weight
    increments are computed in float32 and summed in float64."""
    if n_chains < 1:
        raise GenexpError(f"ais chains={n_chains} must be >= 1")
    betas = beta_schedule(n_betas).tolist()
    W = W.detach()
    g = torch.Generator(device=W.device).manual_seed(seed)
    n_hidden = W.shape[1]
    rows = max(1, max_rows // n_chains)
    log_z, ess = [], []
    for c, b_b, b_a in zip(hbias.split(rows), vbias.split(rows), base_vbias.split(rows), strict=True):
        r = len(c)
        # every row's chains as consecutive rows [r * M, ...]
        c, b_b, b_a = (t.detach().to(W.dtype).repeat_interleave(n_chains, 0) for t in (c, b_b, b_a))
        v = bernoulli(torch.sigmoid(b_a), g)  # v_1 ~ p_0, the base-rate model
        log_w = torch.zeros(r * n_chains, dtype=torch.float64, device=W.device)
        d_bias = b_b - b_a
        for k in range(1, len(betas)):
            beta_prev, beta = betas[k - 1], betas[k]
            pre_h = torch.addmm(c, v, W)  # [r M, n_hidden]
            step = (beta - beta_prev) * (v * d_bias).sum(1)
            step += (F.softplus(beta * pre_h) - F.softplus(beta_prev * pre_h)).sum(1)
            log_w += step.double()
            if k == len(betas) - 1:
                break
            h = bernoulli(torch.sigmoid(beta * pre_h), g)  # T_k: leaves p_k invariant
            v = bernoulli(torch.sigmoid((1.0 - beta) * b_a + beta * torch.addmm(b_b, h, W.t())), g)
        log_w = log_w.view(r, n_chains)
        # log Z_A = sum_i softplus(b_A_i) + n_hidden log 2; log Z_B = log Z_A + log mean_m w_m
        log_z_base = F.softplus(b_a.view(r, n_chains, -1)[:, 0].double()).sum(1) + n_hidden * math.log(2.0)
        log_z.append(log_z_base + torch.logsumexp(log_w, 1) - math.log(n_chains))
        w = torch.exp(log_w - log_w.max(1, keepdim=True).values)
        ess.append(w.sum(1) ** 2 / (w**2).sum(1))
    return torch.cat(log_z), torch.cat(ess)
