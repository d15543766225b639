"""Sample metrics: exact values on constructed cases, the shipped feature network (hash, accuracy), and
the metrics on real MNIST digits."""

from __future__ import annotations

import hashlib
import json
import math
import shutil

import pytest
import torch

from genexp import GenexpError
from genexp.callbacks import SampleQuality
from genexp.metrics import features
from genexp.metrics.sample_quality import class_histogram, classify, frechet_distance, generate, knn_precision_recall
from genexp.metrics.sample_quality import sample_quality as score
from genexp.models.base import GenerativeModule


@pytest.fixture(scope="module")
def feature_net():
    return features.load_feature_net("mnist_cnn")


def test_shipped_feature_net_is_pinned_and_recorded():
    path = features.WEIGHTS / "mnist_cnn.pt"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == features.SHA256["mnist_cnn"]
    assert path.stat().st_size < 4_000_000  # weights only, a few MB
    info = json.loads((features.WEIGHTS / "mnist_cnn.json").read_text())
    assert info["sha256"] == features.SHA256["mnist_cnn"] and info["test_acc"] >= 0.993
    assert {"command", "seed", "git_commit"} <= set(info["recipe"]) and info["data"]["test"]


def test_a_changed_weights_file_is_refused(tmp_path, monkeypatch):
    shutil.copytree(features.WEIGHTS, tmp_path / "w")
    raw = bytearray((tmp_path / "w" / "mnist_cnn.pt").read_bytes())
    raw[-100] ^= 0xFF
    (tmp_path / "w" / "mnist_cnn.pt").write_bytes(bytes(raw))
    monkeypatch.setattr(features, "WEIGHTS", tmp_path / "w")
    monkeypatch.setattr(features, "_LOADED", {})
    with pytest.raises(GenexpError, match="not the shipped file"):
        features.load_feature_net("mnist_cnn")
    with pytest.raises(GenexpError, match="not a shipped feature network"):
        SampleQuality(feature_net="inception")


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


@pytest.mark.slow
def test_shipped_feature_net_accuracy_on_the_official_test_set(feature_net, mnist_dm):
    x, y = mnist_dm.split_tensors("test")
    _, logits = classify(feature_net, x)
    acc = (logits.argmax(1) == y).float().mean().item()
    assert acc >= 0.993, acc
    assert math.isclose(acc, json.loads((features.WEIGHTS / "mnist_cnn.json").read_text())["test_acc"], abs_tol=1e-4)


@pytest.mark.slow
def test_fid_of_test_halves_is_far_below_noise(feature_net, mnist_dm):
    x, _ = mnist_dm.split_tensors("test")
    f, _ = classify(feature_net, x)
    noise, _ = classify(feature_net, torch.rand(5000, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
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


def sample_quality(model, real, n, batch_size, net):
    fake, labels = generate(model, n, batch_size, progress=False)
    f_fake, logits = classify(net, fake)
    return score(classify(net, real)[0], f_fake, logits.argmax(1), labels)


@pytest.mark.slow
def test_sample_quality_of_real_digits(feature_net, mnist_dm):
    x, y = mnist_dm.split_tensors("test")
    perfect = sample_quality(RealDigits(x[5000:], y[5000:]), x[:5000], 2000, 500, feature_net)
    assert perfect["cond_acc"] > 0.98 and perfect["modes_covered"] == 10 and perfect["kl_to_uniform"] < 0.01
    collapsed = RealDigits(x[5000:], torch.where(y[5000:] == 1, 1, 99))  # only ones exist -> ask for 1 always
    collapsed.sample = lambda n, labels=None, generator=None: RealDigits.sample(
        collapsed, n, torch.ones_like(labels), generator
    )
    bad = sample_quality(collapsed, x[:5000], 2000, 500, feature_net)
    assert bad["modes_covered"] == 1 and bad["cond_acc"] < 0.15
    assert bad["fid"] > 10 * perfect["fid"] and bad["recall"] < perfect["recall"]
