"""The PCA baseline of a deep autoencoder (Hinton & Salakhutdinov 2006, Fig. 2)."""

from __future__ import annotations

import torch


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
