"""PixelCNN (van den Oord et al. 2016, "Pixel recurrent neural networks", sec. 3.4 and Fig. 5): an exact
autoregressive model of binary images in raster order,

    log p(x) = sum_i log p(x_i | x_<i),   p(x_i = 1 | x_<i) = sigmoid(l_i(x_<i)),

with the causal order enforced by masked convolutions: a first k x k convolution of mask type A (each
output sees only the pixels strictly before it), then residual blocks (1x1 2h -> h, 3x3 mask B, which
also sees its own position's features, 1x1 h -> 2h; their Fig. 5), then two 1x1 layers to one Bernoulli
logit per pixel. `log_likelihood(x)` is exact (one forward pass). With `n_classes` > 0 every masked
convolution gets a learned per-class bias (the conditional PixelCNN of van den Oord et al. 2016b,
"Conditional image generation with PixelCNN decoders", eq. 4 with a one-hot h), and the likelihood
of an unlabelled image is the exact mixture log p(x) = log sum_y p(y) p(x | y) with p(y) uniform.

Sampling is ancestral, pixel by pixel, but not a full forward pass per pixel: every layer's input is
kept in a cache and, at pixel (r, c), each layer computes only its own output at (r, c) from its cached
neighbourhood (what the masks let it see is already final). A sample costs one forward pass of
arithmetic, in 784 small steps (`sample_naive` is the textbook loop, kept as the tests' reference).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genexp.models.base import GenerativeModule
from genexp.validate import fail, flag, number

SIDE = 28


def causal_mask(k: int, mask_type: str) -> torch.Tensor:
    """[k, k] ones on the rows above the centre and, on the centre row, left of the centre (type A) or up
    to and including it (type B)."""
    m = torch.zeros(k, k)
    m[: k // 2] = 1
    m[k // 2, : k // 2 + (mask_type == "B")] = 1
    return m


def _device(generator: torch.Generator | None, default: torch.device) -> torch.device:
    """Where to draw: on the generator's device (the callers' generators live on the model's device, a
    CUDA generator cannot draw on the CPU), else the model's."""
    return generator.device if generator is not None else default


