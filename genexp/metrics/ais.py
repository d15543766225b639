"""Log-partition function and test log-likelihood of a binary RBM by Annealed Importance Sampling.

Salakhutdinov & Murray (2008), "On the quantitative analysis of deep belief networks", sec. 3-4:
anneal from a base-rate model A (W = 0, visible biases b_A from the training pixel means, so
Z_A = 2^n_hidden prod_i (1 + e^{b_A_i})) to the RBM B through

    p*_k(v) = exp((1 - beta_k) v.b_A + beta_k v.b_B) prod_j (1 + exp(beta_k (v W_{:,j} + c_j)))   (eq. 13)

with Gibbs transitions that leave p_k invariant; log w = sum_k log p*_k(v_k) - log p*_{k-1}(v_k),
Z_B / Z_A ~= mean(w). The weights are accumulated in float64 (the Gibbs sampling is float32).
When min(n_visible, n_hidden) <= 20, `exact_log_partition` enumerates the smaller layer instead.

Command line: `python -m genexp.metrics.ais CKPT [--chains 100 --betas 14500 --seed 1]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from genexp import GenexpError

log = logging.getLogger(__name__)

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
    loglik: float | None = None  # mean test log-likelihood, -F(v) - log Z, when test data given
    loglik_lo: float | None = None  # the ±3 sigma interval of log Z carried to the log-likelihood
    loglik_hi: float | None = None


def bernoulli(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli(p) as 1[u < p], u ~ U[0, 1) (as genexp.models.rbm.bernoulli: faster than torch.bernoulli)."""
    return torch.empty_like(p).uniform_(generator=generator).lt_(p)


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


def _params(rbm) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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
    rbm,
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
def mean_neg_free_energy(rbm, v: torch.Tensor, batch_size: int = 1000) -> float:
    """mean over rows of -F(v) in float64 (log p(v) = -F(v) - log Z)."""
    W, c, b = (t.double() for t in _params(rbm))
    total = 0.0
    for chunk in v.reshape(len(v), -1).split(batch_size):
        x = chunk.to(W.device).double()
        total += float((x @ b + F.softplus(x @ W + c).sum(1)).sum())
    return total / len(v)


def binarize_test(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Binary images as they are; grey levels -> Bernoulli(x) drawn once with `seed`."""
    x = x.reshape(len(x), -1).float()
    if bool(((x == 0) | (x == 1)).all()):
        return x
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))


def ais_loglik(
    rbm, train_v: torch.Tensor, test_v: torch.Tensor, n_chains: int = 100, n_betas: int = 14500, seed: int = 0
) -> AISResult:
    """Mean test log-likelihood of binary test_v: -F(v) - log Z with log Z by AIS (exact if enumerable)."""
    if min(rbm.W.shape) <= MAX_EXACT_UNITS:
        t = time.time()
        log_z = float(exact_log_partition(W=rbm.W.detach(), hbias=rbm.hbias.detach(), vbias=rbm.vbias.detach()))
        result = AISResult(log_z, log_z, log_z, math.nan, float(n_chains), n_chains, 0, time.time() - t)
    else:
        result = ais_log_partition(rbm, base_rate_vbias(train_v), n_chains=n_chains, n_betas=n_betas, seed=seed)
    neg_f = mean_neg_free_energy(rbm, test_v)
    result.loglik = neg_f - result.log_z
    result.loglik_lo, result.loglik_hi = neg_f - result.log_z_hi, neg_f - result.log_z_lo
    return result


def main(argv: list[str] | None = None) -> dict:
    """`python -m genexp.metrics.ais CKPT`: AIS log Z and mean test log-likelihood of a saved RBM."""
    parser = argparse.ArgumentParser(prog="python -m genexp.metrics.ais", description=main.__doc__)
    parser.add_argument("ckpt", help="checkpoint of model=rbm (e.g. outputs/rbm/.../checkpoints/last.ckpt)")
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--betas", type=int, default=14500)
    parser.add_argument("--seed", type=int, default=1, help="seed of the AIS chains")
    parser.add_argument("--test-seed", type=int, default=0, help="seed binarizing the grey test images")
    parser.add_argument("--data-root", default=None, help="MNIST directory (default $GENEXP_DATA_DIR)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the result to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    from pathlib import Path

    from genexp.data import MNISTDataModule
    from genexp.models.rbm import RBM

    if not Path(args.ckpt).is_file():
        raise GenexpError(f"checkpoint {args.ckpt!r} does not exist")
    rbm = RBM.load_from_checkpoint(args.ckpt, map_location="cpu")
    dm = MNISTDataModule(root=args.data_root)
    dm.setup()
    train_v = dm.split_tensors("train")[0]
    test_v = binarize_test(dm.split_tensors("test")[0], seed=args.test_seed)
    r = ais_loglik(rbm, train_v, test_v, n_chains=args.chains, n_betas=args.betas, seed=args.seed)
    out = {"ckpt": str(args.ckpt), "test_binarize_seed": args.test_seed, "seed": args.seed, **asdict(r)}
    print(
        f"log Z = {r.log_z:.3f}  [-3s {r.log_z_lo:.3f}, +3s {r.log_z_hi:.3f}]  (base-rate log Z_A {r.log_z_base:.2f})"
    )
    print(
        f"mean test log-likelihood = {r.loglik:.3f} nats  [{r.loglik_lo:.3f}, {r.loglik_hi:.3f}]  "
        f"(10000 stochastically binarized test images, seed {args.test_seed})"
    )
    print(f"ESS = {r.ess:.1f} of {r.n_chains} chains, {r.n_betas} betas, AIS seed {args.seed}, {r.seconds:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    try:
        main()
    except GenexpError as e:
        print(f"genexp: error: {e}", file=sys.stderr)
        sys.exit(2)
