"""Networks and losses of the semi-supervised GAN (the chapter's last section; Salimans et al. 2016,
"Improved techniques for training GANs", sec. 5): a classifier with K logits l_1..l_K whose implicit
(K+1)-th class is "generated", and the generators it plays against.

With Z(x) = sum_k exp(l_k(x)) and the fake class's logit fixed at 0 (the chapter's derivation: subtracting
one function from every logit leaves the softmax unchanged, so l_{K+1} = 0 loses nothing):

    p(y = k | x)   = exp(l_k) / (Z(x) + 1)      k <= K
    p(y = K+1 | x) = 1 / (Z(x) + 1)             D(x) = 1 - p(K+1 | x) = Z / (Z + 1) = sigmoid(logsumexp(l))

    L_supervised   = -E_{x,y ~ labelled} log p(y | x, y < K+1)   = cross-entropy over the K logits
    L_unsupervised = -E_{x ~ data} log(1 - p(K+1 | x)) - E_{z} log p(K+1 | G(z))
                   =  E_data softplus(-logsumexp l(x))  +  E_z softplus(logsumexp l(G(z)))

and L_supervised + L_unsupervised is the cross-entropy over K+1 classes when the unlabelled real batch is
the labelled one (-log p(y|x) = -log p(y|x, y<K+1) - log(1 - p(K+1|x))): tested in tests/test_ssgan.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from genexp.nn.gan import Generator


# ---- the (K+1)-class view of K logits ---------------------------------------------------------------
def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """[B, K] logits -> [B, K+1] probabilities, the last the fake class 1 / (Z + 1)."""
    return torch.softmax(torch.cat([logits, logits.new_zeros(len(logits), 1)], 1), 1)


def supervised_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-mean log p(y | x, y < K+1): the cross-entropy over the K real classes (labelled data only)."""
    return F.cross_entropy(logits, y)


def unsupervised_real_loss(logits: torch.Tensor) -> torch.Tensor:
    """-mean log(1 - p(K+1 | x)) = mean softplus(-logsumexp l) on unlabelled real images (no labels)."""
    return F.softplus(-torch.logsumexp(logits, 1)).mean()


def unsupervised_fake_loss(logits: torch.Tensor) -> torch.Tensor:
    """-mean log p(K+1 | G(z)) = mean softplus(logsumexp l) on generated images."""
    return F.softplus(torch.logsumexp(logits, 1)).mean()


