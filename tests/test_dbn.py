"""DBN variants (`DBN`, `DBNClassifier`, `DeepAutoencoder`, one `_target_` each): phase schedule, layer
freezing, resume mid-stack, fine-tune initialisation, sampling, the PCA baseline, one CLI run per variant."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from genexp import GenexpError
from genexp.callbacks import PCABaseline
from genexp.metrics.pca import pca_recon_sq_error
from genexp.models.dbn import DBN
from genexp.models.dbn_classifier import DBNClassifier
from genexp.models.deep_autoencoder import DeepAutoencoder
from genexp.nn.rbm import GaussianHiddenRBM, RBMCore
from genexp.sample import export_samples, load_model
from tests.conftest import build_model

TINY = "model.layer_sizes=[784,12,8,6]"  # 3 RBMs
RBM_PARAMS = ("W", "hbias", "vbias")


def tiny(name: str, *overrides: str):
    """A 3-RBM model of variant `name` from its yaml (a list-valued pretrain_lr shrunk to one value)."""
    return build_model(name, TINY, "model.pretrain_lr=0.1", *overrides)


def construction_error(name: str, *overrides: str) -> GenexpError:
    """The GenexpError the constructor raised (Hydra wraps it: InstantiationException, cause = ours)."""
    with pytest.raises(Exception) as info:
        build_model(name, *overrides)
    err = info.value if isinstance(info.value, GenexpError) else info.value.__cause__
    assert isinstance(err, GenexpError), repr(info.value)
    return err


def _trainer(max_epochs: int, callbacks=(), **kw) -> pl.Trainer:
    """CPU, no logger; 3 training batches and 1 validation batch of the fake digits an epoch."""
    return pl.Trainer(
        max_epochs=max_epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks),
        callbacks=list(callbacks),
        accelerator="cpu",
        num_sanity_val_steps=0,
        limit_train_batches=3,
        limit_val_batches=1,
        **kw,
    )


class Spy(pl.Callback):
    """Per epoch: the phase and sampling depth the model reports, the weights at its start, and which
    parameters got a nonzero gradient in its batches (gradients are cleared before every batch, so a
    gradient left over from an earlier layer's epoch does not count)."""

    def __init__(self):
        self.grads, self.weights, self.phases, self.depths = {}, {}, {}, {}

    def on_train_epoch_start(self, trainer, module):
        epoch = trainer.current_epoch
        self.weights[epoch] = {n: p.detach().clone() for n, p in module.named_parameters()}
        self.phases[epoch], self.depths[epoch] = module.phase(epoch), module.sampling_depth()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        for p in module.parameters():
            p.grad = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.grads.setdefault(trainer.current_epoch, set()).update(
            n for n, p in module.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
        )


def rbm_names(layer: int, params=RBM_PARAMS) -> set[str]:
    return {f"rbms.{layer}.{p}" for p in params}


# ---- configuration ----------------------------------------------------------------------------------
def test_each_config_builds_its_variant_with_keyword_only_constructors():
    expected = {"dbn": DBN, "dbn_classifier": DBNClassifier, "dbn_autoencoder": DeepAutoencoder}
    for name, cls in expected.items():
        m = tiny(name)
        assert type(m) is cls and all(type(r) in (RBMCore, GaussianHiddenRBM) for r in m.rbms)
        assert [(r.n_visible, r.n_hidden) for r in m.rbms] == [(784, 12), (12, 8), (8, 6)]
        with pytest.raises(TypeError):  # no defaults in the code: the yaml is the one place they live
            cls()
    assert DBN.finetunes is False and DBNClassifier.finetunes is True and DeepAutoencoder.finetunes is True


def test_phase_schedule_follows_pretrain_epochs():
    for name in ("dbn_classifier", "dbn_autoencoder"):
        m = tiny(name, "model.pretrain_epochs=[2,0,1]")
        assert [m.phase(e) for e in range(5)] == [
            ("pretrain", 0),
            ("pretrain", 0),
            ("pretrain", 2),  # a layer with 0 epochs is skipped
            ("finetune", 2),
            ("finetune", 2),
        ], name
    g = tiny("dbn", "model.pretrain_epochs=1")
    assert [g.phase(e) for e in range(5)] == [
        ("pretrain", 0),
        ("pretrain", 1),
        ("pretrain", 2),
        ("pretrain", 2),  # the generative DBN has no fine-tuning: the top RBM keeps learning
        ("pretrain", 2),
    ]


@pytest.mark.parametrize(
    ("name", "override", "message"),
    [
        ("dbn", "model.propagate=max", "model.propagate='max': must be one of mean, sample"),
        ("dbn", "model.sample_down=argmax", "model.sample_down='argmax': must be one of mean, sample"),
        ("dbn", "model.pretrain_epochs=[1,2]", "model.pretrain_epochs=[1, 2]: must be an integer >= 0, or a list of 3"),
        ("dbn", "model.pretrain_lr=[0.1]", "model.pretrain_lr=[0.1]: must be a number > 0, or a list of 3 such"),
        ("dbn", "model.pretrain_epochs=-1", "model.pretrain_epochs=-1: must be an integer >= 0, or a list of 3"),
        ("dbn", "model.pretrain_epochs=[1,1,0]", "model.pretrain_epochs=[1, 1, 0]: the top RBM needs >= 1 epoch"),
        ("dbn", "model.k=0", "model.k=0: must be an integer >= 1"),
        ("dbn", "model.sample_steps=0", "model.sample_steps=0: must be an integer >= 1"),
        ("dbn", "model.layer_sizes=[784]", "model.layer_sizes=[784]: must be a list of >= 2 values"),
        ("dbn_classifier", "model.dropout=1.0", "model.dropout=1.0: must be a number in [0, 1)"),
        ("dbn_classifier", "model.max_shift=-1", "model.max_shift=-1: must be an integer in [0, 27]"),
        ("dbn_autoencoder", "model.dropout_input=-0.1", "model.dropout_input=-0.1: must be a number in [0, 1)"),
        ("dbn_autoencoder", "model.finetune_lr=0", "model.finetune_lr=0: must be a number > 0"),
    ],
)
def test_bad_values_are_refused_with_one_line(name, override, message):
    overrides = [TINY, "model.pretrain_lr=0.1"] if "layer_sizes" not in override else ["model.pretrain_lr=0.1"]
    err = construction_error(name, *overrides, override)
    assert str(err).startswith(message) and "\n" not in str(err)


def test_fine_tuned_variants_may_skip_pretraining_the_top_rbm():
    assert tiny("dbn_classifier", "model.pretrain_epochs=[1,1,0]").n_pretrain_epochs == 2


@pytest.mark.parametrize(
    ("name", "max_epochs", "message"),
    [
        ("dbn_classifier", 3, r"trainer.max_epochs=3 must be >= sum\(model.pretrain_epochs\)=3 \+ at least 1 fine"),
        ("dbn_autoencoder", 3, r"trainer.max_epochs=3 must be >= sum\(model.pretrain_epochs\)=3 \+ at least 1 fine"),
        ("dbn", 2, r"trainer.max_epochs=2 must be >= sum\(model.pretrain_epochs\)=3$"),
    ],
)
def test_max_epochs_must_cover_pretraining(fake_dm, name, max_epochs, message):
    m = tiny(name, "model.pretrain_epochs=1")
    spy = Spy()
    with pytest.raises(GenexpError, match=message):
        _trainer(max_epochs, [spy]).fit(m, datamodule=fake_dm)
    assert not spy.grads  # refused before the first batch


def test_gaussian_hidden_free_energy_matches_the_integral_over_h():
    """p(v) ∝ exp(-F(v)) for linear-Gaussian hidden units: compare with a quadrature of exp(-E(v, h)) dh."""
    torch.manual_seed(0)
    rbm = GaussianHiddenRBM(n_visible=3, n_hidden=2).double()
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
def test_lower_layers_frozen_while_upper_layer_trains_then_all_weights_fine_tuned(fake_dm):
    torch.manual_seed(0)
    m = tiny("dbn_classifier", "model.pretrain_epochs=1", "model.seed=0")
    spy = Spy()
    _trainer(4, [spy]).fit(m, datamodule=fake_dm)
    assert spy.phases == {0: ("pretrain", 0), 1: ("pretrain", 1), 2: ("pretrain", 2), 3: ("finetune", 2)}
    assert spy.depths == {0: 1, 1: 2, 2: 3, 3: 3}  # sample() uses the stack up to the layer in training
    for epoch, layer in ((0, 0), (1, 1), (2, 2)):
        assert spy.grads[epoch] == rbm_names(layer)  # only RBM `layer` receives gradients ...
        before, after = spy.weights[epoch], spy.weights[epoch + 1]
        for i in range(3):  # ... and only its weights move
            moved = not torch.equal(before[f"rbms.{i}.W"], after[f"rbms.{i}.W"])
            assert moved == (i == layer), (epoch, i)
    # fine-tuning: backprop reaches every RBM's W and hbias (not vbias: no decoder here) and the softmax layer
    assert spy.grads[3] == {n for i in range(3) for n in rbm_names(i, ("W", "hbias"))} | {
        "logreg.weight",
        "logreg.bias",
    }
    final = dict(m.named_parameters())
    assert all(torch.equal(spy.weights[3][f"rbms.{i}.vbias"], final[f"rbms.{i}.vbias"]) for i in range(3))


def test_generative_dbn_keeps_training_the_top_rbm_after_pretraining(fake_dm):
    torch.manual_seed(0)
    m = tiny("dbn", "model.pretrain_epochs=1", "model.seed=0")
    spy = Spy()
    trainer = _trainer(4, [spy])
    trainer.fit(m, datamodule=fake_dm)
    assert spy.phases[3] == ("pretrain", 2) and spy.grads[3] == rbm_names(2)
    assert not torch.equal(spy.weights[3]["rbms.2.W"], m.rbms[2].W)  # the prior went on learning ...
    for i in (0, 1):  # ... on top of frozen lower layers
        torch.testing.assert_close(spy.weights[3][f"rbms.{i}.W"], m.rbms[i].W, rtol=0, atol=0)
    # its validation metric (the top RBM's reconstruction) exists once the top RBM trains
    assert math.isfinite(float(trainer.callback_metrics["val/recon_xent"])) and m.val_metric == "val/recon_xent"
    assert m.rbms[2].persistent_chain.shape == (16, 6)  # PCD particles, one per batch row (data.batch_size)


def test_propagate_sample_feeds_binary_states_to_the_next_rbm():
    m = tiny("dbn", "model.propagate=sample")
    h = m.propagate_up(torch.rand(16, 784), 2)
    assert h.shape == (16, 8) and set(h.unique().tolist()) <= {0.0, 1.0}
    mean = tiny("dbn", "model.propagate=mean").propagate_up(torch.rand(16, 784), 2)
    assert mean.shape == (16, 8) and not set(mean.unique().tolist()) <= {0.0, 1.0}


def test_resume_mid_stack_from_a_checkpoint(fake_dm, tmp_path):
    """Stop in RBM 1's epochs, resume from last.ckpt: layer 0 is not retrained, layer 1 and fine-tuning follow."""
    torch.manual_seed(0)
    stack = ("model.pretrain_epochs=[1,2,1]",)
    first = tiny("dbn_classifier", *stack, "model.seed=0")

    class StopAfterEpoch1(pl.Callback):  # the run is stopped in the middle of RBM 1's two epochs
        def on_train_epoch_end(self, trainer, module):
            trainer.should_stop = trainer.current_epoch == 1

    spy_first = Spy()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    _trainer(5, [ckpt, StopAfterEpoch1(), spy_first]).fit(first, datamodule=fake_dm)
    assert spy_first.phases == {0: ("pretrain", 0), 1: ("pretrain", 1)}
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["dbn_phase"] == {"epoch": 1, "phase": "pretrain", "layer": 1}
    assert saved["genexp_class"] == "genexp.models.dbn_classifier.DBNClassifier"

    resumed = tiny("dbn_classifier", *stack, "model.seed=1")  # another initialisation, overwritten by the checkpoint
    assert not torch.equal(resumed.rbms[0].W, saved["state_dict"]["rbms.0.W"])
    spy = Spy()
    _trainer(5, [spy]).fit(resumed, datamodule=fake_dm, ckpt_path=tmp_path / "last.ckpt")
    assert spy.phases == {2: ("pretrain", 1), 3: ("pretrain", 2), 4: ("finetune", 2)}
    assert spy.grads[2] == rbm_names(1) and spy.grads[3] == rbm_names(2)
    w0_saved = saved["state_dict"]["rbms.0.W"]
    torch.testing.assert_close(spy.weights[2]["rbms.0.W"], w0_saved, rtol=0, atol=0)  # restored ...
    torch.testing.assert_close(spy.weights[4]["rbms.0.W"], w0_saved, rtol=0, atol=0)  # ... frozen until fine-tuning
    assert not torch.equal(spy.weights[3]["rbms.1.W"], saved["state_dict"]["rbms.1.W"])  # layer 1 went on


# ---- fine-tuning initialisation ---------------------------------------------------------------------
def test_unrolled_decoder_starts_as_the_transposed_encoder(fake_dm, tmp_path):
    torch.manual_seed(0)
    m = tiny("dbn_autoencoder", "model.pretrain_epochs=1", "model.seed=0")
    assert type(m.rbms[-1]) is GaussianHiddenRBM and not any(type(r) is GaussianHiddenRBM for r in m.rbms[:-1])
    assert m.code_size == 6 and int(m.unrolled) == 0

    class AtUnroll(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.current_epoch == 3 and batch_idx == 0:  # first fine-tuning batch, before its update
                self.decoder = [(lay.weight.detach().clone(), lay.bias.detach().clone()) for lay in module.decoder]
                self.encoder = [(r.W.detach().clone(), r.vbias.detach().clone()) for r in module.rbms]
                x = batch[0][:4]
                module.eval()
                self.recon = torch.sigmoid(module.decode(module.encode(x, dropout_top=False)))
                self.reconstruct = module.reconstruct(x)
                h = module.propagate_up(x.reshape(4, -1), 3)  # up pass: code = linear top units
                self.code_is_linear = bool((h < 0).any() or (h > 1).any())
                for rbm in reversed(module.rbms):
                    h = rbm.propdown(h)[1]  # down pass p(v|h) with the RBMs' own weights
                self.down = h
                module.train()

    at, spy = AtUnroll(), Spy()
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    _trainer(4, [at, spy, ckpt]).fit(m, datamodule=fake_dm)
    assert spy.phases[3] == ("finetune", 2)
    for (w_dec, b_dec), (w_enc, vbias) in zip(at.decoder, at.encoder, strict=True):
        torch.testing.assert_close(w_dec, w_enc)  # Linear(h -> v).weight [n_v, n_h] == W: the map h W^T
        torch.testing.assert_close(b_dec, vbias)
    torch.testing.assert_close(at.recon, at.down)  # the unrolled net computes the stack's up-down pass
    torch.testing.assert_close(at.reconstruct, at.down.reshape(4, 1, 28, 28))  # reconstruct() is that pass
    assert at.code_is_linear  # the Gaussian code layer is not squashed into [0, 1]
    # fine-tuning: the encoder's W and hbias and the whole decoder learn; the RBMs' vbias live on in the decoder
    assert spy.grads[3] == {n for i in range(3) for n in rbm_names(i, ("W", "hbias"))} | {
        f"decoder.{j}.{p}" for j in range(3) for p in ("weight", "bias")
    }
    assert int(m.unrolled) == 1 and not torch.equal(m.decoder[0].weight, m.rbms[0].W)  # then fine-tuned apart
    reloaded = load_model(tmp_path / "last.ckpt")  # the class comes from the checkpoint's genexp_class
    assert type(reloaded) is DeepAutoencoder and int(reloaded.unrolled) == 1  # a resumed run does not unroll again
    torch.testing.assert_close(reloaded.decoder[0].weight, m.decoder[0].weight, rtol=0, atol=0)


def test_classifier_starts_from_the_pretrained_weights(fake_dm):
    torch.manual_seed(0)
    m = tiny("dbn_classifier", "model.pretrain_epochs=1", "model.seed=0")
    x = torch.rand(5, 1, 28, 28)

    class AtFineTuneStart(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch == 3:
                module.eval()
                self.pretrained = [r.W.detach().clone() for r in module.rbms]
                self.logits = module.classify(x)
                self.encoded = module.encode(x, dropout_top=True)
                self.features = module.propagate_up(x.reshape(5, -1), 3)  # the pretrained stack's up pass
                module.train()

    at = AtFineTuneStart()
    _trainer(4, [at]).fit(m, datamodule=fake_dm)
    finetune_params = {id(p) for g in m.optimizers()[-1].optimizer.param_groups for p in g["params"]}
    assert all(id(r.W) in finetune_params and id(r.hbias) in finetune_params for r in m.rbms)
    assert not any(id(r.vbias) in finetune_params for r in m.rbms)
    # the softmax layer starts at zero on top of exactly the pretrained features ...
    torch.testing.assert_close(at.logits, torch.zeros(5, 10))
    assert at.features.shape == (5, 6)
    torch.testing.assert_close(at.encoded, at.features)
    # ... and one epoch of backprop has moved every pretrained weight matrix
    assert all(not torch.equal(w, r.W) for w, r in zip(at.pretrained, m.rbms, strict=True))


def test_fine_tuning_lr_decays_by_cosine_to_zero(fake_dm):
    m = tiny("dbn_classifier", "model.pretrain_epochs=1", "model.finetune_lr=0.01")
    seen = []

    class LR(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if module.phase(trainer.current_epoch)[0] == "finetune":
                seen.append(module.optimizers()[-1].param_groups[0]["lr"])

    _trainer(5, [LR()]).fit(m, datamodule=fake_dm)  # 2 fine-tuning epochs of 3 batches
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * t / 6)) for t in range(6)]
    assert seen == pytest.approx(expected) and seen[0] == pytest.approx(0.01)


# ---- generation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dbn", "dbn_classifier", "dbn_autoencoder"])
def test_sample_of_every_variant_is_images_in_unit_range(name):
    m = tiny(name, "model.sample_steps=3")
    x = m.sample(7, generator=torch.Generator().manual_seed(0))
    assert x.shape == (7, 1, 28, 28) and 0 <= x.min() and x.max() <= 1 and torch.isfinite(x).all()
    again = m.sample(7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, again, rtol=0, atol=0)  # the generator fixes the chain
    other = m.sample(7, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(x, other)


def test_sample_starts_from_the_top_rbms_pcd_particles(monkeypatch):
    m = tiny("dbn", "model.persistent=true", "model.sample_steps=2")
    top = m.rbms[-1]
    top.persistent_chain = torch.rand(3, 6).round()  # 3 fantasy particles, as left by PCD training
    seen = []
    original = top.sample_v_given_h
    monkeypatch.setattr(top, "sample_v_given_h", lambda h, g=None: seen.append(h.clone()) or original(h, g))
    x = m.sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 1, 28, 28)
    torch.testing.assert_close(seen[0], top.persistent_chain[[0, 1, 2, 0, 1]])  # the chains' first state
    assert len(seen) == 1 + 2  # then sample_steps Gibbs steps


def test_export_of_an_unconditional_dbn_has_no_labels(fake_dm, tmp_path):
    m = tiny("dbn", "model.pretrain_epochs=1", "model.sample_steps=2")
    trainer = _trainer(3)
    trainer.fit(m, datamodule=fake_dm)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = load_model(tmp_path / "m.ckpt")
    assert type(loaded) is DBN and not loaded.training
    torch.testing.assert_close(loaded.rbms[2].persistent_chain, m.rbms[2].persistent_chain, rtol=0, atol=0)
    out = export_samples(loaded, 12, tmp_path / "s.npz", seed=3, batch_size=5)
    data = np.load(out)
    assert data["images"].shape == (12, 1, 28, 28) and data["images"].dtype == np.float32
    assert 0 <= data["images"].min() and data["images"].max() <= 1
    assert data["labels"].tolist() == [-1] * 12


# ---- the PCA baseline -------------------------------------------------------------------------------
def test_pca_baseline_is_exact_at_full_rank_and_decreases_with_components():
    torch.manual_seed(0)
    train, test = torch.rand(300, 20) @ torch.rand(20, 50), torch.rand(40, 20) @ torch.rand(20, 50)
    errors = [pca_recon_sq_error(train, test, c) for c in (2, 5, 10)]
    assert errors[0] > errors[1] > errors[2] > 0
    assert pca_recon_sq_error(train, train, 50) < 1e-8
    basis = torch.rand(20, 50)  # held-out points in the span of the training data: rank 20 is exact for them
    inside = torch.rand(40, 20) @ basis
    assert pca_recon_sq_error(torch.rand(300, 20) @ basis, inside, 20) < 1e-8
    assert pca_recon_sq_error(torch.rand(300, 20) @ basis, inside, 19) > 1e-3


def test_pca_baseline_callback_uses_the_models_code_size(fake_dm):
    m = tiny("dbn_autoencoder")
    trainer = _trainer(1, [PCABaseline()], limit_test_batches=1)
    trainer.test(m, datamodule=fake_dm, verbose=False)
    expected = pca_recon_sq_error(fake_dm.split_tensors("train")[0], fake_dm.split_tensors("test")[0], 6)
    assert float(trainer.callback_metrics["test/pca_recon_sq_error"]) == pytest.approx(expected, rel=1e-6)
    assert 0 < expected < pca_recon_sq_error(fake_dm.split_tensors("train")[0], fake_dm.split_tensors("test")[0], 1)


# ---- the command line, one smoke run per variant (fake digits) ----------------------------------------
SMOKE = ["data=fake", "trainer=smoke", "logger=csv", "model.sample_steps=5"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "extra", "keys"),
    [
        ("dbn_classifier", [], ["test/error", "test/loss", "val/error"]),
        # the bf16 autocast path of fine-tuning too
        ("dbn_autoencoder", ["model.finetune_autocast=true"], ["test/recon_sq_error", "test/pca_recon_sq_error"]),
        ("dbn", [], ["test/recon_xent", "val/recon_xent"]),
    ],
)
def test_cli_smoke_per_variant(genexp_cli, fake_dm, tmp_path, name, extra, keys):
    proc = genexp_cli(f"model={name}", *SMOKE, *extra, "eval_size.every_n_epochs=4", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["epochs"] == 8
    assert metrics["model"].rsplit(".", 1)[1] == {"dbn": "DBN", "dbn_classifier": "DBNClassifier"}.get(
        name, "DeepAutoencoder"
    )
    assert all(math.isfinite(metrics[k]) for k in keys + ["test/fid_mnist_cnn"]), metrics
    assert math.isfinite(metrics["val_metric"]["value"])
    samples = tmp_path / "samples"
    assert sorted(p.name for p in samples.glob("epoch_*.png")) == ["epoch_004.png", "epoch_008.png"]
    assert sorted(p.name for p in samples.glob("filters_*.png")) == ["filters_epoch_004.png", "filters_epoch_008.png"]
    assert {p.name for p in (tmp_path / "checkpoints").glob("*.ckpt")} == {"last.ckpt", "best.ckpt"}
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["dbn_phase"]["epoch"] == 7
    if name == "dbn_autoencoder":
        assert (samples / "reconstructions.png").is_file()
        # PCA with as many components as the code (30), on the very images of data=fake
        train, test = fake_dm.split_tensors("train")[0], fake_dm.split_tensors("test")[0]
        expected = pca_recon_sq_error(train, test, 30)
        assert metrics["test/pca_recon_sq_error"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_cli_refuses_too_few_epochs_in_one_line(genexp_cli, tmp_path):
    # dbn_classifier: 3 RBMs x 2 pretraining epochs leave no fine-tuning epoch in 6
    proc = genexp_cli("model=dbn_classifier", *SMOKE, "trainer.max_epochs=6", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "genexp: error: trainer.max_epochs=6 must be >= sum(model.pretrain_epochs)=6 + at least 1 fine-tuning epoch"
    )
