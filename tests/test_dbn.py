"""DBN: phase schedule, layer freezing, resume mid-stack, fine-tune initialisation, CLI per mode."""

from __future__ import annotations

import json
import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from genexp import GenexpError
from genexp.models.dbn import DBN, GaussianHiddenRBM, pca_recon_sq_error

TINY = [784, 12, 8, 6]


class TinyData(pl.LightningDataModule):
    """256 random binary 'images' (mechanics only; the CLI tests use the real MNIST)."""

    def __init__(self, n: int = 256, batch_size: int = 32):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.x = (torch.rand(n, 1, 28, 28, generator=g) < 0.3).float()
        self.y = torch.randint(0, 10, (n,), generator=g)
        self.batch_size = batch_size

    def train_dataloader(self):
        return DataLoader(TensorDataset(self.x, self.y), batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x[:64], self.y[:64]), batch_size=64)

    def test_dataloader(self):
        return self.val_dataloader()

    def split_tensors(self, split):
        return self.x, self.y


def _trainer(max_epochs: int, callbacks=(), **kw) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=bool([c for c in callbacks if isinstance(c, pl.callbacks.ModelCheckpoint)]),
        callbacks=list(callbacks),
        accelerator="cpu",
        num_sanity_val_steps=0,
        **kw,
    )


class Spy(pl.Callback):
    """Records, per batch, which parameters got a gradient and a copy of the weights per epoch."""

    def __init__(self):
        self.grads, self.weights = {}, {}

    def on_train_epoch_start(self, trainer, module):
        self.weights[trainer.current_epoch] = {n: p.detach().clone() for n, p in module.named_parameters()}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.grads.setdefault(trainer.current_epoch, set()).update(
            n for n, p in module.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
        )


# ---- configuration ----------------------------------------------------------------------------------
def test_phase_schedule_follows_pretrain_epochs():
    m = DBN(layer_sizes=TINY, pretrain_epochs=[2, 0, 1], finetune="classifier")
    assert [m.phase(e) for e in range(5)] == [
        ("pretrain", 0),
        ("pretrain", 0),
        ("pretrain", 2),
        ("finetune", 2),
        ("finetune", 2),
    ]
    g = DBN(layer_sizes=TINY, pretrain_epochs=1, finetune="generate")
    assert [g.phase(e) for e in range(5)] == [
        ("pretrain", 0),
        ("pretrain", 1),
        ("pretrain", 2),
        ("pretrain", 2),
        ("pretrain", 2),
    ]  # top RBM keeps learning


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"finetune": "svm"}, "model.finetune='svm' is not one of classifier, autoencoder, generate"),
        ({"propagate": "max"}, "model.propagate='max' is not one of mean, sample"),
        ({"pretrain_epochs": [1, 2]}, "model.pretrain_epochs=[1, 2] needs one value per RBM (3)"),
        ({"pretrain_lr": [0.1]}, "model.pretrain_lr=[0.1] needs one value per RBM (3)"),
        ({"pretrain_epochs": -1}, "model.pretrain_epochs=[-1, -1, -1] must be >= 0"),
        ({"dropout": 1.0}, "model.dropout=1.0 must be in [0, 1)"),
        ({"layer_sizes": [784]}, "model.layer_sizes=[784] needs >= 2 positive sizes"),
    ],
)
def test_bad_values_are_refused_with_one_line(kwargs, message):
    with pytest.raises(GenexpError) as err:
        DBN(**{"layer_sizes": TINY, **kwargs})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_max_epochs_must_cover_pretraining():
    m = DBN(layer_sizes=TINY, pretrain_epochs=1, finetune="classifier")
    with pytest.raises(GenexpError, match=r"trainer.max_epochs=3 must be >= sum\(model.pretrain_epochs\)=3"):
        _trainer(3).fit(m, datamodule=TinyData())


