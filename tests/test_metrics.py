"""Sample metrics: exact values on constructed cases, and on real MNIST with the project's classifier."""

from __future__ import annotations

import math

import torch

from genexp.metrics import class_histogram, classify, frechet_distance, knn_precision_recall, sample_quality
from genexp.models.base import GenerativeModule


def test_frechet_distance_exact_cases():
    a = torch.randn(2000, 5, generator=torch.Generator().manual_seed(0)).double()
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0]).double()
    assert abs(frechet_distance(a, a)) < 1e-6
    # equal covariances: only the means differ -> ||shift||^2
    assert math.isclose(frechet_distance(a, a + shift), float((shift**2).sum()), rel_tol=1e-6)
    # b = 2a (a centred): S_b = 4 S_a -> Tr(S + 4S - 2 * 2S) = Tr(S_a)
    ac = a - a.mean(0)
    assert math.isclose(frechet_distance(ac, 2 * ac), float(torch.cov(ac.T).trace()), rel_tol=1e-6)


def test_knn_precision_recall_limits():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(500, 4, generator=g)
    assert knn_precision_recall(real, real.clone(), k=3) == (1.0, 1.0)
    far = torch.randn(500, 4, generator=g) + 100
    assert knn_precision_recall(real, far, k=3) == (0.0, 0.0)
    # fakes on a quarter of the real manifold: precise but low recall
    half = real[real[:, 0] > 0.67]
    p, r = knn_precision_recall(real, half, k=3)
    assert p == 1.0 and r < 0.6


def test_class_histogram():
    uniform = class_histogram(torch.arange(1000) % 10)
    assert uniform["modes_covered"] == 10 and abs(uniform["kl_to_uniform"]) < 1e-12
    collapsed = class_histogram(torch.full((1000,), 3))
    assert collapsed["modes_covered"] == 1 and math.isclose(collapsed["kl_to_uniform"], math.log(10))
    assert collapsed["class_frac_3"] == 1.0


def test_classifier_accuracy_on_real_test_images(feature_classifier, mnist_dm):
    x, y = mnist_dm.split_tensors("test")
    _, logits = classify(feature_classifier, x)
    acc = (logits.argmax(1) == y).float().mean().item()
    assert acc >= 0.99, acc


def test_fid_of_test_halves_is_far_below_noise(feature_classifier, mnist_dm):
    x, _ = mnist_dm.split_tensors("test")
    f, _ = classify(feature_classifier, x)
    noise, _ = classify(feature_classifier, torch.rand(5000, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    halves = frechet_distance(f[:5000], f[5000:])
    to_noise = frechet_distance(f[:5000], noise)
    assert math.isfinite(halves) and halves >= 0 and to_noise > 50 * halves, (halves, to_noise)


class RealDigits(GenerativeModule):
    """A 'generator' that returns real test digits of the requested label: the metrics' best case."""

    is_conditional = True

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def sample(self, n, labels=None, generator=None):
        out = []
        for label in labels.tolist():
            pool = torch.nonzero(self.y == label).flatten()
            out.append(self.x[pool[torch.randint(len(pool), (1,), generator=generator)]])
        return torch.cat(out)


def test_sample_quality_of_real_digits(feature_classifier, mnist_dm):
    x, y = mnist_dm.split_tensors("test")
    perfect = sample_quality(RealDigits(x[5000:], y[5000:]), x[:5000], n=2000, batch_size=500)
    assert perfect["cond_acc"] > 0.98 and perfect["modes_covered"] == 10 and perfect["kl_to_uniform"] < 0.01
    collapsed = RealDigits(x[5000:], torch.where(y[5000:] == 1, 1, 99))  # only ones exist -> ask for 1 always
    collapsed.sample = lambda n, labels=None, generator=None: RealDigits.sample(
        collapsed, n, torch.ones_like(labels), generator
    )
    bad = sample_quality(collapsed, x[:5000], n=2000, batch_size=500)
    assert bad["modes_covered"] == 1 and bad["cond_acc"] < 0.15
    assert bad["fid_mnist_cnn"] > 10 * perfect["fid_mnist_cnn"] and bad["recall"] < perfect["recall"]
