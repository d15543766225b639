"""The chapter's improved GANs: the stacked GAN's stages and schedule, the noise-predicting network Q
(S-GAN's entropy term, on cdcgan and stackgan), InfoGAN's codes, and the mode-collapse metrics
(within-class diversity, class entropy, code purity). The generic contract, resume and DDP tests cover
these models by glob (tests/test_contract.py, test_resume.py, test_scale_out.py)."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from genexp.callbacks import CodePurity
from genexp.metrics.sample_quality import class_histogram, code_information, within_class_diversity
from genexp.nn.gan import noise_nll
from tests.conftest import build_model, quiet_trainer

TINY = ["model.nz=8", "model.ngf=4", "model.ndf=4", "model.ngfc=16", "model.ndfc=16"]


# ---- stacked GAN ---------------------------------------------------------------------------------------
def test_stackgan_stages_have_their_shapes():
    m = build_model("stackgan", *TINY).eval()
    coarse, fine = m.sample_stages(6, torch.arange(6) % 10, torch.Generator().manual_seed(0))
    assert coarse.shape == (6, 1, 14, 14) and fine.shape == (6, 1, 28, 28)
    assert 0 <= float(fine.min()) <= float(fine.max()) <= 1
    assert torch.equal(m.sample(6, torch.arange(6) % 10, torch.Generator().manual_seed(0)), fine)


def test_stackgan_schedule_freezes_stage_one_in_stage_two(fake_dm, tmp_path):
    """Epoch 0: stage I alone (stage II untouched); epoch 1: stage II with stage I frozen (weights and
    BatchNorm statistics unchanged, no gradient); epoch 2: joint (both change)."""
    m = build_model("stackgan", *TINY, "model.stage1_epochs=1", "model.stage2_epochs=1", "model.ema_decay=null")
    snapshots = []

    class Snap(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            snapshots.append({k: v.clone() for k, v in pl_module.state_dict().items()})

    trainer = quiet_trainer(tmp_path, [Snap()], max_epochs=3, limit_train_batches=2)
    start = {k: v.clone() for k, v in m.state_dict().items()}
    trainer.fit(m, datamodule=fake_dm)
    assert [m.phase(e) for e in range(3)] == ["stage1", "stage2", "joint"]
    assert build_model("stackgan", *TINY, "model.stage2_epochs=null").phase(50) == "stage2"  # no joint phase

    def changed(a, b, prefix):
        return any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix) and a[k].is_floating_point())

    e0, e1, e2 = snapshots
    assert changed(start, e0, "stage1.") and not changed(start, e0, "stage2.")
    assert not changed(e0, e1, "stage1.") and changed(e0, e1, "stage2."), "stage I must be frozen in stage II"
    assert changed(e1, e2, "stage1.") and changed(e1, e2, "stage2.")


def test_stackgan_refuses_too_few_epochs_for_stage_two(fake_dm, tmp_path):
    m = build_model("stackgan", *TINY, "model.stage1_epochs=2")
    with pytest.raises(Exception, match="must be > model.stage1_epochs=2"):
        quiet_trainer(tmp_path, max_epochs=2, limit_train_batches=2).fit(m, datamodule=fake_dm)


# ---- the noise-predicting network Q ------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["cdcgan", "stackgan"])
@pytest.mark.parametrize("body", ["own", "discriminator"])
def test_q_gets_gradients_from_the_entropy_term_only_when_switched_on(model, body):
    off = build_model(model, *TINY)
    assert off.noise_q is None and float(off.entropy_term(torch.rand(4, 1, 28, 28), torch.eye(10)[:4], None)) == 0
    m = build_model(model, *TINY, "model.lambda_ent=0.5", f"model.q_body={body}")
    nz = m.hparams.nz + m.hparams.get("nz2", 0)
    y, z = torch.eye(10)[:4], torch.rand(4, nz)
    fake = torch.rand(4, 1, 28, 28, requires_grad=True)
    ent = m.entropy_term(fake, y, z)
    q_in = m.noise_q(getattr(m, m._final_d).features(fake, y) if body == "discriminator" else fake, y)
    torch.testing.assert_close(ent, 0.5 * noise_nll(q_in, z).mean())  # lambda_ent * mean 0.5 ||z - Q||^2
    ent.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.noise_q.parameters())
    assert fake.grad.abs().sum() > 0  # and the generator's output is pushed by it
    # Q is trained with the generator: its parameters are in the generator's optimizer
    g_opt = m.configure_optimizers()[-1]
    in_g = {id(p) for group in g_opt.param_groups for p in group["params"]}
    assert {id(p) for p in m.noise_q.parameters()} <= in_g


def test_generator_loss_has_the_entropy_term_only_with_lambda_ent(fake_dm, tmp_path):
    """One training step each: the logged losses carry `ent` only when lambda_ent > 0, and Q moved."""
    outs = {}
    for lam in (0.0, 1.0):
        m = build_model("cdcgan", *TINY, f"model.lambda_ent={lam}")
        q0 = None if m.noise_q is None else [p.clone() for p in m.noise_q.parameters()]
        got = {}

        class Grab(pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, got=got):
                got.update(outputs)

        quiet_trainer(tmp_path, [Grab()], limit_train_batches=1).fit(m, datamodule=fake_dm)
        outs[lam] = got
        if q0 is not None:
            assert any(not torch.equal(a, b) for a, b in zip(q0, m.noise_q.parameters(), strict=True))
    assert "ent" not in outs[0.0] and float(outs[1.0]["ent"]) > 0


# ---- InfoGAN ---------------------------------------------------------------------------------------------
def test_changing_an_infogan_code_changes_the_sample():
    m = build_model("infogan", *TINY).eval()
    z = m.sample_noise(4, torch.Generator().manual_seed(0))
    cat, cont = torch.tensor([0, 1, 2, 3]), torch.zeros(4, m.hparams.n_cont)
    base = m.generate_with_codes(z, cat, cont)
    assert base.shape == (4, 1, 28, 28)
    assert torch.equal(base, m.generate_with_codes(z, cat, cont))
    assert (m.generate_with_codes(z, (cat + 1) % 10, cont) - base).abs().amax((1, 2, 3)).min() > 0
    cont2 = cont.clone()
    cont2[:, 0] = 1.0
    assert (m.generate_with_codes(z, cat, cont2) - base).abs().amax((1, 2, 3)).min() > 0
    q = m.code_posterior(base)
    assert q.shape == (4, m.hparams.n_cat) and torch.allclose(q.sum(1), torch.ones(4)) and (q >= 0).all()


class _Loader:
    """A fixed list of batches as one loader (a plain list would be read as several loaders)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def test_infogan_trains_without_labels(fake_dm, tmp_path):
    """Scrambled labels change nothing: InfoGAN's step never reads them."""
    finals = []
    for scramble in (False, True):
        torch.manual_seed(0)
        m = build_model("infogan", *TINY, "model.ema_decay=null")

        class Batches(pl.LightningDataModule):
            def train_dataloader(self, scramble=scramble):
                x, y = fake_dm.split_tensors("train")
                y = torch.randperm(10, generator=torch.Generator().manual_seed(5))[y] if scramble else y
                return _Loader([(x[i : i + 16], y[i : i + 16]) for i in (0, 16)])

        quiet_trainer(tmp_path).fit(m, datamodule=Batches())
        finals.append(torch.cat([p.detach().flatten() for p in m.generator.parameters()]))
    assert torch.equal(*finals)


