"""The VAE's maths: the closed-form KL against Monte Carlo, the IWAE bound (equal to the ELBO at k = 1 in
expectation, non-decreasing in k on a trained model), and the likelihood of a model that outputs 0.5
everywhere (exactly -784 ln 2). The generic contract, resume and DDP tests cover `model=vae` by glob."""

from __future__ import annotations

import math

import pytest
import torch

from genexp.metrics import likelihood
from genexp.models.vae import gaussian_kl, gaussian_log_density, standard_normal_log_density
from tests.conftest import build_model, quiet_trainer


def test_closed_form_kl_equals_a_monte_carlo_estimate():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    z = mu + (0.5 * logvar).exp() * torch.randn(200_000, 4, 3, generator=g, dtype=torch.float64)
    prior = standard_normal_log_density(z)
    mc = (gaussian_log_density(z, mu, logvar) - prior).mean(0)  # E_q[log q - log p]
    torch.testing.assert_close(mc, gaussian_kl(mu, logvar), atol=0.02, rtol=0.01)
    assert torch.allclose(gaussian_kl(torch.zeros(2, 5), torch.zeros(2, 5)), torch.zeros(2))  # q = p


def test_a_model_that_outputs_one_half_everywhere_has_log_likelihood_minus_784_ln_2():
    m = build_model("vae", "model.n_latent=4", "model.hidden=[8]").eval()
    for layer in (m.encoder[-1][-1], m.decoder[-1]):  # q(z|x) = N(0, I) = p(z), p(x|z) = Bernoulli(0.5)
        torch.nn.init.zeros_(layer.weight), torch.nn.init.zeros_(layer.bias)
    x = likelihood.binarized(torch.rand(7, 1, 28, 28))
    expected = torch.full((7,), -784 * math.log(2), dtype=torch.float64)
    torch.testing.assert_close(m.log_likelihood(x, k=50, images_per_batch=3, rows=40), expected)


@pytest.fixture(scope="module")
def trained_vae(tmp_path_factory):
    """A small VAE after some training steps on the fake digits (binarized dynamically)."""
    import hydra

    from tests.conftest import compose_config

    torch.manual_seed(0)
    dm = hydra.utils.instantiate(compose_config("data=fake", "data.binarize=dynamic").data, _convert_="all")
    m = build_model("vae", "model.n_latent=8", "model.hidden=[64]")
    quiet_trainer(tmp_path_factory.mktemp("vae"), max_epochs=10, limit_train_batches=5).fit(m, datamodule=dm)
    dm.setup()
    return m.eval(), likelihood.binarized(dm.split_tensors("test")[0][:40])


def test_iwae_bound_is_the_elbo_at_k_1_in_expectation(trained_vae):
    m, x = trained_vae
    torch.manual_seed(1)
    with torch.no_grad():
        elbo = torch.stack([m.elbo(x).double() for _ in range(400)])  # [400, 40]
        iwae1 = torch.stack([m.iwae_bound(x, 1) for _ in range(400)])
    diff = elbo.mean(0) - iwae1.mean(0)
    se = ((elbo.var(0) + iwae1.var(0)) / 400).sqrt()
    assert (diff.abs() < 4 * se + 1e-6).all(), (diff, se)


def test_iwae_bound_is_non_decreasing_in_k_on_a_trained_model(trained_vae):
    m, x = trained_vae
    torch.manual_seed(2)
    means, ses = [], []
    for k in (1, 10, 100, 400):
        with torch.no_grad():
            runs = torch.stack([m.log_likelihood(x[:20], k=k).mean() for _ in range(10)])
        means.append(float(runs.mean())), ses.append(float(runs.std() / math.sqrt(10)))
    for (a, sa), (b, sb) in zip(zip(means, ses, strict=True), zip(means[1:], ses[1:], strict=True), strict=False):
        assert b >= a - 3 * (sa + sb), means
    assert means[-1] > means[0] + 0.5, means  # importance sampling does tighten the bound
