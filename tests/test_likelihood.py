"""The fixed binarized evaluation set (genexp/metrics/likelihood.py), the `LogLikelihood` callback on a
tiny RBM (exact log Z), and the RBM's log Z / log p: normalised, and AIS against enumeration. Fast tier."""

from __future__ import annotations

import itertools
import json
import math

import hydra
import pytest
import torch
import torch.nn.functional as F

from genexp import GenexpError
from genexp.callbacks import LogLikelihood
from genexp.metrics import likelihood
from genexp.metrics.likelihood import binarized, digest
from genexp.nn import ais
from tests.conftest import build_model, compose_config, quiet_trainer


def _randomize(model, scale: float, seed: int = 0):
    """Random W, hbias, vbias of the given scale (not the Glorot init), in place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (model.rbm.W, model.rbm.hbias, model.rbm.vbias):
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


def _grey(fake_dm, split="test"):
    x = fake_dm.split_tensors(split, raw=True)[0]
    assert 0.05 < float((x > 0).float().mean()) and float(((x > 0) & (x < 1)).float().mean()) > 0.05  # grey
    return x


# ---- the binarized set ---------------------------------------------------------------------------------
def test_binarized_is_fixed_and_keeps_the_grey_mean(fake_dm):
    x = _grey(fake_dm)
    b = binarized(x)
    assert b.dtype == torch.float32 and b.shape == x.shape and set(b.unique().tolist()) == {0.0, 1.0}
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(binarized(x), b) and digest(binarized(x)) == digest(b)
    assert not torch.equal(binarized(x, seed=1), b)  # ... the documented seed does
    # stochastic binarization: pixel ~ Bernoulli(grey level), so the mean ink is kept (62720 pixels: sd 0.002)
    assert abs(float(b.mean()) - float(x.mean())) < 0.01
    assert (b[x == 0] == 0).all() and (b[x == 1] == 1).all()
    flipped = b.clone()
    flipped.view(-1)[0] = 1 - flipped.view(-1)[0]
    assert digest(flipped) != digest(b)


def test_threshold_is_a_variant_used_only_when_named(fake_dm):
    x = _grey(fake_dm)
    t = binarized(x, "threshold")
    assert torch.equal(t, (x > 0.5).float()) and not torch.equal(t, binarized(x))
    assert torch.equal(binarized(x, "stochastic"), binarized(x))  # the default
    assert likelihood.key("test", "stochastic") == "test/loglik"
    assert likelihood.key("val", "threshold") == "val/loglik_threshold"
    with pytest.raises(GenexpError, match="bogus"):
        binarized(x, "bogus")
    with pytest.raises(GenexpError, match="bogus"):
        LogLikelihood(binarize="bogus")  # fails when the callback is built, before any training
    assert LogLikelihood().binarize == "stochastic"


def test_score_refuses_models_without_likelihood():
    with pytest.raises(GenexpError, match="not a likelihood model"):
        likelihood.score(torch.nn.Linear(2, 2), torch.zeros(3, 2))


# ---- the LogLikelihood callback --------------------------------------------------------------------------
def _test_trainer(root, callbacks=(), max_epochs=1):
    return quiet_trainer(root, callbacks, max_epochs, limit_train_batches=5)


def test_loglik_callback_scores_the_stochastic_binarization_of_the_raw_split(tmp_path):
    """Trained on thresholded data, the RBM is still scored on the raw grey split binarized with the fixed
    seed; test/loglik = mean(-F(x) - log Z) over that set, with log Z exact (12 hidden units)."""
    dm = hydra.utils.instantiate(compose_config("data=fake", "data.binarize=threshold").data, _convert_="all")
    dm.setup()
    served, raw = dm.split_tensors("test")[0], _grey(dm)
    assert torch.equal(served, (raw > 0.5).float())  # the model sees thresholded images
    model = build_model("rbm", "model.n_hidden=12", "model.persistent=false", "model.lr=0.1")
    trainer = _test_trainer(tmp_path / "run", [LogLikelihood(splits=["val", "test"])])
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    logged = trainer.callback_metrics
    assert "test/loglik_threshold" not in logged and "val/loglik" in logged

    x = binarized(raw)
    exact = float(ais.exact_log_partition(model.rbm).detach())
    with torch.no_grad():
        expected = float((-model.rbm.free_energy(x.reshape(len(x), -1)).double() - exact).mean())
    assert float(logged["test/loglik"]) == pytest.approx(expected, rel=1e-6)
    assert float(logged["test/log_z"]) == pytest.approx(exact, rel=1e-6)  # likelihood_info: exact log Z
    assert float(model.log_likelihood(x.reshape(len(x), -1)).mean()) == pytest.approx(expected, rel=1e-9)
    # the thresholded images score differently (several nats): they are not what was scored
    on_served = float(model.log_likelihood(served.reshape(len(served), -1)).mean())
    assert abs(on_served - expected) > 1.0

    out = json.loads((tmp_path / "run" / "likelihood.json").read_text())
    assert set(out) == {"val/loglik", "test/loglik"}
    r = out["test/loglik"]
    assert r["mean"] == pytest.approx(expected, rel=1e-9) and r["n"] == len(raw) == 80
    assert r["binarization"] == "stochastic" and r["seed"] == likelihood.BINARIZE_SEED
    assert r["sha256"] == digest(x) and r["info"]["log_z"] == pytest.approx(exact, rel=1e-12)
    assert r["sem"] > 0 and r["kind"] == model.likelihood_kind

    # the threshold variant is there when named, under its own key, scored on raw > 0.5
    trainer = _test_trainer(tmp_path / "thr", [LogLikelihood(splits=["test"], binarize="threshold")])
    trainer.test(model, datamodule=dm, verbose=False)
    assert "test/loglik" not in trainer.callback_metrics
    assert float(trainer.callback_metrics["test/loglik_threshold"]) == pytest.approx(on_served, rel=1e-6)
    thr = json.loads((tmp_path / "thr" / "likelihood.json").read_text())["test/loglik_threshold"]
    assert thr["binarization"] == "threshold" and thr["seed"] is None and thr["sha256"] == digest(served)


# ---- log p of the RBM ------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_hidden", [5, 30], ids=["enumerate-h", "enumerate-v"])
def test_exact_likelihood_sums_to_one_over_all_states(n_hidden):
    model = _randomize(build_model("rbm", "model.n_visible=8", f"model.n_hidden={n_hidden}"), scale=1.0)
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=8)))
    log_p = model.log_likelihood(states)
    assert log_p.dtype == torch.float64 and log_p.shape == (256,) and (log_p < 0).all()
    assert float(torch.logsumexp(log_p, 0)) == pytest.approx(0.0, abs=1e-9)
    # a different model is not normalised by this one's log Z: the test can fail
    other = _randomize(build_model("rbm", "model.n_visible=8", f"model.n_hidden={n_hidden}"), scale=1.0, seed=1)
    neg_f = ais.neg_free_energy(other.rbm, states)
    assert abs(float(torch.logsumexp(neg_f - model.log_partition().log_z, 0))) > 0.1


def _enumerated_log_z(rbm, chunk: int = 1 << 16) -> float:
    """log Z summing over every visible state by brute force (any size the RAM allows), float64."""
    W, c, b = (t.detach().double() for t in (rbm.W, rbm.hbias, rbm.vbias))
    n = len(b)
    terms = []
    for start in range(0, 2**n, chunk):
        idx = torch.arange(start, min(2**n, start + chunk))
        v = ((idx[:, None] >> torch.arange(n)) & 1).double()
        terms.append(torch.logsumexp(v @ b + F.softplus(v @ W + c).sum(1), 0))
    return float(torch.logsumexp(torch.stack(terms), 0))


def test_ais_log_partition_matches_enumeration_on_21x40():
    """21 x 40: both layers above the exact-enumeration limit (20), so RBM.log_partition runs AIS; 2^21
    visible states are still few enough to sum here."""
    model = _randomize(build_model("rbm", "model.n_visible=21", "model.n_hidden=40"), scale=0.5)
    model.data_sum.fill_(30.0)  # base rate 0.3 for every pixel, as if from 100 training images
    model.data_count.fill_(100.0)
    truth = _enumerated_log_z(model.rbm)
    r = model.log_partition(ais_chains=100, ais_betas=2000, seed=0)
    assert r.n_betas == 2000 and 1.0 <= r.ess <= 100.0  # AIS, not the exact path
    assert abs(r.log_z - truth) < 0.1, (r.log_z, truth)
    assert r.log_z_lo <= truth <= r.log_z_hi
    assert abs(truth - r.log_z_base) > 5  # the annealing had work to do
    assert r.log_z_base == pytest.approx(21 * math.log(1 / 0.7) + 40 * math.log(2))
    # log p = -F - log Z, with the same (cached) AIS run
    x = torch.rand(7, 21).bernoulli()
    ll = model.log_likelihood(x, ais_chains=100, ais_betas=2000, seed=0)
    torch.testing.assert_close(ll, ais.neg_free_energy(model.rbm, x) - r.log_z)
    assert model.log_partition(ais_chains=100, ais_betas=2000, seed=0) is r
    info = model.likelihood_info()
    assert info["log_z"] == r.log_z and info["ais_ess"] == r.ess
    # a parameter update invalidates the cached log Z
    with torch.no_grad():
        model.rbm.vbias.add_(0.1)
    r2 = model.log_partition(ais_chains=100, ais_betas=2000, seed=0)
    assert r2 is not r and abs(r2.log_z - r.log_z) > 0.5
