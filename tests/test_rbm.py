"""RBM math at toy sizes: free energy, the CD/PCD gradient, AIS against exact log Z, PCD chains."""

from __future__ import annotations

import itertools

import pytest
import pytorch_lightning as pl
import torch

from genexp import GenexpError
from genexp.metrics.ais import ais_log_partition, ais_loglik, base_rate_vbias, exact_log_partition
from genexp.models.rbm import RBM


@pytest.fixture(autouse=True)
def one_thread():
    """Toy sizes: one thread is faster, and on a shared CPU two threads can be 10x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _rbm(n_visible: int, n_hidden: int, scale: float = 1.0, seed: int = 0, **kwargs) -> RBM:
    """An RBM with random weights and biases of the given scale (not the Glorot init)."""
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(n_visible=n_visible, n_hidden=n_hidden, **kwargs)
    with torch.no_grad():
        rbm.W.copy_(scale * torch.randn(n_visible, n_hidden, generator=g))
        rbm.hbias.copy_(scale * torch.randn(n_hidden, generator=g))
        rbm.vbias.copy_(scale * torch.randn(n_visible, generator=g))
    return rbm.double()


def _states(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def test_free_energy_is_log_sum_over_hidden_states():
    rbm = _rbm(5, 3)
    v = torch.cat([_states(5), torch.rand(4, 5, dtype=torch.float64)])  # binary and grey visibles
    h = _states(3)  # [8, 3]
    # -E(v, h) = v.vbias + h.hbias + v W h, for every (v, h) pair: [B, 8]
    neg_energy = (v @ rbm.vbias)[:, None] + (h @ rbm.hbias)[None, :] + (v @ rbm.W) @ h.T
    brute = -torch.logsumexp(neg_energy, dim=1)
    torch.testing.assert_close(rbm.free_energy(v), brute)


@pytest.mark.parametrize("enumerate_side", ["hidden", "visible"])
def test_exact_log_partition_matches_brute_force(enumerate_side):
    rbm = _rbm(6, 4) if enumerate_side == "hidden" else _rbm(4, 6)
    v, h = _states(rbm.W.shape[0]), _states(rbm.W.shape[1])
    neg_energy = (v @ rbm.vbias)[:, None] + (h @ rbm.hbias)[None, :] + (v @ rbm.W) @ h.T
    torch.testing.assert_close(exact_log_partition(rbm), torch.logsumexp(neg_energy.flatten(), 0))


def _exact_nll_grad(rbm: RBM, data: torch.Tensor) -> torch.Tensor:
    """d/dW of the exact mean negative log-likelihood -mean log p(data) = mean F(data) + log Z."""
    W = rbm.W.detach().clone().requires_grad_(True)
    F = -(data @ rbm.vbias) - torch.nn.functional.softplus(data @ W + rbm.hbias).sum(1)
    nll = F.mean() + exact_log_partition(W=W, hbias=rbm.hbias.detach(), vbias=rbm.vbias.detach())
    (grad,) = torch.autograd.grad(nll, W)
    return grad


@pytest.mark.parametrize("persistent", [False, True])
def test_cd_pcd_update_expectation_matches_exact_gradient(persistent):
    torch.manual_seed(0)
    rbm = _rbm(8, 5, scale=0.5, k=20, persistent=persistent)
    data = _states(8)[torch.randperm(256)[:6]]  # 6 training vectors
    exact = _exact_nll_grad(rbm, data)
    v0 = data.repeat(4000, 1)  # 24000 copies: many independent chains average the noise out
    g = torch.Generator().manual_seed(1)
    grads = []
    for _ in range(3 if persistent else 1):  # PCD: later calls continue the same chains
        rbm.zero_grad()
        cost, chain_end = rbm.cd_loss(v0, generator=g)
        cost.backward()
        grads.append(rbm.W.grad.clone())
    estimate = torch.stack(grads).mean(0)
    assert chain_end.shape == v0.shape and not chain_end.requires_grad
    # the d cost/dW is the estimate of d NLL/dW; |exact| is O(0.1-1), the noise O(0.01)
    assert exact.abs().max() > 0.1
    torch.testing.assert_close(estimate, exact, atol=0.03, rtol=0.0)
    # and an untrained-chain estimate (no negative phase) would not pass: the test can fail
    positive_only = -(data.T @ torch.sigmoid(data @ rbm.W + rbm.hbias)) / len(data)
    assert (positive_only.detach() - exact).abs().max() > 0.1


def test_ais_agrees_with_exact_log_z_on_784x15(mnist_dm):
    torch.manual_seed(0)
    x = mnist_dm.split_tensors("train")[0][:3000].reshape(3000, 784)
    v = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    rbm = RBM(n_visible=784, n_hidden=15, k=1, seed=0)
    opt = torch.optim.SGD(rbm.parameters(), lr=0.05)
    for _ in range(2):  # two CD-1 epochs: a structured model, far from the base rate
        for batch in v.split(50):
            cost, _ = rbm.cd_loss(batch)
            opt.zero_grad()
            cost.backward()
            opt.step()
    exact = float(exact_log_partition(rbm).detach())
    base = base_rate_vbias(v)
    r = ais_log_partition(rbm, base, n_chains=100, n_betas=3000, seed=3)
    assert abs(r.log_z - exact) < 0.5, (r.log_z, exact)
    assert r.log_z_lo <= r.log_z <= r.log_z_hi and 1.0 <= r.ess <= 100.0
    assert abs(exact - r.log_z_base) > 5  # the annealing had work to do
    # ais_loglik enumerates when it can, and log p = -F - log Z
    ll = ais_loglik(rbm, v, v[:500])
    torch.testing.assert_close(ll.log_z, exact)
    neg_f = float(-rbm.free_energy(v[:500]).detach().double().mean())
    torch.testing.assert_close(ll.loglik, neg_f - exact, rtol=0, atol=1e-3)


def test_pcd_chains_persist_across_steps_and_cd_keeps_none():
    rbm = _rbm(10, 6, persistent=True, k=1).float()
    v = torch.rand(4, 10).bernoulli()
    g = torch.Generator().manual_seed(0)
    rbm.cd_loss(v, generator=g)
    chain = rbm.persistent_chain.clone()
    assert chain.shape == (4, 6)
    # the next update must continue from `chain`: redo its Gibbs step h -> v -> h with the same noise
    g_copy = torch.Generator().set_state(g.get_state())
    _, _, v_expected, _, _, h_expected = rbm.gibbs_hvh(chain, g_copy)
    _, chain_end = rbm.cd_loss(torch.rand(4, 10).bernoulli(), generator=g)
    torch.testing.assert_close(chain_end, v_expected)
    torch.testing.assert_close(rbm.persistent_chain, h_expected)
    cd = _rbm(10, 6, persistent=False).float()
    cd.cd_loss(v)
    assert cd.persistent_chain.numel() == 0


class _ChainAtStart(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not hasattr(self, "first"):
            self.first = pl_module.persistent_chain.clone()


def _trainer(tmp_path, max_epochs, callbacks=()):
    return pl.Trainer(
        max_epochs=max_epochs,
        limit_train_batches=3,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=str(tmp_path),
        callbacks=list(callbacks),
    )


def test_pcd_chains_go_through_checkpoint(tmp_path):
    data = torch.utils.data.TensorDataset(torch.rand(60, 20).bernoulli(), torch.zeros(60))
    loader = torch.utils.data.DataLoader(data, batch_size=10)
    model = RBM(n_visible=20, n_hidden=8, persistent=True, k=2, seed=0)
    trainer = _trainer(tmp_path, 1)
    trainer.fit(model, loader)
    path = tmp_path / "rbm.ckpt"
    trainer.save_checkpoint(path)
    assert model.persistent_chain.shape == (10, 8) and model.persistent_chain.abs().sum() > 0
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["pcd_chains"].shape == (1, 10, 8)  # [world_size, chains, n_hidden]
    loaded = RBM.load_from_checkpoint(path)
    torch.testing.assert_close(loaded.persistent_chain, model.persistent_chain)
    # resuming training starts its first update from the saved chains, not from zeros
    fresh, seen = RBM(n_visible=20, n_hidden=8, persistent=True, k=2, seed=1), _ChainAtStart()
    _trainer(tmp_path, 2, [seen]).fit(fresh, loader, ckpt_path=path)
    torch.testing.assert_close(seen.first, model.persistent_chain)
    assert int(fresh.gen_step) == 6


@pytest.mark.parametrize(
    ("kwargs", "bad"), [({"lr_schedule": "cosine"}, "cosine"), ({"k": 0}, "model.k=0"), ({"lr_decay": 1.5}, "1.5")]
)
def test_bad_config_is_one_clear_error(kwargs, bad):
    with pytest.raises(GenexpError, match=bad):
        RBM(**kwargs)


def test_shared_propup_path_equals_the_general_form():
    """cd_loss's fast path (first/last propup shared with the free energies) gives the same update as
    the textbook form that subclasses (other conditionals) go through."""

    class Textbook(RBM):
        def free_energy(self, v):  # same function, but overridden: forces the general path
            return super().free_energy(v)

    for persistent in (False, True):
        fast = _rbm(12, 7, k=3, persistent=persistent)
        slow = Textbook(n_visible=12, n_hidden=7, k=3, persistent=persistent).double()
        slow.load_state_dict(fast.state_dict())
        assert fast._shares_propup() and not slow._shares_propup()
        v0 = torch.rand(5, 12, dtype=torch.float64).bernoulli()
        for _ in range(2):
            out = [m.cd_loss(v0, generator=torch.Generator().manual_seed(7)) for m in (fast, slow)]
            torch.testing.assert_close(out[0][0], out[1][0])  # cost
            torch.testing.assert_close(out[0][1], out[1][1])  # chain_end
            torch.testing.assert_close(fast.persistent_chain, slow.persistent_chain)
