"""RBM maths at toy sizes on `RBMCore` (free energy, exact log Z, the CD/PCD gradient, AIS, PCD chains,
the shared-propup fast path) and the Lightning `RBM`'s PCD chains through a checkpoint. Fast tier."""

from __future__ import annotations

import itertools

import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException

from genexp import GenexpError
from genexp.models.rbm import RBM
from genexp.nn import ais
from genexp.nn.ais import ais_log_partition, base_rate_vbias, exact_log_partition
from genexp.nn.rbm import GaussianHiddenRBM, RBMCore
from tests.conftest import build_model, quiet_trainer


def _core(n_visible: int, n_hidden: int, scale: float = 1.0, seed: int = 0, **kwargs) -> RBMCore:
    """An RBMCore (float64) with random weights and biases of the given scale (not the Glorot init)."""
    g = torch.Generator().manual_seed(seed)
    rbm = RBMCore(n_visible, n_hidden, **kwargs)
    with torch.no_grad():
        rbm.W.copy_(scale * torch.randn(n_visible, n_hidden, generator=g))
        rbm.hbias.copy_(scale * torch.randn(n_hidden, generator=g))
        rbm.vbias.copy_(scale * torch.randn(n_visible, generator=g))
    return rbm.double()


def _states(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def _neg_energy(rbm: RBMCore, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """-E(v, h) = v.vbias + h.hbias + v W h for every (v, h) pair: [len(v), len(h)]."""
    return (v @ rbm.vbias)[:, None] + (h @ rbm.hbias)[None, :] + (v @ rbm.W) @ h.T


# ---- free energy and log Z ---------------------------------------------------------------------------
def test_free_energy_is_log_sum_over_hidden_states():
    rbm = _core(5, 3)
    v = torch.cat([_states(5), torch.rand(4, 5, dtype=torch.float64)])  # binary and grey visibles
    brute = -torch.logsumexp(_neg_energy(rbm, v, _states(3)), dim=1)
    torch.testing.assert_close(rbm.free_energy(v), brute)
    # the float64 evaluator of log p = -F - log Z agrees
    torch.testing.assert_close(ais.neg_free_energy(rbm, v), -brute)


@pytest.mark.parametrize("enumerate_side", ["hidden", "visible"])
def test_exact_log_partition_matches_brute_force(enumerate_side):
    rbm = _core(6, 4) if enumerate_side == "hidden" else _core(4, 6)
    v, h = _states(rbm.n_visible), _states(rbm.n_hidden)
    brute = torch.logsumexp(_neg_energy(rbm, v, h).flatten(), 0)
    torch.testing.assert_close(exact_log_partition(rbm), brute)
    # ais.log_partition enumerates when it can
    assert ais.log_partition(rbm, torch.zeros(rbm.n_visible)).log_z == pytest.approx(float(brute.detach()), abs=1e-9)


# ---- the learning signal -----------------------------------------------------------------------------
def _exact_nll_grad(rbm: RBMCore, data: torch.Tensor) -> torch.Tensor:
    """d/dW of the exact mean negative log-likelihood -mean log p(data) = mean F(data) + log Z."""
    W = rbm.W.detach().clone().requires_grad_(True)
    F = -(data @ rbm.vbias.detach()) - torch.nn.functional.softplus(data @ W + rbm.hbias.detach()).sum(1)
    nll = F.mean() + exact_log_partition(W=W, hbias=rbm.hbias.detach(), vbias=rbm.vbias.detach())
    (grad,) = torch.autograd.grad(nll, W)
    return grad


@pytest.mark.parametrize("persistent", [False, True], ids=["CD", "PCD"])
def test_cd_pcd_update_expectation_matches_exact_gradient(persistent):
    torch.manual_seed(0)
    rbm = _core(8, 5, scale=0.5, k=20, persistent=persistent)
    data = _states(8)[torch.randperm(256)[:6]]  # 6 training vectors
    exact = _exact_nll_grad(rbm, data)
    v0 = data.repeat(4000, 1)  # 24000 copies: many independent chains average the noise out
    g = torch.Generator().manual_seed(1)
    grads = []
    for _ in range(3 if persistent else 1):  # PCD: later calls continue the same chains
        _, (d_w, _, _), chain_end = rbm.cd_grads(v0, generator=g)
        grads.append(d_w)
    estimate = torch.stack(grads).mean(0)
    assert chain_end.shape == v0.shape and not chain_end.requires_grad
    assert (rbm.persistent_chain.shape == (len(v0), 5)) == persistent
    # the d cost/dW is the estimate of d NLL/dW; |exact| is O(0.1-1), the noise O(0.01)
    assert exact.abs().max() > 0.1
    torch.testing.assert_close(estimate, exact, atol=0.03, rtol=0.0)
    # and an untrained-chain estimate (no negative phase) would not pass: the test can fail
    positive_only = -(data.T @ torch.sigmoid(data @ rbm.W + rbm.hbias)) / len(data)
    assert (positive_only.detach() - exact).abs().max() > 0.1


class _Textbook(RBMCore):
    """The chapter's cost in its general form: k full Gibbs steps h -> v -> h from h ~ p(h | v0) (or the
    PCD chains), then F(v0) and F(chain_end) from scratch, differentiated by autograd."""

    def cd_loss(self, v0, generator=None):
        v0 = v0.detach()
        with torch.no_grad():
            h = self.chains_for(v0) if self.persistent else self.sample_h_given_v(v0, generator)[2]
            for _ in range(self.k):
                _, _, chain_end, _, _, h = self.gibbs_hvh(h, generator)
            if self.persistent:
                self.persistent_chain.copy_(h)
        return self.free_energy(v0).mean() - self.free_energy(chain_end).mean(), chain_end


@pytest.mark.parametrize("persistent", [False, True], ids=["CD", "PCD"])
@pytest.mark.parametrize("units", [RBMCore, GaussianHiddenRBM], ids=["binary", "gaussian"])
def test_closed_form_gradient_equals_autograd_of_the_textbook_cost(persistent, units):
    """RBMCore.cd_grads (closed form; first/last propup shared: 2k + 1 products) gives the same cost,
    chain end, gradient and PCD chains as autograd of the textbook form, with the same random numbers,
    for binary and for linear (Gaussian) hidden units."""
    fast = units(12, 7, k=3, persistent=persistent, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        fast.hbias.normal_(), fast.vbias.normal_()
    slow = type("Textbook", (_Textbook, units), {})(12, 7, k=3, persistent=persistent).double()
    slow.load_state_dict(fast.state_dict())
    v0 = torch.rand(5, 12, dtype=torch.float64).bernoulli()
    for step in range(2):  # PCD: the second update continues the first's chains
        cost, grads, chain_end = fast.cd_grads(v0, generator=torch.Generator().manual_seed(7 + step))
        slow.zero_grad()
        cost_ref, chain_ref = slow.cd_loss(v0, generator=torch.Generator().manual_seed(7 + step))
        cost_ref.backward()
        torch.testing.assert_close(cost, cost_ref.detach())
        torch.testing.assert_close(chain_end, chain_ref)
        for g, p in zip(grads, (slow.W, slow.hbias, slow.vbias), strict=True):
            assert g.abs().max() > 1e-3  # a gradient that could be wrong
            torch.testing.assert_close(g, p.grad)
        torch.testing.assert_close(fast.persistent_chain, slow.persistent_chain)
    assert (fast.persistent_chain.numel() > 0) == persistent


# ---- AIS ---------------------------------------------------------------------------------------------
def test_ais_agrees_with_exact_log_z_on_784x15(fake_dm):
    x = fake_dm.split_tensors("train")[0]
    v = torch.bernoulli(x.reshape(len(x), 784), generator=torch.Generator().manual_seed(0))
    rbm = RBMCore(784, 15, k=1, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(rbm.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):  # CD-1 epochs: a structured model, far from the base rate
        for batch in v.split(32):
            _, grads, _ = rbm.cd_grads(batch, generator=g)
            for p, grad in zip((rbm.W, rbm.hbias, rbm.vbias), grads, strict=True):
                p.grad = grad
            opt.step()
    exact = float(exact_log_partition(rbm).detach())
    base = base_rate_vbias(v)
    r = ais_log_partition(rbm, base, n_chains=100, n_betas=3000, seed=3)
    assert abs(r.log_z - exact) < 0.5, (r.log_z, exact)
    assert r.log_z_lo <= r.log_z <= r.log_z_hi and 1.0 <= r.ess <= 100.0
    assert r.n_chains == 100 and r.n_betas == 3000
    assert abs(exact - r.log_z_base) > 5  # the annealing had work to do
    # log_partition enumerates when it can, and log p = -F - log Z
    assert ais.log_partition(rbm, base).log_z == pytest.approx(exact, abs=1e-9)
    neg_f = ais.neg_free_energy(rbm, v[:200])
    torch.testing.assert_close(neg_f, -rbm.free_energy(v[:200]).detach().double(), rtol=0, atol=1e-3)


def test_beta_schedule_and_ais_argument_errors():
    betas = ais.beta_schedule(1000)
    assert len(betas) == 1000 and betas[0] == 0 and betas[-1] == 1 and (betas.diff() > 0).all()
    with pytest.raises(GenexpError, match="betas=1"):
        ais.beta_schedule(1)
    with pytest.raises(GenexpError, match="chains=0"):
        ais_log_partition(_core(3, 2), torch.zeros(3), n_chains=0, n_betas=10)
    with pytest.raises(GenexpError, match="21x21"):
        exact_log_partition(_core(21, 21, scale=0.01))


# ---- PCD chains --------------------------------------------------------------------------------------
def test_pcd_chains_persist_across_steps_and_cd_keeps_none():
    rbm = _core(10, 6, persistent=True, k=1).float()
    v = torch.rand(4, 10).bernoulli()
    g = torch.Generator().manual_seed(0)
    rbm.cd_grads(v, generator=g)
    chain = rbm.persistent_chain.clone()
    assert chain.shape == (4, 6)
    # the next update must continue from `chain`: redo its Gibbs step h -> v -> h with the same noise
    g_copy = torch.Generator().set_state(g.get_state())
    _, _, v_expected, _, _, h_expected = rbm.gibbs_hvh(chain, g_copy)
    _, _, chain_end = rbm.cd_grads(torch.rand(4, 10).bernoulli(), generator=g)
    torch.testing.assert_close(chain_end, v_expected)
    torch.testing.assert_close(rbm.persistent_chain, h_expected)
    # a batch of another size restarts the chains (at h = 0, as the tutorial does)
    assert rbm.chains_for(torch.zeros(3, 10)).shape == (3, 6) and rbm.persistent_chain.abs().sum() == 0
    cd = _core(10, 6, persistent=False).float()
    cd.cd_grads(v)
    assert cd.persistent_chain.numel() == 0


class _ChainAtStart(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not hasattr(self, "first"):
            self.first = pl_module.rbm.persistent_chain.clone()


def _trainer(tmp_path, max_epochs, callbacks=()):
    return quiet_trainer(tmp_path, callbacks, max_epochs)


PCD_TINY = ("model.n_hidden=8", "model.persistent=true", "model.k=2")


def test_pcd_chains_go_through_checkpoint(tmp_path, fake_dm):
    model = build_model("rbm", *PCD_TINY, "model.seed=0")
    trainer = _trainer(tmp_path, 1)
    trainer.fit(model, datamodule=fake_dm)
    path = tmp_path / "rbm.ckpt"
    trainer.save_checkpoint(path)
    chains = model.rbm.persistent_chain
    assert chains.shape == (16, 8) and chains.abs().sum() > 0  # data.batch_size chains, n_hidden
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["pcd_chains"].shape == (1, 16, 8)  # [world_size, chains, n_hidden]
    torch.testing.assert_close(ckpt["state_dict"]["rbm.persistent_chain"], chains)
    loaded = RBM.load_from_checkpoint(path)
    torch.testing.assert_close(loaded.rbm.persistent_chain, chains)
    # resuming training starts its first update from the saved chains, not from zeros
    fresh, seen = build_model("rbm", *PCD_TINY, "model.seed=1"), _ChainAtStart()
    _trainer(tmp_path, 2, [seen]).fit(fresh, datamodule=fake_dm, ckpt_path=path)
    torch.testing.assert_close(seen.first, chains)
    assert int(fresh.gen_step) == 6


@pytest.mark.parametrize(
    ("override", "bad"),
    [("model.lr_schedule=cosine", "cosine"), ("model.k=0", "model.k=0"), ("model.lr_decay=1.5", "1.5")],
)
def test_bad_config_is_one_clear_error(override, bad):
    # Hydra wraps a constructor's error; the CLI prints its GenexpError cause as one line
    with pytest.raises(InstantiationException) as e:
        build_model("rbm", override)
    assert isinstance(e.value.__cause__, GenexpError) and bad in str(e.value.__cause__)