def test_gaussian_hidden_free_energy_matches_the_integral_over_h():
    """p(v) ∝ exp(-F(v)) for linear-Gaussian hidden units: compare with a quadrature of exp(-E(v, h)) dh."""
    torch.manual_seed(0)
    rbm = GaussianHiddenRBM(n_visible=3, n_hidden=2, ais_chains=0).double()
    with torch.no_grad():
        rbm.W.normal_(0, 0.7), rbm.hbias.normal_(0, 0.5), rbm.vbias.normal_(0, 0.5)
    vs = torch.tensor([[(i >> b) & 1 for b in range(3)] for i in range(8)], dtype=torch.float64)
    log_p = -rbm.free_energy(vs)
    t = torch.linspace(-12, 12, 601, dtype=torch.float64)
    hs = torch.cartesian_prod(t, t)  # [601^2, 2]
    energy = -(vs @ rbm.vbias)[:, None] - (hs @ rbm.hbias)[None] - (vs @ rbm.W @ hs.T) + 0.5 * hs.pow(2).sum(1)[None]
    log_q = torch.logsumexp(-energy, dim=1)  # ∝ log ∫ exp(-E(v, h)) dh
    torch.testing.assert_close(log_p - log_p.logsumexp(0), log_q - log_q.logsumexp(0), atol=1e-6, rtol=0)


# ---- greedy pretraining -----------------------------------------------------------------------------
def test_lower_layers_frozen_while_upper_layer_trains_then_all_weights_fine_tuned():
    torch.manual_seed(0)
    m = DBN(layer_sizes=TINY, pretrain_epochs=1, finetune="classifier", seed=0)
    spy = Spy()
    _trainer(4, [spy]).fit(m, datamodule=TinyData())
    assert m.phase_history == [(0, "pretrain", 0), (1, "pretrain", 1), (2, "pretrain", 2), (3, "finetune", 2)]
    for epoch, layer in ((0, 0), (1, 1), (2, 2)):
        # only RBM `layer` receives gradients ...
        assert spy.grads[epoch] == {f"rbms.{layer}.W", f"rbms.{layer}.hbias", f"rbms.{layer}.vbias"}
        before, after = spy.weights[epoch], spy.weights[epoch + 1]
        for i in range(3):  # ... and only its weights move
            moved = not torch.equal(before[f"rbms.{i}.W"], after[f"rbms.{i}.W"])
            assert moved == (i == layer), (epoch, i)
    # fine-tuning: backprop reaches every RBM's W and hbias (not vbias: no decoder here) and the softmax layer
    assert spy.grads[3] == {f"rbms.{i}.{p}" for i in range(3) for p in ("W", "hbias")} | {
        "logreg.weight",
        "logreg.bias",
    }


def test_propagate_sample_feeds_binary_states_to_the_next_rbm():
    m = DBN(layer_sizes=TINY, propagate="sample")
    h = m.propagate_up(torch.rand(16, 784), 2)
    assert h.shape == (16, 8) and set(h.unique().tolist()) <= {0.0, 1.0}
    mean = DBN(layer_sizes=TINY, propagate="mean").propagate_up(torch.rand(16, 784), 2)
    assert not set(mean.unique().tolist()) <= {0.0, 1.0}


