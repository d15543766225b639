"""The chapter's label-conditional DCGAN on MNIST: a generator G(z, y) and a discriminator D(x, y),
both conditioned on the one-hot digit label by concatenation (`conv_cond_concat`), trained in
alternation with the discriminator updated `d_steps` times per generator update ("the police trains
twice as much as the thief"). Networks and losses: `genexp.nn.gan`; what every GAN shares (EMA, the
noise-predicting network Q with `lambda_ent`): `genexp.models.gan`.
Widths follow the chapter's Theano code (dcgan_code's `ngf`, `ndf`, `ngfc`, `ndfc`, `nz`).
"""

from __future__ import annotations

import logging

import torch

from genexp.models.gan import GAN
from genexp.nn.gan import N_CLASSES, Discriminator, Generator, discriminator_loss, generator_loss, init_weights

log = logging.getLogger(__name__)


class CDCGAN(GAN):
    is_conditional = True
    needs_labels = True
    val_metric, val_mode = "val/fid", "min"  # from the SampleQuality callback on the val split

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
        lambda_ent: float,
        q_body: str,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.check_gan()
        self.generator = Generator(nz, ngf, ngfc)
        self.discriminator = Discriminator(ndf, ndfc)
        init_weights(self.generator)
        init_weights(self.discriminator)
        self.add_noise_predictor(nz, N_CLASSES, "discriminator")
        self.add_ema(generator=self.generator)

    # ---- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n images [n, 1, 28, 28] in [0, 1] of the given digits (default: 0..9 in turn), from the
        EMA generator when there is one."""
        if labels is None:
            labels = torch.arange(n, device=self.device) % N_CLASSES
        g = self.for_sampling("generator")
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

        # 2. generator: fresh fakes; D frozen so its weights get no (unused) gradient; with Q, the
        #    entropy term -log q(z | G(z, y)) (genexp.models.gan)
        self.discriminator.requires_grad_(False)
        z = self.sample_noise(b)
        fake = self.generator(z, y)
        d_fake = self.discriminator(fake, y)  # [B]
        g_cost = generator_loss(d_fake, self.hparams.g_loss)
        ent = self.entropy_term(fake, y, z)
        self.step_optimizer(opt_g, g_cost + ent)
        self.discriminator.requires_grad_(True)
        losses = {"d_loss": d_cost, "g_loss": g_cost, "d_fake": torch.sigmoid(d_fake.detach()).mean()}
        return self.after_generator_step(losses | ({"ent": ent} if self.noise_q is not None else {}))

    def configure_optimizers(self):
        return [self.adam(self.discriminator.parameters()), self.adam(self.generator_parameters(self.generator))]