# ---- mode-collapse metrics -------------------------------------------------------------------------------
def test_within_class_diversity_is_one_for_the_data_and_zero_for_a_collapsed_class():
    g = torch.Generator().manual_seed(0)
    f_real, y = torch.randn(200, 8, generator=g), torch.arange(200) % 2
    assert within_class_diversity(f_real, y, f_real, y) == pytest.approx(1.0)
    collapsed = f_real.clone()
    collapsed[y == 0] = f_real[0]  # class 0: one image repeated
    assert within_class_diversity(f_real, y, collapsed, y) == pytest.approx(0.5, abs=0.1)  # (0 + 1) / 2
    assert within_class_diversity(f_real, y, 0.5 * f_real, y) == pytest.approx(0.5)  # half as spread


def test_class_entropy_is_log_k_when_balanced_and_zero_for_one_class():
    assert class_histogram(torch.arange(100) % 10)["class_entropy"] == pytest.approx(torch.log(torch.tensor(10.0)))
    assert class_histogram(torch.zeros(50, dtype=torch.long))["class_entropy"] == 0.0


class _CodeModel(pl.LightningModule):
    """code_posterior = one-hot of a fixed permutation of the true digit (a perfect code; with 9s given the
    code of 4s when merged), or of noise."""

    def __init__(self, lookup: dict[bytes, int], perm: torch.Tensor, noise: bool):
        super().__init__()
        self.lookup, self.perm, self.noise = lookup, perm, noise
        self.dummy = torch.nn.Linear(1, 1)

    def code_posterior(self, x):
        if self.noise:
            codes = torch.randint(0, 10, (len(x),), generator=torch.Generator().manual_seed(len(x)))
        else:
            codes = self.perm[torch.tensor([self.lookup[r.numpy().tobytes()] for r in x])]
        return torch.nn.functional.one_hot(codes, 10).float()


