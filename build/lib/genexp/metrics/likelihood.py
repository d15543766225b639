"""One fixed binarized evaluation set for every likelihood model, and the scoring of a model on it.

Likelihood papers on MNIST use binary images; how the grey levels were binarized moves the numbers by
several nats (thresholding at 0.5 reads about 16 nats higher for the same RBM than stochastic
binarization). So every model is scored on the *grey-level* split binarized here, once, with the fixed
seed `BINARIZE_SEED` (stochastic: pixel ~ Bernoulli(grey level), Salakhutdinov & Murray 2008), whatever
`data.binarize` the model trained with. Thresholding exists only as the explicitly named variant
"threshold", logged under its own key (`<split>/loglik_threshold`).
"""

from __future__ import annotations

import hashlib

import torch

from genexp import GenexpError

BINARIZE_SEED = 0
BINARIZATIONS = ("stochastic", "threshold")


def binarized(x: torch.Tensor, how: str = "stochastic", seed: int = BINARIZE_SEED) -> torch.Tensor:
    """Grey images in [0, 1] -> float {0, 1}: Bernoulli(x) drawn on the CPU with a fixed-seed generator
    (u < x, u ~ U[0, 1): the same bits on every machine), or x > 0.5 for "threshold"."""
    if how not in BINARIZATIONS:
        raise GenexpError(f"binarize={how!r} is not one of {', '.join(BINARIZATIONS)}")
    x = x.detach().float().cpu()
    if how == "threshold":
        return (x > 0.5).float()
    return (torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)) < x).float()


def digest(x: torch.Tensor) -> str:
    """sha256 of a binary set's bits: anyone can check that two results used the same images."""
    return hashlib.sha256(x.to(torch.uint8).numpy().tobytes()).hexdigest()


def key(split: str, how: str) -> str:
    return f"{split}/loglik" if how == "stochastic" else f"{split}/loglik_{how}"


@torch.no_grad()
def score(model, x_grey: torch.Tensor, how: str = "stochastic", options: dict | None = None) -> dict:
    """Mean log-likelihood (nats) of `model` on the binarized x_grey, with its standard error, the
    model's `likelihood_kind` and extras (`likelihood_info()`, e.g. log Z and AIS's ESS)."""
    if not hasattr(model, "log_likelihood"):
        raise GenexpError(f"{type(model).__name__} has no log_likelihood (it is not a likelihood model)")
    x = binarized(x_grey, how)
    ll = model.log_likelihood(x.to(model.device), **(options or {})).double().cpu()
    if not torch.isfinite(ll).all():
        raise GenexpError(f"{type(model).__name__}.log_likelihood gave non-finite values")
    info = model.likelihood_info() if hasattr(model, "likelihood_info") else {}
    return {
        "mean": float(ll.mean()),
        "sem": float(ll.std() / len(ll) ** 0.5) if len(ll) > 1 else 0.0,
        "n": len(ll),
        "kind": model.likelihood_kind,
        "binarization": how,
        "seed": BINARIZE_SEED if how == "stochastic" else None,
        "sha256": digest(x),
        "info": info,
    }