def test_resume_mid_stack_from_a_checkpoint(tmp_path):
    """Stop after RBM 0, resume from last.ckpt: layer 0 is not retrained, layer 1 and fine-tuning follow."""
    torch.manual_seed(0)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    first = DBN(layer_sizes=TINY, pretrain_epochs=[1, 2, 1], finetune="classifier", seed=0)

    class StopAfterEpoch1(pl.Callback):  # the run is stopped in the middle of RBM 1's two epochs
        def on_train_epoch_end(self, trainer, module):
            trainer.should_stop = trainer.current_epoch == 1

    _trainer(5, [ckpt, StopAfterEpoch1()]).fit(first, datamodule=TinyData())
    assert first.phase_history == [(0, "pretrain", 0), (1, "pretrain", 1)]
    saved = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert saved["dbn_phase"] == {"epoch": 1, "phase": "pretrain", "layer": 1, "pretrain_epochs": [1, 2, 1]}

    resumed = DBN(layer_sizes=TINY, pretrain_epochs=[1, 2, 1], finetune="classifier", seed=1)  # other init
    spy = Spy()
    _trainer(5, [spy]).fit(resumed, datamodule=TinyData(), ckpt_path=tmp_path / "last.ckpt")
    assert resumed.phase_history == [(2, "pretrain", 1), (3, "pretrain", 2), (4, "finetune", 2)]
    w0_saved = saved["state_dict"]["rbms.0.W"]
    torch.testing.assert_close(spy.weights[2]["rbms.0.W"], w0_saved)  # restored ...
    torch.testing.assert_close(spy.weights[4]["rbms.0.W"], w0_saved)  # ... and frozen until fine-tuning
    assert not torch.equal(spy.weights[3]["rbms.1.W"], saved["state_dict"]["rbms.1.W"])  # layer 1 went on


# ---- fine-tuning initialisation ---------------------------------------------------------------------
def test_unrolled_decoder_starts_as_the_transposed_encoder(tmp_path):
    torch.manual_seed(0)
    m = DBN(layer_sizes=TINY, pretrain_epochs=1, finetune="autoencoder", linear_code=True, seed=0)
    assert type(m.rbms[-1]) is GaussianHiddenRBM and not any(type(r) is GaussianHiddenRBM for r in m.rbms[:-1])

    class AtUnroll(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.current_epoch == 3 and batch_idx == 0:  # first fine-tuning batch, before its update
                self.decoder = [(lay.weight.detach().clone(), lay.bias.detach().clone()) for lay in module.decoder]
                self.encoder = [(r.W.detach().clone(), r.vbias.detach().clone()) for r in module.rbms]
                x = batch[0][:4]
                module.eval()
                self.recon = torch.sigmoid(module.decode(module.encode(x)))
                h = module.propagate_up(x.reshape(4, -1), 3)  # up pass: code = linear top units
                for rbm in reversed(module.rbms):
                    h = rbm.propdown(h)[1]  # down pass p(v|h) with the RBMs' own weights
                self.down = h
                module.train()

    at = AtUnroll()
    _trainer(4, [at, pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)]).fit(m, datamodule=TinyData())
    for (w_dec, b_dec), (w_enc, vbias) in zip(at.decoder, at.encoder, strict=True):
        torch.testing.assert_close(w_dec, w_enc)  # Linear(h -> v).weight [n_v, n_h] == W: the map h W^T
        torch.testing.assert_close(b_dec, vbias)
    torch.testing.assert_close(at.recon, at.down)  # the unrolled net computes the stack's up-down pass
    assert int(m.unrolled) == 1 and not torch.equal(m.decoder[0].weight, m.rbms[0].W)  # then fine-tuned apart
    reloaded = DBN.load_from_checkpoint(tmp_path / "last.ckpt")
    assert int(reloaded.unrolled) == 1  # a resumed fine-tuning does not unroll again


