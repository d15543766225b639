"""Variational autoencoder (Kingma & Welling 2014, "Auto-encoding variational Bayes"): a Gaussian
posterior q(z | x) = N(mu(x), diag sigma^2(x)), a standard normal prior p(z) and a Bernoulli decoder
p(x | z) (one logit per pixel), trained on dynamically binarized digits (conf/eval/vae.yaml) by the
reparameterised ELBO

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z)),
    KL = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)          (Kingma & Welling 2014, appendix B)

or, with `k_train` > 1, by the importance-weighted bound of Burda et al. 2015 (IWAE). `log_likelihood(x)`
is that bound with k samples (5000 at test: Burda et al.'s evaluation), a lower bound on log p(x):

    L_k(x) = log (1/k) sum_i p(x, z_i) / q(z_i | x),  z_i ~ q(z | x);   L_1 = ELBO in expectation, L_k <= L_k+1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genexp.models.base import GenerativeModule
from genexp.validate import choice, number, numbers

ARCHS = ("mlp", "conv")
LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per row, in closed form (the equation above)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension (the prior p(z))."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | logits) summed over the last dimension, stably (-BCE with logits)."""
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VAE(GenerativeModule):
    val_metric, val_mode = "val/elbo", "max"  # nats per image on the val split, higher is better
    likelihood_kind = "bound"

    def __init__(self, *, arch: str, n_latent: int, hidden: list[int], channels: int, k_train: int, lr: float):
        super().__init__()
        choice("model.arch", arch, ARCHS)
        number("model.n_latent", n_latent, 1, integer=True)
        numbers("model.hidden", hidden, 1, integer=True)
        number("model.channels", channels, 1, integer=True)
        number("model.k_train", k_train, 1, integer=True, hint="1: the ELBO, > 1: the IWAE bound")
        number("model.lr", lr, 0, low_open=True)
        self.save_hyperparameters()
        if arch == "mlp":
            self.encoder = nn.Sequential(nn.Flatten(), _mlp([784, *hidden, 2 * n_latent]))
            self.decoder = _mlp([n_latent, *reversed(hidden), 784])
        else:  # 28 -> 14 -> 7 and back, ReLU
            c = channels
            self.encoder = nn.Sequential(
                nn.Conv2d(1, c, 4, 2, 1), nn.ReLU(), nn.Conv2d(c, 2 * c, 4, 2, 1), nn.ReLU(), nn.Flatten(),
                nn.Linear(2 * c * 49, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], 2 * n_latent),
            )  # fmt: skip
            self.decoder = nn.Sequential(
                nn.Linear(n_latent, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], 2 * c * 49), nn.ReLU(),
                nn.Unflatten(1, (2 * c, 7, 7)), nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.ReLU(),
                nn.ConvTranspose2d(c, 1, 4, 2, 1), nn.Flatten(),
            )  # fmt: skip

    # ---- the model -------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, 1, 28, 28] -> mu, logvar [B, n_latent] of q(z | x)."""
        mu, logvar = self.encoder(x.reshape(len(x), 1, 28, 28)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., n_latent] -> pixel logits [..., 784]."""
        return self.decoder(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], 784)

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """The single-sample reparameterised ELBO per image [B] (closed-form KL)."""
        mu, logvar = self.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return bernoulli_log_likelihood(self.decode(z), x.reshape(len(x), -1)) - gaussian_kl(mu, logvar)

    def iwae_bound(self, x: torch.Tensor, k: int, chunk: int | None = None) -> torch.Tensor:
        """L_k per image [B]: k importance samples from q, `chunk` at a time (a running logsumexp, so
        memory is chunk x B x 784 whatever k is)."""
        mu, logvar = self.encode(x)
        x = x.reshape(len(x), -1)
        total = torch.full((len(x),), -math.inf, device=x.device, dtype=torch.float64)
        for start in range(0, k, chunk or k):
            m = min(chunk or k, k - start)
            z = mu + (0.5 * logvar).exp() * torch.randn(m, *mu.shape, device=mu.device, dtype=mu.dtype)  # [m, B, L]
            # log p(x|z) + log p(z) - log q(z|x), summed in float64 (784 float32 terms lose ~1e-4 nats)
            zd, mud, lvd = z.double(), mu.double(), logvar.double()
            log_w = (
                bernoulli_log_likelihood(self.decode(z).double(), x.double())
                + standard_normal_log_density(zd)
                - gaussian_log_density(zd, mud, lvd)
            )  # [m, B]
            total = torch.logaddexp(total, torch.logsumexp(log_w, 0))
        return total - math.log(k)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int = 5000, images_per_batch: int = 100, rows: int = 100_000):
        """The IWAE bound L_k (nats, float64) per image of binary x [B, ...]: `images_per_batch` images at a
        time, k samples in chunks of rows // images_per_batch (bounded memory)."""
        chunk = max(1, rows // images_per_batch)
        return torch.cat([self.iwae_bound(b, k, chunk) for b in x.split(images_per_batch)])

    # ---- the contracts ---------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """n images [n, 1, 28, 28]: the decoder's Bernoulli means at z ~ N(0, I)."""
        z = torch.randn(n, self.hparams.n_latent, generator=generator, device=self.device)
        return torch.sigmoid(self.decode(z)).reshape(n, 1, 28, 28)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Bernoulli means at the posterior mean, shaped like x (the Reconstructions callback)."""
        return torch.sigmoid(self.decode(self.encode(x)[0])).reshape(x.shape)

    # ---- training --------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch  # binary (data.binarize=dynamic)
        k = self.hparams.k_train
        bound = self.elbo(x) if k == 1 else self.iwae_bound(x, k).float()
        loss = -bound.mean()
        self.step_optimizer(self.optimizers(), loss)
        self.gen_step += 1
        self.log_epoch_mean("train/elbo" if k == 1 else f"train/iwae_{k}", -loss.detach())
        return {"loss": loss.detach()}

    def _evaluate(self, batch, split: str) -> None:
        x = batch[0]
        self.log(f"{split}/elbo", self.elbo(x).mean(), sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