class MaskedConv2d(nn.Conv2d):
    """A same-padded k x k convolution whose weights are multiplied by `causal_mask`."""

    def __init__(self, c_in: int, c_out: int, k: int, mask_type: str):
        super().__init__(c_in, c_out, k, padding=k // 2)
        self.register_buffer("mask", causal_mask(k, mask_type), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def at(self, padded: torch.Tensor, r: int, c: int) -> torch.Tensor:
        """The output at pixel (r, c) [B, c_out] from the input `padded` by k // 2 on each side."""
        k = self.kernel_size[0]
        patch = padded[:, :, r : r + k, c : c + k].flatten(1)  # [B, c_in * k * k]
        return F.linear(patch, (self.weight * self.mask).flatten(1), self.bias)


class ResidualBlock(nn.Module):
    """x + 1x1(relu(3x3_B(relu(1x1(relu(x))))))  (van den Oord et al. 2016, Fig. 5)."""

    def __init__(self, h: int, n_classes: int):
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(2 * h, h, 1), nn.Conv2d(h, 2 * h, 1)
        self.conv = MaskedConv2d(h, h, 3, "B")
        self.class_bias = nn.Embedding(n_classes, h) if n_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        t = self.conv(F.relu(self.reduce(F.relu(x)))) + _bias(self.class_bias, y, spatial=True)
        return x + self.expand(F.relu(t))

    def step(self, x: torch.Tensor, cache: torch.Tensor, r: int, c: int, y) -> torch.Tensor:
        """forward() at pixel (r, c): x [B, 2h] there; `cache` holds the 3x3 conv's padded input."""
        cache[:, :, r + 1, c + 1] = F.relu(F.linear(F.relu(x), self.reduce.weight.flatten(1), self.reduce.bias))
        t = self.conv.at(cache, r, c) + _bias(self.class_bias, y)
        return x + F.linear(F.relu(t), self.expand.weight.flatten(1), self.expand.bias)


def _bias(embedding: nn.Embedding | None, y: torch.Tensor | None, spatial: bool = False):
    """The class bias [B, C] (`spatial`: [B, C, 1, 1]) of labels y, or 0 in an unconditional model."""
    if embedding is None:
        return 0.0
    return embedding(y)[..., None, None] if spatial else embedding(y)


class PixelCNN(GenerativeModule):
    val_metric, val_mode = "val/nll", "min"  # nats per image on the val split (binarized as trained)
    likelihood_kind = "exact"

    def __init__(
        self,
        *,
        h: int,
        n_blocks: int,
        first_kernel: int,
        head: int,
        n_classes: int,
        lr: float,
        cosine: bool,
        autocast: bool,
    ):
        super().__init__()
        number("model.h", h, 1, integer=True, hint="the residual blocks are 2h wide")
        number("model.n_blocks", n_blocks, 0, integer=True)
        number("model.first_kernel", first_kernel, 3, integer=True, hint="an odd size, 7 in the paper")
        if first_kernel % 2 == 0:
            fail("model.first_kernel", first_kernel, "must be odd (a centred mask), 7 in the paper")
        number("model.head", head, 1, integer=True)
        number("model.n_classes", n_classes, 0, integer=True, hint="0: unconditional")
        number("model.lr", lr, 0, low_open=True)
        flag("model.cosine", cosine)
        flag("model.autocast", autocast)
        self.save_hyperparameters()
        self.is_conditional = self.needs_labels = n_classes > 0
        self.conv_in = MaskedConv2d(1, 2 * h, first_kernel, "A")
        self.class_bias = nn.Embedding(n_classes, 2 * h) if n_classes else None
        self.blocks = nn.ModuleList(ResidualBlock(h, n_classes) for _ in range(n_blocks))
        self.head1, self.head2 = nn.Conv2d(2 * h, head, 1), nn.Conv2d(head, 1, 1)
        # channels-last weights and activations: oneDNN's CPU convolutions, measured on this project's CPU
        # (h 32, 8 blocks, batch 64, 2 threads, one training step): 201 ms, 179 channels-last, 116 bf16
        # autocast, 69 both; cuDNN's bf16 kernels prefer it too.
        self.to(memory_format=torch.channels_last)

    def check_data(self, info, batch_size=None) -> None:
        super().check_data(info, batch_size)
        if self.needs_labels and info.n_classes != self.hparams.n_classes:
            fail("model.n_classes", self.hparams.n_classes, f"must be {info.n_classes} (data={info.name}) or 0")

    # ---- the model -------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Binary images [B, 1, 28, 28] -> logits [B, 1, 28, 28] of p(x_i = 1 | x_<i)."""
        x = x.reshape(len(x), 1, SIDE, SIDE).contiguous(memory_format=torch.channels_last)
        t = self.conv_in(x) + _bias(self.class_bias, y, spatial=True)
        for block in self.blocks:
            t = block(t, y)
        return self.head2(F.relu(self.head1(F.relu(t))))

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) [B] (log p(x | y) when conditional), summed in float64."""
        logits = self(x, y).reshape(len(x), -1).double()
        return -F.binary_cross_entropy_with_logits(logits, x.reshape(len(x), -1).double(), reduction="none").sum(1)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, images_per_batch: int = 500) -> torch.Tensor:
        """Exact log p(x) (nats) per binary image [B]; a conditional model: log (1/K) sum_y p(x | y)."""
        out = []
        for b in x.split(images_per_batch):
            if not self.is_conditional:
                out.append(self.log_prob(b))
                continue
            k = self.hparams.n_classes
            per_class = [self.log_prob(b, torch.full((len(b),), y, device=b.device)) for y in range(k)]
            out.append(torch.logsumexp(torch.stack(per_class), 0) - math.log(k))
        return torch.cat(out)

    # ---- sampling --------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """n images [n, 1, 28, 28]: p(x_i = 1 | x_<i) along one ancestral draw x_i ~ Bernoulli (the means are
        returned, as the VAE and RBM return theirs; `sample_binary` gives the draws)."""
        return self._ancestral(n, labels, generator, self._step_logits)[1]

    @torch.no_grad()
    def sample_binary(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None):
        return self._ancestral(n, labels, generator, self._step_logits)[0]

    @torch.no_grad()
    def sample_naive(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """(draws, means) by a full forward pass per pixel: 784 times the cost, the reference of the tests."""

        def logits(x, caches, r, c, y):
            return self(x, y)[:, 0, r, c]

        return self._ancestral(n, labels, generator, logits)

    def _ancestral(self, n, labels, generator, step):
        y = self._labels(n, labels, generator)
        x = torch.zeros(n, 1, SIDE, SIDE, device=self.device)
        means = torch.zeros_like(x)
        caches, pad = self._caches(n), self.hparams.first_kernel // 2
        for r in range(SIDE):
            u = torch.rand(n, SIDE, generator=generator, device=_device(generator, self.device))
            for c in range(SIDE):
                p = torch.sigmoid(step(x, caches, r, c, y).float())
                means[:, 0, r, c] = p
                x[:, 0, r, c] = (u[:, c] < p).float()
                caches[0][:, 0, r + pad, c + pad] = x[:, 0, r, c]
        return x, means

    def _labels(self, n, labels, generator):
        if not self.is_conditional:
            return None
        if labels is None:  # no labels asked: classes drawn uniformly
            labels = torch.randint(
                self.hparams.n_classes, (n,), generator=generator, device=_device(generator, self.device)
            )
        return labels.to(self.device).long()

    def _caches(self, n: int) -> list[torch.Tensor]:
        """Zero-padded inputs of every masked convolution: the image, then each block's 3x3 input."""
        k = self.hparams.first_kernel
        image = torch.zeros(n, 1, SIDE + k - 1, SIDE + k - 1, device=self.device)
        h = self.hparams.h
        return [image] + [torch.zeros(n, h, SIDE + 2, SIDE + 2, device=self.device) for _ in self.blocks]

    def _step_logits(self, x, caches, r, c, y) -> torch.Tensor:
        """The logit of pixel (r, c) [n] from the caches (pixels before it already drawn)."""
        t = self.conv_in.at(caches[0], r, c) + _bias(self.class_bias, y)
        for block, cache in zip(self.blocks, caches[1:], strict=True):
            t = block.step(t, cache, r, c, y)
        t = F.relu(F.linear(F.relu(t), self.head1.weight.flatten(1), self.head1.bias))
        return F.linear(t, self.head2.weight.flatten(1), self.head2.bias)[:, 0]

    # ---- training --------------------------------------------------------------------------------------
    def _nll(self, batch) -> torch.Tensor:
        x, y = batch[0], batch[1] if self.is_conditional else None
        return -self.log_prob(x, y).float()

    def training_step(self, batch, batch_idx):
        with self.bf16(self.hparams.autocast):  # training only: val/test likelihoods stay float32
            loss = self._nll(batch).mean()  # nats per image; binary x (data.binarize=dynamic)
        opt = self.optimizers()
        if self.hparams.cosine:  # decay to 0 over trainer.max_epochs: most of a short budget's last nats
            self.set_cosine_lr(opt, self.hparams.lr, batch_idx)
        self.step_optimizer(opt, loss)
        self.gen_step += 1
        self.log_epoch_mean("train/nll", loss.detach())
        return {"loss": loss.detach()}

    def validation_step(self, batch, batch_idx):
        self.log("val/nll", self._nll(batch).mean(), sync_dist=True)

    def test_step(self, batch, batch_idx):
        self.log("test/nll", self._nll(batch).mean(), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