def test_classifier_starts_from_the_pretrained_weights():
    torch.manual_seed(0)
    m = DBN(layer_sizes=TINY, pretrain_epochs=1, finetune="classifier", seed=0)
    x = torch.rand(5, 1, 28, 28)

    class AtFineTuneStart(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch == 3:
                module.eval()
                self.pretrained = [r.W.detach().clone() for r in module.rbms]
                self.logits = module.classify(x)
                self.features = module.propagate_up(x.reshape(5, -1), 3)  # the pretrained stack's up pass
                module.train()

    at = AtFineTuneStart()
    _trainer(4, [at]).fit(m, datamodule=TinyData())
    finetune_params = {id(p) for g in m.optimizers()[-1].optimizer.param_groups for p in g["params"]}
    assert all(id(r.W) in finetune_params and id(r.hbias) in finetune_params for r in m.rbms)
    # the softmax layer starts at zero on top of exactly the pretrained features ...
    torch.testing.assert_close(at.logits, torch.zeros(5, 10))
    m.eval()
    # ... and one epoch of backprop has moved every pretrained weight matrix
    assert all(not torch.equal(w, r.W) for w, r in zip(at.pretrained, m.rbms, strict=True))
    assert at.features.shape == (5, 6)


def test_sample_in_every_mode_is_images_in_unit_range():
    for mode in ("classifier", "autoencoder", "generate"):
        m = DBN(layer_sizes=TINY, finetune=mode, sample_steps=3)
        g = torch.Generator().manual_seed(0)
        x = m.sample(7, generator=g)
        assert x.shape == (7, 1, 28, 28) and 0 <= x.min() and x.max() <= 1 and torch.isfinite(x).all()
        again = m.sample(7, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(x, again)  # the generator fixes the chain


def test_sample_starts_from_the_top_rbms_pcd_particles(monkeypatch):
    m = DBN(layer_sizes=TINY, persistent=True, finetune="generate", sample_steps=2)
    top = m.rbms[-1]
    top.persistent_chain = torch.rand(3, 6).round()  # 3 fantasy particles, as left by PCD training
    seen = []
    original = top.sample_v_given_h
    monkeypatch.setattr(top, "sample_v_given_h", lambda h, g=None: seen.append(h.clone()) or original(h, g))
    x = m.sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 28, 28)
    torch.testing.assert_close(seen[0], top.persistent_chain[[0, 1, 2, 0, 1]])  # the chains' first state
    assert len(seen) == 1 + 2  # then sample_steps Gibbs steps


def test_pca_baseline_is_exact_at_full_rank_and_decreases_with_components():
    torch.manual_seed(0)
    train, test = torch.rand(300, 20) @ torch.rand(20, 50), torch.rand(40, 20) @ torch.rand(20, 50)
    errors = [pca_recon_sq_error(train, test, c) for c in (2, 5, 10)]
    assert errors[0] > errors[1] > errors[2] > 0
    assert pca_recon_sq_error(train, train, 50) < 1e-8


# ---- the command line, one smoke run per fine-tuning mode (real MNIST) --------------------------------
SMOKE = [
    "model=dbn",
    "trainer=smoke",
    "logger=none",
    "model.layer_sizes=[784,32,16]",
    "model.pretrain_epochs=1",
    "trainer.max_epochs=3",
    "callbacks.sample_quality=null",
    "model.sample_steps=5",
]


@pytest.mark.parametrize(
    ("mode", "keys"),
    [
        ("classifier", ["test/error", "test/acc", "val/error"]),
        ("autoencoder", ["test/recon_sq_error", "test/pca_recon_sq_error"]),
        ("generate", ["test/recon_xent_layer1"]),
    ],
)
def test_cli_smoke_per_finetune_mode(genexp_cli, mnist_root, tmp_path, mode, keys):
    extra = ["model.finetune_autocast=true"] if mode == "autoencoder" else []  # the preset's bf16 path too
    proc = genexp_cli(
        *SMOKE, f"model.finetune={mode}", *extra, f"hydra.run.dir={tmp_path}", env={"OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "finished" and all(math.isfinite(metrics[k]) for k in keys)
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == [f"epoch_00{i}.png" for i in (1, 2, 3)]
    if mode == "autoencoder":
        assert (tmp_path / "reconstructions.png").is_file()
        assert 0 < metrics["test/pca_recon_sq_error"] < 60  # PCA-16 on real digits: far below a blank image


def test_cli_refuses_too_few_epochs_in_one_line(genexp_cli, mnist_root, tmp_path):
    proc = genexp_cli(*SMOKE, "trainer.max_epochs=2", f"hydra.run.dir={tmp_path}", env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    assert (
        "genexp: error: trainer.max_epochs=2 must be >= sum(model.pretrain_epochs)=2 + at least 1 epoch" in proc.stderr
    )