@pytest.mark.parametrize("mode", ["perfect", "random", "merged"])
def test_code_purity_maps_codes_to_digits_by_majority(fake_dm, mode, monkeypatch):
    x_tr, y_tr = fake_dm.split_tensors("train")
    x_te, y_te = fake_dm.split_tensors("test")
    x_va, y_va = fake_dm.split_tensors("val")
    lookup = {
        r.numpy().tobytes(): int(c)
        for r, c in zip(torch.cat([x_tr, x_va, x_te]), torch.cat([y_tr, y_va, y_te]), strict=True)
    }
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    if mode == "merged":
        perm[9] = perm[4]
    model = _CodeModel(lookup, perm, mode == "random")
    logged = {}
    monkeypatch.setattr("genexp.callbacks.evaluation._log", lambda m, metrics, prefix: logged.update(metrics))
    trainer = type("T", (), {"is_global_zero": True, "datamodule": fake_dm})()
    CodePurity(n_train=len(x_tr)).on_test_epoch_end(trainer, model)
    # the val split at each epoch's end (broadcast from rank 0), what a choice of settings may look at
    val = {}
    monkeypatch.setattr(model, "log", lambda k, v, **kw: val.update({k: v}), raising=False)
    trainer.strategy = type("S", (), {"broadcast": staticmethod(lambda obj, src=0: obj)})()
    CodePurity(n_train=len(x_tr)).on_train_epoch_end(trainer, model)
    # one-hot posteriors: I(x; c) is the entropy of the codes' histogram (the digits' for the perfect code)
    codes = model.code_posterior(x_te).argmax(1)
    assert logged["code_mi"] == pytest.approx(class_histogram(codes)["class_entropy"], abs=1e-9)
    if mode == "random":
        assert logged["code_error"] > 0.5 and val["val/code_error"] > 0.5
    elif mode == "merged":  # the shared code goes to the more frequent of 4 and 9 among the training images
        lost = 9 if (y_tr == 4).sum() >= (y_tr == 9).sum() else 4
        assert logged["codes_used"] == 9 and logged["digits_coded"] == 9
        assert logged["code_error"] == pytest.approx(float((y_te == lost).float().mean()))
        first = CodePurity(n_train=len(x_tr), n_eval=25).score(model, fake_dm, "test")  # debug=smoke's cut
        assert first["code_error"] == pytest.approx(float((y_te[:25] == lost).float().mean()))
    else:
        assert logged["code_error"] == 0.0 and logged["code_purity"] == 1.0
        assert logged["codes_used"] == 10 and logged["digits_coded"] == 10
        assert logged["code_mi"] == pytest.approx(class_histogram(y_te)["class_entropy"], abs=1e-9)
        assert val == {"val/code_error": 0.0, "val/code_mi": pytest.approx(class_histogram(y_va)["class_entropy"])}


def test_code_information_is_h_of_the_mean_minus_the_mean_h():
    log = torch.log
    assert code_information(torch.eye(4)) == pytest.approx(float(log(torch.tensor(4.0))))  # confident, balanced
    assert code_information(torch.full((5, 3), 1 / 3)) == pytest.approx(0.0, abs=1e-12)  # q ignores x
    assert code_information(torch.tensor([[0.7, 0.3], [0.7, 0.3]])) == pytest.approx(0.0, abs=1e-12)
    # two images, q = (1, 0) and (1/2, 1/2): H(3/4, 1/4) - (0 + log 2) / 2
    q = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert code_information(q) == pytest.approx(h - math.log(2) / 2, abs=1e-12)
