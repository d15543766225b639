"""The networks and losses the chapter's GANs share: the conditional DCGAN generator and discriminator
of the chapter's Theano code (labels, or any code vector, joined by `conv_cond_concat`), the DCGAN
initialisation, the GAN losses on logits, and the noise-predicting network Q of S-GAN.

Losses on logits (D's last layer is linear; the sigmoid lives in the loss):
    d_cost = BCE(D(x, y), 1) + BCE(D(G(z, y), y), 0)
    g_cost = BCE(D(G(z, y), y), 1)          # non-saturating (Goodfellow et al. 2014, sec. 3)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_CLASSES = 10


def conv_cond_concat(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The chapter's conv_cond_concat: label planes behind feature maps.
    x [B, C, H, W], y [B, ny] -> [B, C + ny, H, W] (plane j is constant y[:, j])."""
    return torch.cat([x, y[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], dim=1)


class Generator(nn.Module):
    """gen(Z, Y): [z, y] -> fc ngfc -> [., y] -> fc 2*ngf*7*7 -> (2ngf, 7, 7) -> deconv 14x14 -> deconv 28x28.
    `size=14` stops after the first deconvolution (a 14x14 image: StackGAN's stage I)."""

    def __init__(self, nz: int = 100, ngf: int = 64, ngfc: int = 1024, ny: int = N_CLASSES, size: int = 28):
        super().__init__()
        self.ngf, self.size = ngf, size
        self.fc1 = nn.Linear(nz + ny, ngfc, bias=False)  # no bias before BN
        self.bn1 = nn.BatchNorm1d(ngfc)
        self.fc2 = nn.Linear(ngfc + ny, 2 * ngf * 7 * 7, bias=False)
        self.bn2 = nn.BatchNorm1d(2 * ngf * 7 * 7)
        # Theano deconv(subsample=2, border_mode=2) of a 5x5 kernel: 7 -> 14 -> 28
        if size == 14:
            self.deconv3 = nn.ConvTranspose2d(2 * ngf + ny, 1, 5, stride=2, padding=2, output_padding=1)
            return
        self.deconv3 = nn.ConvTranspose2d(2 * ngf + ny, ngf, 5, stride=2, padding=2, output_padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(ngf)
        self.deconv4 = nn.ConvTranspose2d(ngf + ny, 1, 5, stride=2, padding=2, output_padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z [B, nz], y one-hot (or a code) [B, ny] -> images [B, 1, size, size] in (0, 1)."""
        h = F.relu(self.bn1(self.fc1(torch.cat([z, y], 1))))  # [B, ngfc]
        h = torch.cat([h, y], 1)  # [B, ngfc + ny]
        h2 = F.relu(self.bn2(self.fc2(h)))  # [B, 2ngf*49]
        h2 = conv_cond_concat(h2.view(-1, 2 * self.ngf, 7, 7), y)  # [B, 2ngf + ny, 7, 7]
        if self.size == 14:
            return torch.sigmoid(self.deconv3(h2))  # [B, 1, 14, 14]
        h3 = conv_cond_concat(F.relu(self.bn3(self.deconv3(h2))), y)  # [B, ngf + ny, 14, 14]
        return torch.sigmoid(self.deconv4(h3))  # [B, 1, 28, 28]


class Discriminator(nn.Module):
    """discrim(X, Y): [x, y planes] -> conv -> [., y planes] -> conv -> [flat, y] -> fc ndfc -> [., y]
    -> fc 1 (a logit). `features` is everything before the last layer (the body a Q head can share);
    `size=14` takes 14x14 images (StackGAN's stage I: one stride-2 convolution fewer)."""

    def __init__(self, ndf: int = 64, ndfc: int = 1024, ny: int = N_CLASSES, size: int = 28):
        super().__init__()
        self.size = size
        self.conv1 = nn.Conv2d(1 + ny, ndf, 5, stride=2 if size == 28 else 1, padding=2)
        self.conv2 = nn.Conv2d(ndf + ny, 2 * ndf, 5, stride=2, padding=2, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * ndf)
        self.fc3 = nn.Linear(2 * ndf * 7 * 7 + ny, ndfc, bias=False)
        self.bn3 = nn.BatchNorm1d(ndfc)
        self.fc4 = nn.Linear(ndfc + ny, 1)
        self.n_features = ndfc + ny

    def features(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x [B, 1, size, size], y [B, ny] -> [B, ndfc + ny]."""
        h = F.leaky_relu(self.conv1(conv_cond_concat(x, y)), 0.2)  # [B, ndf, 14, 14]
        h2 = F.leaky_relu(self.bn2(self.conv2(conv_cond_concat(h, y))), 0.2)  # [B, 2ndf, 7, 7]
        h2 = torch.cat([h2.flatten(1), y], 1)  # [B, 2ndf*49 + ny]
        return torch.cat([F.relu(self.bn3(self.fc3(h2))), y], 1)  # [B, ndfc + ny]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """-> logits [B]."""
        return self.fc4(self.features(x, y)).squeeze(1)


class NoisePredictor(nn.Module):
    """Q(x, y) -> the mean of q(z | x, y): S-GAN's noise-predicting network (Huang et al. 2017, sec. 3.2),
    with its own small convolutional body, or (`body=None` given `n_features`) a linear head on features
    a discriminator computed (the shared-body variant)."""

    def __init__(self, nz: int, ny: int = N_CLASSES, width: int = 16, n_features: int | None = None):
        super().__init__()
        if n_features is not None:
            self.body = None
            self.head = nn.Linear(n_features, nz)
            return
        self.body = nn.Sequential(
            nn.Conv2d(1 + ny, width, 5, stride=2, padding=2),  # 28 -> 14
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 5, stride=2, padding=2),  # 14 -> 7
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width * 7 * 7, nz)

    def forward(self, x_or_features: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.body is None:
            return self.head(x_or_features)
        return self.head(self.body(conv_cond_concat(x_or_features, y)))


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN initialisation (Radford et al. 2016, sec. 4): weights ~ N(0, 0.02), BN gain ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """d_cost: real -> 1, fake -> 0, on logits."""
    return F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + F.binary_cross_entropy_with_logits(
        d_fake, torch.zeros_like(d_fake)
    )


def generator_loss(d_fake: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """g_cost: non-saturating -log D(G(z)) (the chapter's), or the minimax log(1 - D(G(z)))."""
    if kind == "non_saturating":
        return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    return -F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))


def noise_nll(z_mean: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-log q(z | x) per sample, up to a constant, for q = N(Q(x), I): 0.5 * ||z - Q(x)||^2.

    A Gaussian with a fixed unit variance, as S-GAN's entropy loss (Huang et al. 2017, eq. 5 and sec.
    3.2: "Q is a Gaussian with fixed std, the loss reduces to the Euclidean distance"). For the chapter's
    uniform noise z ~ U[0, 1]^nz it is still a valid variational posterior: H(z | x) <= E[-log q(z | x)]
    holds for any density q, so minimising it over G (and Q) lowers an upper bound on the conditional
    entropy, i.e. makes z recoverable from G(z): the output must depend on the noise. A uniform-matched
    q would have zero density off its support and infinite loss there: no gradient to learn from."""
    return 0.5 * (z - z_mean).pow(2).sum(1)
