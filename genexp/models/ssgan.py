"""The chapter's semi-supervised GAN (Salimans et al. 2016, "Improved techniques for training GANs",
sec. 5): a classifier with K logits whose implicit (K+1)-th class is "generated" (the maths and the loss
terms: `genexp.nn.ssgan`), trained on a few labelled images (`data.labelled`, class-balanced and chosen by
`data.labelled_seed`), all training images without their labels, and the generator's samples:

    classifier:  L_supervised + lambda_unsup * L_unsupervised      (the labelled batch; the unlabelled batch
                                                                     and fresh samples; each term logged)
    generator:   feature matching || mean f(x) - mean f(G(z)) ||^2, or the usual -log D(G(z))

`lambda_unsup: 0` is the supervised-only baseline: the same classifier on the same N labels, no generator.
Validation (`val/error`, the model's val metric) and test (`test/error`) classify with the weight average
(`ema_decay`) of the classifier, as Salimans et al. evaluate with averaged weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genexp.models.gan import GAN
from genexp.nn.ssgan import (
    ConvClassifier,
    ConvGenerator,
    MLPClassifier,
    MLPGenerator,
    class_probabilities,
    data_dependent_init,
    feature_matching_loss,
    supervised_loss,
    theta_init,
    unsupervised_fake_loss,
    unsupervised_real_loss,
)
from genexp.validate import choice, fail, number

ARCHS = ("mlp", "conv")
G_LOSSES = ("feature_matching", "non_saturating")


class SSGAN(GAN):
    is_conditional = False
    needs_labels = True
    val_metric, val_mode = "val/error", "min"

    def __init__(
        self,
        *,
        arch: str,
        nz: int,
        noise: str,
        g_loss: str,
        lambda_unsup: float,
        labelled_batch: int,
        input_noise: float,
        hidden_noise: float,
        init_batch: int,
        theta_sd: float | None,
        train_scale: bool,
        width: int,
        ngf: int,
        ngfc: int,
        lr: float,
        beta1: float,
        beta2: float,
        adam_eps: float,
        ema_decay: float | None,
    ):
        super().__init__()
        choice("model.arch", arch, ARCHS)
        number("model.lambda_unsup", lambda_unsup, 0, hint="0: the supervised-only baseline")
        number("model.labelled_batch", labelled_batch, 1, integer=True)
        number("model.input_noise", input_noise, 0)
        number("model.hidden_noise", hidden_noise, 0)
        number("model.init_batch", init_batch, 0, integer=True, hint="0: no data-dependent initialisation")
        number("model.theta_sd", theta_sd, 0, low_open=True, null=True, hint="null: PyTorch's default init")
        number("model.adam_eps", adam_eps, 0, low_open=True)
        self.save_hyperparameters()
        self.check_gan(widths=("width", "ngf", "ngfc"), g_losses=G_LOSSES)
        if arch == "mlp":
            self.classifier = MLPClassifier(input_noise=input_noise, hidden_noise=hidden_noise, train_scale=train_scale)
            self.generator = MLPGenerator(nz)
        else:
            self.classifier = ConvClassifier(width, input_noise=input_noise, train_scale=train_scale)
            self.generator = ConvGenerator(nz, ngf, ngfc)
        if theta_sd is not None:
            theta_init(self.classifier, theta_sd)
        self.add_ema(generator=self.generator, classifier=self.classifier)
        self._labelled: tuple[torch.Tensor, torch.Tensor] | None = None

    # ---- the labelled subset -------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage != "fit":
            return
        dm = self.trainer.datamodule
        if getattr(dm, "labelled_x", None) is None:
            fail("data.labelled", None, f"{type(self).__name__} trains on a labelled subset: set data.labelled=N")

    def on_fit_start(self) -> None:
        """A fresh run: the classifier's data-dependent initialisation on the first `init_batch` training
        images, with its noise layers on as in Salimans et al.'s code, the noise drawn from a seed shared
        by all ranks (the same init everywhere, so DDP ranks keep equal weights); its average starts there
        too. A resumed run has gen_step > 0 (or gets its weights from the checkpoint after this)."""
        if int(self.gen_step) == 0 and self.hparams.init_batch > 0:
            x = self.trainer.datamodule.split_tensors("train")[0][: self.hparams.init_batch].to(self.device)
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed(0)
                data_dependent_init(self.classifier.train(), x)
            if self.classifier_ema is not None:
                self.classifier_ema.load_state_dict(self.classifier.state_dict())

    def labelled_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`labelled_batch` images and labels of the labelled subset: the subset tiled and shuffled as in
        Salimans et al.'s code, drawn from a generator seeded by (this rank's seed, update number), so a
        resumed run draws what the uninterrupted one would have."""
        if self._labelled is None:
            dm = self.trainer.datamodule
            self._labelled = (dm.labelled_x.to(self.device), dm.labelled_y.to(self.device))
            self._labelled_seed = torch.initial_seed()  # differs per rank (GenerativeModule.setup)
        x, y = self._labelled
        b, n = self.hparams.labelled_batch, len(x)
        g = torch.Generator().manual_seed((self._labelled_seed * 1_000_003 + int(self.gen_step)) % 2**63)
        idx = (torch.randperm(n * math.ceil(b / n), generator=g)[:b] % n).to(x.device)
        y = y[idx]
        return x[idx], (y.argmax(1) if y.ndim == 2 else y)

    # ---- sampling and classifying --------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """n images from the (averaged) generator; labels are not used."""
        return self.for_sampling("generator")(self.sample_noise(n, generator))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, K] of the real classes from the averaged classifier (ClassifierErrors' contract)."""
        return self.for_sampling("classifier")(x)

    # ---- training ------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x = batch[0]  # every training image, its label never read: the unlabelled data
        opt_d, opt_g = self.optimizers()
        h, C = self.hparams, self.classifier
        x_lab, y_lab = self.labelled_batch()

        # 1. classifier: supervised term on the labelled batch, unsupervised term on real and fake
        losses = {"loss_supervised": supervised_loss(C(x_lab), y_lab)}
        loss = losses["loss_supervised"]
        if h.lambda_unsup > 0:
            fake = self.generator(self.sample_noise(len(x))).detach()
            losses["loss_unsupervised_real"] = unsupervised_real_loss(C(x))
            losses["loss_unsupervised_fake"] = unsupervised_fake_loss(C(fake))
            loss = loss + h.lambda_unsup * (losses["loss_unsupervised_real"] + losses["loss_unsupervised_fake"])
        self.step_optimizer(opt_d, loss)

        # 2. generator (not in the baseline), classifier frozen
        if h.lambda_unsup > 0:
            trainable = [q for q in C.parameters() if q.requires_grad]  # not the fixed weight-norm scales
            C.requires_grad_(False)
            fake = self.generator(self.sample_noise(len(x)))
            if h.g_loss == "feature_matching":
                losses["g_loss"] = feature_matching_loss(C.features(x), C.features(fake))
            else:  # -log D(G(z)), D = sigmoid(logsumexp l)
                losses["g_loss"] = F.softplus(-torch.logsumexp(C(fake), 1)).mean()
            self.step_optimizer(opt_g, losses["g_loss"])
            for q in trainable:
                q.requires_grad_(True)
        return self.after_generator_step(losses)

    def _evaluate(self, batch, split: str) -> None:
        x, y = batch
        y = y.argmax(1) if y.ndim == 2 else y
        logits = self.classify(x)
        self.log_dict(
            {
                f"{split}/error": (logits.argmax(1) != y).float().mean(),
                f"{split}/loss_supervised": supervised_loss(logits, y),
                f"{split}/p_fake": class_probabilities(logits)[:, -1].mean(),  # p(K+1 | real image)
            },
            sync_dist=True,
        )

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, "test")

    def configure_optimizers(self):
        # Adam(0.003, beta1 0.5) for both (Salimans et al. 2016, their MNIST code). Their Adam divides by
        # sqrt(v + 1e-8), which floors the denominator at 1e-4: adam_eps = 1e-4 (added to sqrt(v) here)
        # gives the same floor, so parameters with tiny gradients take the same damped steps.
        eps = self.hparams.adam_eps
        return [self.adam(self.classifier.parameters(), eps), self.adam(self.generator_parameters(self.generator), eps)]
