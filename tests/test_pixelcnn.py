"""PixelCNN (issue 12): causality of the masks and of the whole network, the exact likelihood, and the
cached sampler against the textbook one. Fast tier; the generic contract, resume and DDP tests cover
model=pixelcnn through its config."""

from __future__ import annotations

import math

import pytest
import torch

from genexp.models.pixelcnn import MaskedConv2d, PixelCNN, causal_mask
from genexp.validate import GenexpError
from tests.conftest import build_model

N = 784


def tiny(n_classes: int = 0) -> PixelCNN:
    """A small network with weights large enough that every pixel sees its past."""
    torch.manual_seed(0)
    m = build_model("pixelcnn", "model.h=4", "model.n_blocks=2", "model.head=8", f"model.n_classes={n_classes}")
    for p in m.parameters():
        p.data.normal_(0, 0.5)
    return m.eval()


def jacobian(f, x: torch.Tensor) -> torch.Tensor:
    """d f(x)[i] / d x[j] over raster-order pixels: [784, 784]."""
    return torch.autograd.functional.jacobian(lambda v: f(v.reshape(1, 1, 28, 28)).reshape(-1, N).sum(0), x.reshape(N))


def assert_causal(J: torch.Tensor) -> None:
    future = torch.triu(torch.ones(N, N, dtype=torch.bool))  # j >= i: the pixel itself and every later one
    assert torch.count_nonzero(J[future]) == 0, "an output depends on its own or a later input pixel"
    past = torch.tril(torch.ones(N, N, dtype=torch.bool), -1)
    assert torch.count_nonzero(J[past]) > 0


def test_causal_masks():
    assert causal_mask(3, "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert causal_mask(3, "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]


def test_mask_a_alone_is_causal():
    torch.manual_seed(0)
    conv = MaskedConv2d(1, 3, 7, "A")
    J = jacobian(conv, torch.rand(N))
    assert_causal(J)
    assert torch.count_nonzero(J[29, 28]) == 1 and J[29, 0] != 0  # it sees the left neighbour and above


@pytest.mark.parametrize("n_classes", [0, 10])
def test_whole_network_is_causal(n_classes):
    m = tiny(n_classes)
    y = torch.tensor([3]) if n_classes else None
    J = jacobian(lambda v: m(v, y), (torch.rand(N) < 0.5).float())
    assert_causal(J)
    assert all(J[i, i - 1] != 0 for i in range(1, N) if i % 28), "a pixel does not see its left neighbour"


def test_a_model_of_one_half_everywhere_has_nll_784_ln2():
    m = tiny()
    torch.nn.init.zeros_(m.head2.weight)
    torch.nn.init.zeros_(m.head2.bias)
    x = (torch.rand(5, 1, 28, 28) < 0.3).float()
    ll = m.log_likelihood(x)
    assert ll.dtype == torch.float64
    assert torch.allclose(ll, torch.full((5,), -N * math.log(2), dtype=torch.float64), rtol=0, atol=1e-9)


@pytest.mark.parametrize("n_classes", [0, 10])
def test_cached_sampler_equals_a_forward_pass_per_pixel(n_classes):
    m = tiny(n_classes)
    labels = torch.arange(4) % 10 if n_classes else None
    draws, means = m._ancestral(4, labels, torch.Generator().manual_seed(1), m._step_logits)
    ref_draws, ref_means = m.sample_naive(4, labels, torch.Generator().manual_seed(1))
    assert torch.equal(draws, ref_draws)
    assert torch.allclose(means, ref_means, atol=1e-5)
    assert 0 < draws.mean() < 1 and set(draws.unique().tolist()) <= {0.0, 1.0}
    # the likelihood of the drawn images is the product of the conditionals the sampler used
    y = labels if n_classes else None
    ref = (draws * means.double().log() + (1 - draws) * (1 - means.double()).log()).flatten(1).sum(1)
    assert torch.allclose(m.log_prob(draws, y), ref, atol=1e-3)


def test_conditional_likelihood_is_the_class_mixture():
    m = tiny(10)
    x = (torch.rand(3, 1, 28, 28) < 0.3).float()
    per_class = torch.stack([m.log_prob(x, torch.full((3,), k)) for k in range(10)])
    assert torch.allclose(m.log_likelihood(x), torch.logsumexp(per_class, 0) - math.log(10))
    assert not torch.allclose(per_class[0], per_class[1]), "the class bias changes nothing"


def test_conditional_samples_follow_their_labels():
    m = tiny(10)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    a, b = m.sample(2, torch.tensor([1, 1]), g()), m.sample(2, torch.tensor([7, 7]), g())
    assert not torch.equal(a, b)


def test_training_lowers_the_nll_of_a_batch():
    m = build_model("pixelcnn", "model.h=8", "model.n_blocks=1")
    x = (torch.rand(32, 1, 28, 28) < torch.linspace(0, 0.6, 28).reshape(1, 1, 1, 28)).float()
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    before = -m.log_prob(x).mean().item()
    for _ in range(30):
        loss = -m.log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert -m.log_prob(x).mean().item() < before - 50


@pytest.mark.parametrize(("override", "message"), [
    ("model.first_kernel=4", "model.first_kernel=4: must be odd"),
    ("model.h=0", "model.h=0: must be"),
    ("model.n_classes=-1", "model.n_classes=-1: must be"),
])  # fmt: skip
def test_bad_settings_are_one_line_errors(override, message):
    with pytest.raises(Exception, match=message) as e:  # Hydra wraps the model's GenexpError
        build_model("pixelcnn", override)
    assert isinstance(e.value.__cause__, GenexpError)


def test_autocast_trains_in_bf16_and_the_likelihood_stays_float32(monkeypatch):
    m = build_model("pixelcnn", "model.h=8", "model.n_blocks=1", "model.autocast=true", "model.cosine=false")
    x = (torch.rand(16, 1, 28, 28) < 0.3).float()
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    monkeypatch.setattr(m, "optimizers", lambda: opt)
    monkeypatch.setattr(m, "manual_backward", lambda loss: loss.backward())
    monkeypatch.setattr(m, "log_epoch_mean", lambda *a: None)
    exact = -m.log_prob(x).mean().item()
    loss = m.training_step((x, torch.zeros(16)), 0)["loss"].item()  # before the step: the bf16 NLL
    assert loss != exact and abs(loss - exact) < 0.01 * exact  # bf16 rounding, not another quantity
    assert m.conv_in.weight.dtype == torch.float32 and m.log_likelihood(x).dtype == torch.float64
    assert -m.log_prob(x).mean().item() != exact  # the step updated the float32 weights