def feature_matching_loss(f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    """|| mean f(x) - mean f(G(z)) ||^2 over an intermediate layer f of the classifier, as the mean of the
    squared differences (Salimans et al. 2016, sec. 3.1; their MNIST code's T.mean(T.square(m1 - m2)))."""
    return (f_real.mean(0) - f_fake.mean(0)).pow(2).mean()


# ---- data-dependent initialisation -----------------------------------------------------------------
@torch.no_grad()
def data_dependent_init(module: nn.Module, x: torch.Tensor) -> None:
    """Weight normalisation's data-dependent initialisation (Salimans & Kingma 2016, sec. 3; used by
    Salimans et al. 2016's MNIST code): one pass of `x` through `module`, where each weight-normalised
    layer, in order, gets g <- g / s and b <- (b - m) / s for the mean m and standard deviation s of its
    outputs over the batch (and positions), so every layer starts with zero-mean unit-variance
    pre-activations. The pass keeps `module`'s mode: in training mode the Gaussian noise layers are on,
    as in their code (`get_output(..., deterministic=False, init=True)`), so the statistics include the
    noise. Without it the default initialisation shrinks activations layer by layer until the sd-0.5
    noise of the hidden layers drowns them."""

    def standardise(layer, inputs, out):
        dims = [0, *range(2, out.ndim)]  # batch (and spatial positions): one statistic per unit/channel
        m, s = out.mean(dims), out.std(dims) + 1e-6
        layer.parametrizations.weight.original0.div_(s.view_as(layer.parametrizations.weight.original0))
        layer.bias.sub_(m).div_(s)
        shape = [1, -1] + [1] * (out.ndim - 2)
        return (out - m.view(shape)) / s.view(shape)

    layers = [m for m in module.modules() if hasattr(m, "parametrizations") and m.bias is not None]
    hooks = [m.register_forward_hook(standardise) for m in layers]
    try:
        module(x)
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def theta_init(module: nn.Module, sd: float) -> None:
    """Directions v ~ N(0, sd^2) and scales g = 1 in every weight-normalised layer of `module` (their
    DenseLayer: theta = Normal(0.1), weight_scale = 1), before the data-dependent initialisation. It sets
    the effective learning rate: an Adam step of size lr on v turns w = g v / ||v|| by about
    lr sqrt(fan_in) / ||v||, and PyTorch's default init gives ||v|| ~ 0.58 against their
    0.1 sqrt(fan_in) ~ 3 (784 inputs): ~5x larger steps in direction, and an unstable classifier."""
    for m in module.modules():
        if hasattr(m, "parametrizations"):
            m.parametrizations.weight.original1.normal_(0.0, sd)
            m.parametrizations.weight.original0.fill_(1.0)


def freeze_scales(module: nn.Module, train_scale: bool) -> None:
    """Whether the weight-norm scales g of `module`'s layers learn (else they keep their initial values)."""
    for m in module.modules():
        if hasattr(m, "parametrizations"):
            m.parametrizations.weight.original0.requires_grad_(train_scale)


# ---- networks ---------------------------------------------------------------------------------------
class GaussianNoise(nn.Module):
    """x + sigma * N(0, I) in training, x at evaluation (Salimans et al.'s regulariser of the MLP)."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x) if self.training and self.sigma > 0 else x


class MLPClassifier(nn.Module):
    """The permutation-invariant MNIST classifier of Salimans et al. 2016 (their released
    train_mnist_feature_matching.py): Gaussian noise (sd `input_noise`, 0.3) on the 784 pixels, then
    weight-normalised ReLU layers 1000-500-250-250-250, each followed by noise (sd `hidden_noise`, 0.5),
    then K weight-normalised logits. `features` is the last hidden layer (before its noise): the layer
    their feature matching uses. `train_scale=False`: the hidden layers' weight-norm scales g stay at their
    data-dependent initial values (their DenseLayer's train_scale=False; only the output layer's g learns),
    so the layers cannot grow their activations past the fixed noise."""

    def __init__(
        self, widths=(1000, 500, 250, 250, 250), input_noise=0.3, hidden_noise=0.5, n_classes=10, train_scale=False
    ):
        super().__init__()
        layers, n_in = [GaussianNoise(input_noise)], 784
        for i, w in enumerate(widths):
            if i:
                layers.append(GaussianNoise(hidden_noise))
            layers += [weight_norm(nn.Linear(n_in, w)), nn.ReLU()]
            n_in = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(GaussianNoise(hidden_noise), weight_norm(nn.Linear(n_in, n_classes)))
        freeze_scales(self.body, train_scale)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvClassifier(nn.Module):
    """A small convolutional classifier: noise (sd `input_noise`) on the image, three weight-normalised
    convolutions (28 -> 14 -> 7 -> 7, leaky ReLU) each followed by dropout, global mean pooling
    (`features`), K logits."""

    def __init__(self, width=64, input_noise=0.3, dropout=0.2, n_classes=10, train_scale=False):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            GaussianNoise(input_noise),
            weight_norm(nn.Conv2d(1, w, 5, stride=2, padding=2)),
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
            weight_norm(nn.Conv2d(w, 2 * w, 5, stride=2, padding=2)),
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
            weight_norm(nn.Conv2d(2 * w, 2 * w, 3, padding=1)),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = weight_norm(nn.Linear(2 * w, n_classes))
        freeze_scales(self.body, train_scale)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLPGenerator(nn.Module):
    """Salimans et al.'s MNIST generator: z -> 500 -> 500 (softplus, batch norm) -> 784 sigmoid, the last
    layer weight-normalised."""

    def __init__(self, nz: int = 100, width: int = 500):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(nz, width, bias=False),
            nn.BatchNorm1d(width),
            nn.Softplus(),
            nn.Linear(width, width, bias=False),
            nn.BatchNorm1d(width),
            nn.Softplus(),
            weight_norm(nn.Linear(width, 784)),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 28, 28)


class ConvGenerator(nn.Module):
    """The chapter's DCGAN generator with no label (`genexp.nn.gan.Generator`, ny = 0)."""

    def __init__(self, nz: int = 100, ngf: int = 32, ngfc: int = 512):
        super().__init__()
        self.net = Generator(nz, ngf, ngfc, ny=0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z, z.new_zeros(len(z), 0))
