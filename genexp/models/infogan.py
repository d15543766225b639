"""InfoGAN (Chen et al. 2016), from the chapter's reading list: an unconditional DCGAN whose generator
also takes a latent code c (an `n_cat`-way categorical code and `n_cont` continuous codes U(-1, 1)),
and which maximises a lower bound on the mutual information I(c; G(z, c)) through an auxiliary
network Q(c | x), a head on the discriminator's body (Chen et al. 2016, sec. 5 and 6):

    L_I = E[ CE(Q_cat(G(z, c)), c_cat) + lambda_cont * 0.5 ||c_cont - Q_cont(G(z, c))||^2 ]   (-log q: a
          Gaussian with unit variance for the continuous codes, the paper's "factored Gaussian"; a
          smaller weight for them, as the paper advises, keeps them from taking over the digit identity)
    D phase:  d_cost + lambda_info * L_I on the phase's fakes   (D's body and the Q head learn c)
    G phase:  g_cost + lambda_info * L_I                         (G learns to make c recoverable)

No labels are used in training; `code_posterior` gives q(c_cat | x) of any image (evaluated by
CodePurity against the digit labels). The generator is the chapter's, with the code in the place of
the label (joined at every layer), the discriminator the chapter's with no label planes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genexp.models.gan import GAN
from genexp.nn.gan import Discriminator, Generator, discriminator_loss, generator_loss, init_weights
from genexp.validate import number


class InfoGAN(GAN):
    is_conditional = False
    needs_labels = False
    val_metric, val_mode = "val/fid", "min"

    def __init__(
        self,
        *,
        nz: int,
        noise: str,
        n_cat: int,
        n_cont: int,
        lambda_info: float,
        lambda_cont: float,
        ngf: int,
        ndf: int,
        ngfc: int,
        ndfc: int,
        d_steps: int,
        g_loss: str,
        lr: float,
        lr_g: float,
        beta1: float,
        beta2: float,
        ema_decay: float | None,
        lambda_ent: float,
        q_body: str,
    ):
        super().__init__()
        number("model.n_cat", n_cat, 2, integer=True)
        number("model.n_cont", n_cont, 0, integer=True)
        number("model.lambda_info", lambda_info, 0)
        number("model.lambda_cont", lambda_cont, 0)
        number("model.lr_g", lr_g, 0, low_open=True)
        self.save_hyperparameters()
        self.check_gan()
        self.n_codes = n_cat + n_cont
        self.generator = Generator(nz, ngf, ngfc, ny=self.n_codes)
        self.discriminator = Discriminator(ndf, ndfc, ny=0)
        # Q(c | x) on D's body: FC 128 - BN - lReLU - FC (Chen et al. 2016, appendix C, MNIST)
        self.q_head = nn.Sequential(
            nn.Linear(self.discriminator.n_features, 128, bias=False),
            nn.BatchNorm1d(128),
            nn.LeakyReLU(0.2),
            nn.Linear(128, self.n_codes),
        )
        for m in (self.generator, self.discriminator, self.q_head):
            init_weights(m)
        self.add_noise_predictor(nz, 0, "discriminator")
        self.add_ema(generator=self.generator)

    # ---- codes ---------------------------------------------------------------------------------
    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(c_cat [n] int, c_cont [n, n_cont] in U(-1, 1))."""
        h = self.hparams
        c_cat = torch.randint(0, h.n_cat, (n,), generator=generator, device=self.device)
        c_cont = torch.rand(n, h.n_cont, generator=generator, device=self.device) * 2 - 1
        return c_cat, c_cont

    def code_vector(self, c_cat: torch.Tensor, c_cont: torch.Tensor) -> torch.Tensor:
        """[one-hot c_cat, c_cont]: what the generator is conditioned on."""
        return torch.cat([self.one_hot(c_cat, self.hparams.n_cat), c_cont], 1)

    def info_loss(self, features: torch.Tensor, c_cat: torch.Tensor, c_cont: torch.Tensor) -> torch.Tensor:
        """L_I: -log q(c | x) of the codes a batch was generated with, from D's features of it."""
        out = self.q_head(features)
        nll = F.cross_entropy(out[:, : self.hparams.n_cat], c_cat)
        return nll + self.hparams.lambda_cont * 0.5 * (out[:, self.hparams.n_cat :] - c_cont).pow(2).sum(1).mean()

    @torch.no_grad()
    def code_posterior(self, x: torch.Tensor) -> torch.Tensor:
        """Q's posterior of the categorical code for each image, q(c_cat | x) [B, n_cat]."""
        empty = x.new_zeros(len(x), 0)
        return self.q_head(self.discriminator.features(x, empty))[:, : self.hparams.n_cat].softmax(1)

    @torch.no_grad()
    def generate_with_codes(self, z: torch.Tensor, c_cat: torch.Tensor, c_cont: torch.Tensor) -> torch.Tensor:
        """Images [n, 1, 28, 28] of given noise and codes (the code-traversal picture)."""
        return self.for_sampling("generator")(z, self.code_vector(c_cat, c_cont))

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """n images from random noise and codes (labels are not used: the model is unconditional)."""
        z = self.sample_noise(n, generator)
        return self.generate_with_codes(z, *self.sample_codes(n, generator))

    # ---- training ------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch  # labels, if any, are not used
        opt_d, opt_g = self.optimizers()
        b, lam = len(x), self.hparams.lambda_info
        empty = x.new_zeros(b, 0)  # no label planes
        D = self.discriminator

        # 1. discriminator and Q head: real vs fakes (detached), and the codes of those fakes
        c_cat, c_cont = self.sample_codes(b)
        fake = self.generator(self.sample_noise(b), self.code_vector(c_cat, c_cont)).detach()
        for _ in range(self.hparams.d_steps):
            f_fake = D.features(fake, empty)
            d_cost = discriminator_loss(D(x, empty), D.fc4(f_fake).squeeze(1))
            info_d = self.info_loss(f_fake, c_cat, c_cont)
            self.step_optimizer(opt_d, d_cost + lam * info_d)

        # 2. generator: fool D and keep the codes recoverable (D and Q frozen)
        for m in (D, self.q_head):
            m.requires_grad_(False)
        c_cat, c_cont = self.sample_codes(b)
        z = self.sample_noise(b)
        fake = self.generator(z, self.code_vector(c_cat, c_cont))
        f_fake = D.features(fake, empty)
        d_fake = D.fc4(f_fake).squeeze(1)
        g_cost = generator_loss(d_fake, self.hparams.g_loss)
        info_g = self.info_loss(f_fake, c_cat, c_cont)
        ent = self.entropy_term(fake, empty, z)
        self.step_optimizer(opt_g, g_cost + lam * info_g + ent)
        for m in (D, self.q_head):
            m.requires_grad_(True)
        return self.after_generator_step({"d_loss": d_cost, "g_loss": g_cost, "info_loss": info_g})

    def configure_optimizers(self):
        # Chen et al. 2016, appendix C (MNIST): lr 2e-4 for D (and Q), 1e-3 for G
        h = self.hparams
        opt_d = self.adam([*self.discriminator.parameters(), *self.q_head.parameters()])
        opt_g = torch.optim.Adam(self.generator_parameters(self.generator), lr=h.lr_g, betas=(h.beta1, h.beta2))
        return [opt_d, opt_g]
