"""What the chapter's GANs share (`CDCGAN`, `StackGAN`, `InfoGAN`): the noise, one-hot labels, EMA copies
of the generators, the optional noise-predicting network Q of S-GAN, and the logging of the losses.

Noise-predicting network (Huang et al. 2017, "Stacked Generative Adversarial Networks", sec. 3.2;
the chapter's remedy against mode collapse): with `lambda_ent` > 0 the generator loss gains

    lambda_ent * E[-log q(z | G(z, y), y)] = lambda_ent * E[0.5 ||z - Q(G(z, y), y)||^2]   (noise_nll)

and Q is trained with the generator (its parameters are in the generator's optimizer), so the pair
minimises a variational upper bound on the conditional entropy H(z | G(z, y)): a generator that ignores
its noise (collapse) cannot be inverted, and pays. Q has its own small body (`q_body: own`) or is a
linear head on the discriminator's features (`q_body: discriminator`, that body frozen in the generator
phase as the rest of D is).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from genexp.models.base import GenerativeModule
from genexp.nn.gan import N_CLASSES, NoisePredictor, discriminator_loss, generator_loss, noise_nll
from genexp.validate import choice, number

NOISE = ("uniform", "normal")
G_LOSSES = ("non_saturating", "minimax")
Q_BODIES = ("own", "discriminator")


class GAN(GenerativeModule):
    """The shared part of a GAN: call `save_hyperparameters` and `check_gan` first, then build the
    networks, then `add_noise_predictor` and `add_ema`."""

    min_batch_size = 2  # BatchNorm in G and D needs > 1 value per channel in a training batch

    def __init__(self) -> None:
        super().__init__()
        self.noise_q: nn.Module | None = None  # S-GAN's Q, made by `add_noise_predictor` when lambda_ent > 0

    def check_gan(
        self, widths: tuple[str, ...] = ("ngf", "ndf", "ngfc", "ndfc"), g_losses: tuple[str, ...] = G_LOSSES
    ) -> None:
        """The hyper-parameters every GAN takes (from `self.hparams`; d_steps, lambda_ent and q_body where
        the model has them): one line per bad value."""
        h = self.hparams
        number("model.nz", h.nz, 1, integer=True)
        choice("model.noise", h.noise, NOISE)
        for name in (*(("d_steps",) if "d_steps" in h else ()), *widths):
            number(f"model.{name}", h[name], 1, integer=True)
        choice("model.g_loss", h.g_loss, g_losses)
        number("model.lr", h.lr, 0, low_open=True)
        number("model.beta1", h.beta1, 0, 1, high_open=True)
        number("model.beta2", h.beta2, 0, 1, high_open=True)
        number("model.ema_decay", h.ema_decay, 0, 1, low_open=True, high_open=True, null=True, hint="null: no EMA")
        if "lambda_ent" in h:
            number("model.lambda_ent", h.lambda_ent, 0, hint="0: no noise-predicting network")
            choice("model.q_body", h.q_body, Q_BODIES)

    # ---- building ------------------------------------------------------------------------------
    def add_noise_predictor(self, nz: int, ny: int, discriminator: str) -> None:
        """Q for the entropy term (None when lambda_ent is 0); `discriminator`: the attribute name of the
        discriminator of the final images (the body Q may share; the one `test_step` reports)."""
        self.noise_q, self._final_d = None, discriminator
        discriminator = getattr(self, discriminator)
        if self.hparams.lambda_ent > 0:
            shared = self.hparams.q_body == "discriminator"
            self.noise_q = NoisePredictor(nz, ny, n_features=discriminator.n_features if shared else None)

    def add_ema(self, **live: nn.Module) -> None:
        """A frozen EMA copy `<name>_ema` of each generator (weights and BN statistics) for sampling and
        evaluation: a submodule, so it is in every checkpoint and DDP leaves it alone."""
        self._ema_names = tuple(live) if self.hparams.ema_decay else ()
        for name, module in live.items():
            ema = copy.deepcopy(module).requires_grad_(False) if self.hparams.ema_decay else None
            setattr(self, f"{name}_ema", ema)

    def for_sampling(self, name: str) -> nn.Module:
        """The EMA copy of generator `name` if there is one, else the generator."""
        ema = getattr(self, f"{name}_ema", None)
        return ema if ema is not None else getattr(self, name)

    # ---- noise, labels, losses ---------------------------------------------------------------------
    def sample_noise(self, n: int, generator: torch.Generator | None = None, nz: int | None = None) -> torch.Tensor:
        """z [n, nz]: uniform in [0, 1] (the chapter) or standard normal."""
        draw = torch.rand if self.hparams.noise == "uniform" else torch.randn
        return draw(n, nz or self.hparams.nz, generator=generator, device=self.device)

    @staticmethod
    def one_hot(y: torch.Tensor, n_classes: int = N_CLASSES) -> torch.Tensor:
        """int labels [B] (or already one-hot [B, n]) -> float one-hot [B, n]."""
        return y.float() if y.ndim == 2 else F.one_hot(y, n_classes).float()

    def entropy_term(self, fake: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """lambda_ent * mean -log q(z | fake, y) (0 without Q): the generator phase adds it to its loss."""
        if self.noise_q is None:
            return fake.new_zeros(())
        q_in = getattr(self, self._final_d).features(fake, y) if self.noise_q.body is None else fake
        return self.hparams.lambda_ent * noise_nll(self.noise_q(q_in, y), z).mean()

    def generator_parameters(self, *generators: nn.Module) -> list[nn.Parameter]:
        """The generators' parameters and Q's (trained with the generator)."""
        extra = [self.noise_q] if self.noise_q is not None else []
        return [p for m in (*generators, *extra) for p in m.parameters()]

    def adam(self, params, eps: float = 1e-8) -> torch.optim.Adam:
        return torch.optim.Adam(params, lr=self.hparams.lr, betas=(self.hparams.beta1, self.hparams.beta2), eps=eps)

    def test_step(self, batch, batch_idx):
        """D's view of held-out digits and of samples of the same labels (the sample metrics are the
        evaluation callbacks'; Lightning's test loop needs a test_step to run them)."""
        x, y = batch
        y = self.one_hot(y) if self.is_conditional else x.new_zeros(len(x), 0)
        D = getattr(self, self._final_d)
        d_real = D(x, y)
        d_fake = D(self.sample(len(x), labels=y.argmax(1) if self.is_conditional else None), y)
        self.log_dict(
            {
                "test/d_loss": discriminator_loss(d_real, d_fake),
                "test/g_loss": generator_loss(d_fake),
                "test/d_real": torch.sigmoid(d_real).mean(),
                "test/d_fake": torch.sigmoid(d_fake).mean(),
            },
            sync_dist=True,
        )

    # ---- after each generator update ---------------------------------------------------------------
    def after_generator_step(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Count the update, move the EMA copies, log the losses every log_every_n_steps (self.log costs
        at every call: log when written); returns the detached losses (for the divergence guard)."""
        self.gen_step += 1
        if self._ema_names:
            self.update_ema()
        losses = {k: v.detach() for k, v in losses.items()}
        if self.gen_step % self.trainer.log_every_n_steps == 0:
            self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=True)
        return losses

    @torch.no_grad()
    def update_ema(self) -> None:
        """theta_ema <- d * theta_ema + (1 - d) * theta with the warm-up d = min(decay, (1 + t) / (10 + t))
        at generator step t (tf.train.ExponentialMovingAverage's num_updates), so early weights fade
        fast; BN statistics copied as they are."""
        t = self.gen_step.item()
        decay = min(self.hparams.ema_decay, (1 + t) / (10 + t))
        for name in self._ema_names:
            ema, live = getattr(self, f"{name}_ema"), getattr(self, name)
            torch._foreach_lerp_(list(ema.parameters()), list(live.parameters()), 1.0 - decay)
            for e, b in zip(ema.buffers(), live.buffers(), strict=True):
                e.copy_(b)
