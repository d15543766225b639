"""The chapter's label-conditional DCGAN on MNIST: a generator G(z, y) and a discriminator D(x, y),
both conditioned on the one-hot digit label by concatenation (`conv_cond_concat`), trained in
alternation with the discriminator updated `d_steps` times per generator update ("the police trains
twice as much as the thief").

Losses on logits (D's last layer is linear; the sigmoid lives in the loss):
    d_cost = BCE(D(x, y), 1) + BCE(D(G(z, y), y), 0)
    g_cost = BCE(D(G(z, y), y), 1)          # non-saturating (Goodfellow et al. 2014, sec. 3)
Widths follow the chapter's Theano code (dcgan_code's `ngf`, `ndf`, `ngfc`, `ndfc`, `nz`).
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from torch import nn

from genexp.models.base import GenerativeModule
from genexp.validate import choice, number

log = logging.getLogger(__name__)

NOISE = ("uniform", "normal")
G_LOSSES = ("non_saturating", "minimax")
N_CLASSES = 10


def conv_cond_concat(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The chapter's conv_cond_concat: label planes behind feature maps.
    x [B, C, H, W], y [B, ny] -> [B, C + ny, H, W] (plane j is constant y[:, j])."""
    return torch.cat([x, y[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], dim=1)


class Generator(nn.Module):
    """gen(Z, Y): [z, y] -> fc ngfc -> [., y] -> fc 2*ngf*7*7 -> (2ngf, 7, 7) -> deconv 14x14 -> deconv 28x28."""

    def __init__(self, nz: int = 100, ngf: int = 64, ngfc: int = 1024, ny: int = N_CLASSES):
        super().__init__()
        self.ngf = ngf
        self.fc1 = nn.Linear(nz + ny, ngfc, bias=False)  # no bias before BN
        self.bn1 = nn.BatchNorm1d(ngfc)
        self.fc2 = nn.Linear(ngfc + ny, 2 * ngf * 7 * 7, bias=False)
        self.bn2 = nn.BatchNorm1d(2 * ngf * 7 * 7)
        # Theano deconv(subsample=2, border_mode=2) of a 5x5 kernel: 7 -> 14 -> 28
        self.deconv3 = nn.ConvTranspose2d(2 * ngf + ny, ngf, 5, stride=2, padding=2, output_padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(ngf)
        self.deconv4 = nn.ConvTranspose2d(ngf + ny, 1, 5, stride=2, padding=2, output_padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z [B, nz], y one-hot [B, ny] -> images [B, 1, 28, 28] in (0, 1)."""
        h = F.relu(self.bn1(self.fc1(torch.cat([z, y], 1))))  # [B, ngfc]
        h = torch.cat([h, y], 1)  # [B, ngfc + ny]
        h2 = F.relu(self.bn2(self.fc2(h)))  # [B, 2ngf*49]
        h2 = conv_cond_concat(h2.view(-1, 2 * self.ngf, 7, 7), y)  # [B, 2ngf + ny, 7, 7]
        h3 = conv_cond_concat(F.relu(self.bn3(self.deconv3(h2))), y)  # [B, ngf + ny, 14, 14]
        return torch.sigmoid(self.deconv4(h3))  # [B, 1, 28, 28]


class Discriminator(nn.Module):
    """discrim(X, Y): [x, y planes] -> conv 14x14 -> [., y planes] -> conv 7x7 -> [flat, y] -> fc ndfc
    -> [., y] -> fc 1 (a logit)."""

    def __init__(self, ndf: int = 64, ndfc: int = 1024, ny: int = N_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(1 + ny, ndf, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(ndf + ny, 2 * ndf, 5, stride=2, padding=2, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * ndf)
        self.fc3 = nn.Linear(2 * ndf * 7 * 7 + ny, ndfc, bias=False)
        self.bn3 = nn.BatchNorm1d(ndfc)
        self.fc4 = nn.Linear(ndfc + ny, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x [B, 1, 28, 28], y one-hot [B, ny] -> logits [B]."""
        h = F.leaky_relu(self.conv1(conv_cond_concat(x, y)), 0.2)  # [B, ndf, 14, 14]
        h2 = F.leaky_relu(self.bn2(self.conv2(conv_cond_concat(h, y))), 0.2)  # [B, 2ndf, 7, 7]
        h2 = torch.cat([h2.flatten(1), y], 1)  # [B, 2ndf*49 + ny]
        h3 = torch.cat([F.relu(self.bn3(self.fc3(h2))), y], 1)  # [B, ndfc + ny]
        return self.fc4(h3).squeeze(1)  # [B]


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


class CDCGAN(GenerativeModule):
    is_conditional = True
    needs_labels = True
    val_metric, val_mode = "val/fid_mnist_cnn", "min"  # from the SampleQuality callback on the val split
    min_batch_size = 2  # BatchNorm in G and D needs > 1 value per channel in a training batch

    def __init__(
        self,
        *,
        nz: int,
        noise: str,
        ngf: int,
        ndf: int,
        ngfc: int,
        ndfc: int,
        d_steps: int,
        g_loss: str,
        lr: float,
        beta1: float,
        beta2: float,
        ema_decay: float | None,
    ):
        super().__init__()
        number("model.nz", nz, 1, integer=True)
        choice("model.noise", noise, NOISE)
        for name, value in (("ngf", ngf), ("ndf", ndf), ("ngfc", ngfc), ("ndfc", ndfc), ("d_steps", d_steps)):
            number(f"model.{name}", value, 1, integer=True)
        choice("model.g_loss", g_loss, G_LOSSES)
        number("model.lr", lr, 0, low_open=True)
        number("model.beta1", beta1, 0, 1, high_open=True)
        number("model.beta2", beta2, 0, 1, high_open=True)
        number("model.ema_decay", ema_decay, 0, 1, low_open=True, high_open=True, null=True, hint="null: no EMA")
        self.save_hyperparameters()
        self.generator = Generator(nz, ngf, ngfc)
        self.discriminator = Discriminator(ndf, ndfc)
        init_weights(self.generator)
        init_weights(self.discriminator)
        # EMA of G (weights and BN statistics) for sampling and evaluation; a frozen submodule, so it
        # is in every checkpoint and DDP leaves it alone.
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if ema_decay else None

    # ---- sampling ------------------------------------------------------------------------------
    def sample_noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z [n, nz]: uniform in [0, 1] (the chapter) or standard normal."""
        draw = torch.rand if self.hparams.noise == "uniform" else torch.randn
        return draw(n, self.hparams.nz, generator=generator, device=self.device)

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        """int labels [B] (or already one-hot [B, 10]) -> float one-hot [B, 10]."""
        return y.float() if y.ndim == 2 else F.one_hot(y, N_CLASSES).float()

    @torch.no_grad()
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n images [n, 1, 28, 28] in [0, 1] of the given digits (default: 0..9 in turn), from the
        EMA generator when there is one."""
        if labels is None:
            labels = torch.arange(n, device=self.device) % N_CLASSES
        g = self.generator_ema if self.generator_ema is not None else self.generator
        return g(self.sample_noise(n, generator), self.one_hot(labels.to(self.device)))

    # ---- training ------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x, y = batch  # x [B, 1, 28, 28] in [0, 1], y [B] int64 (or one-hot)
        y = self.one_hot(y)  # [B, 10]
        opt_d, opt_g = self.optimizers()
        b = x.shape[0]

        # 1. discriminator (d_steps): fakes drawn once for the phase and detached: no gradient to G
        fake = self.generator(self.sample_noise(b), y).detach()  # [B, 1, 28, 28]
        for _ in range(self.hparams.d_steps):
            d_cost = discriminator_loss(self.discriminator(x, y), self.discriminator(fake, y))
            self.step_optimizer(opt_d, d_cost)

        # 2. generator: fresh fakes; D frozen so its weights get no (unused) gradient
        self.discriminator.requires_grad_(False)
        d_fake = self.discriminator(self.generator(self.sample_noise(b), y), y)  # [B]
        g_cost = generator_loss(d_fake, self.hparams.g_loss)
        self.step_optimizer(opt_g, g_cost)
        self.discriminator.requires_grad_(True)
        self.gen_step += 1
        if self.generator_ema is not None:
            self.update_ema()

        if self.gen_step % self.trainer.log_every_n_steps == 0:  # self.log costs at every call: log when written
            self.log_dict(
                {
                    "train/d_loss": d_cost.detach(),
                    "train/g_loss": g_cost.detach(),
                    "train/d_fake": torch.sigmoid(d_fake.detach()).mean(),
                },
                prog_bar=True,
            )
        return {"d_loss": d_cost.detach(), "g_loss": g_cost.detach()}  # loss terms, for the divergence guard

    @torch.no_grad()
    def update_ema(self) -> None:
        """theta_ema <- d * theta_ema + (1 - d) * theta with the warm-up d = min(decay, (1 + t) / (10 + t))
        at generator step t (tf.train.ExponentialMovingAverage's num_updates), so early weights fade
        fast; BN statistics copied as they are."""
        t = self.gen_step.item()
        decay = min(self.hparams.ema_decay, (1 + t) / (10 + t))
        ema, live = self.generator_ema, self.generator
        torch._foreach_lerp_(list(ema.parameters()), list(live.parameters()), 1.0 - decay)
        for e, b in zip(ema.buffers(), live.buffers(), strict=True):
            e.copy_(b)

    def configure_optimizers(self):
        betas = (self.hparams.beta1, self.hparams.beta2)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)
        return [opt_d, opt_g]

    # ---- evaluation ----------------------------------------------------------------------------
    def test_step(self, batch, batch_idx):
        """D's view of held-out digits and of fakes of the same labels (sample metrics: callbacks)."""
        x, y = batch
        y = self.one_hot(y)
        d_real = self.discriminator(x, y)
        d_fake = self.discriminator(self.sample(len(x), labels=y.argmax(1)), y)
        self.log_dict(
            {
                "test/d_loss": discriminator_loss(d_real, d_fake),
                "test/g_loss": generator_loss(d_fake),
                "test/d_real": torch.sigmoid(d_real).mean(),
                "test/d_fake": torch.sigmoid(d_fake).mean(),
            },
            sync_dist=True,
        )
