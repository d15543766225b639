"""The conditional DCGAN: sample contract per label, the d_steps schedule, detached fakes, checkpoint
round-trip of gen_step + EMA, its validation metric from SampleQuality, the .npz export, and a 2-process
CPU DDP run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from genexp import GenexpError
from genexp.callbacks import Checkpoint, SampleQuality
from genexp.metrics.sample_quality import nearest_neighbour_check
from genexp.models.cdcgan import CDCGAN
from genexp.nn.gan import conv_cond_concat
from genexp.sample import export_samples, load_model
from genexp.sample import main as sample_main
from tests.conftest import build_model

TINY = ["model.nz=8", "model.ngf=4", "model.ndf=4", "model.ngfc=16", "model.ndfc=16"]


def tiny(*overrides: str) -> CDCGAN:
    return build_model("cdcgan", *TINY, *overrides)


def construction_error(*overrides: str) -> GenexpError:
    """The GenexpError the constructor raised (Hydra wraps it: InstantiationException, cause = ours)."""
    with pytest.raises(Exception) as info:
        tiny(*overrides)
    err = info.value if isinstance(info.value, GenexpError) else info.value.__cause__
    assert isinstance(err, GenexpError), repr(info.value)
    return err


def _fit(model: CDCGAN, dm, n_batches: int = 4, max_epochs: int = 1, callbacks=(), **trainer_kw) -> pl.Trainer:
    """`n_batches` batches (16 fake digits each) per epoch on the CPU, no logger."""
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        limit_train_batches=n_batches,
        logger=False,
        enable_checkpointing=any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks),
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kw,
    )
    trainer.fit(model, datamodule=dm)
    return trainer


def test_conv_cond_concat_appends_constant_label_planes():
    x, y = torch.randn(2, 3, 5, 5), torch.eye(10)[[4, 7]]
    out = conv_cond_concat(x, y)
    assert out.shape == (2, 13, 5, 5)
    assert torch.equal(out[:, :3], x)
    assert torch.equal(out[:, 3:], y[:, :, None, None].expand(2, 10, 5, 5))


@pytest.mark.parametrize("noise", ["uniform", "normal"])
def test_samples_have_shape_and_range_for_every_label(noise):
    model = tiny(f"model.noise={noise}").eval()
    for digit in range(10):
        x = model.sample(3, labels=torch.full((3,), digit))
        assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
        assert 0.0 <= x.min() and x.max() <= 1.0
    assert model.sample(5).shape == (5, 1, 28, 28)  # labels default to 0..9 in turn
    z = model.sample_noise(1000)
    assert z.shape == (1000, 8)
    assert (z.min() >= 0 and z.max() <= 1) if noise == "uniform" else z.min() < -1  # U[0, 1] vs N(0, 1)
    # the label conditions the image: same noise, different digit -> different image
    a = model.sample(2, torch.tensor([0, 0]), torch.Generator().manual_seed(3))
    b = model.sample(2, torch.tensor([1, 1]), torch.Generator().manual_seed(3))
    c = model.sample(2, torch.tensor([1, 1]), torch.Generator().manual_seed(3))
    assert not torch.allclose(a, b) and torch.equal(b, c)
    one_hot = model.sample(2, torch.eye(10)[[1, 1]], torch.Generator().manual_seed(3))
    assert torch.equal(one_hot, b)  # one-hot labels are the same condition


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.noise=gaussian", "model.noise='gaussian': must be one of uniform, normal"),
        ("model.d_steps=0", "model.d_steps=0: must be an integer >= 1"),
        ("model.g_loss=wasserstein", "model.g_loss='wasserstein': must be one of non_saturating, minimax"),
        ("model.ema_decay=1.0", "model.ema_decay=1.0: must be a number in (0, 1), or null"),
        ("model.ngf=2.5", "model.ngf=2.5: must be an integer >= 1"),
        ("model.lr=-1.0", "model.lr=-1.0: must be a number > 0"),
    ],
)
def test_bad_config_values_are_refused_in_one_line(override, message):
    err = construction_error(override)
    assert str(err).startswith(message) and "\n" not in str(err)


def test_constructor_takes_its_values_from_the_config_only():
    with pytest.raises(TypeError):  # keyword-only, no defaults: conf/model/cdcgan.yaml is the one place
        CDCGAN()
    with pytest.raises(Exception, match="nn_samples"):  # moved to SampleQuality(nn_samples=...)
        tiny("+model.nn_samples=50")
    assert CDCGAN.val_metric == "val/fid" and CDCGAN.val_mode == "min"


@pytest.mark.slow
def test_cli_refuses_a_bad_model_value_in_one_line(genexp_cli, tmp_path):
    out = genexp_cli("model=cdcgan", "model.noise=gaussian", "data=fake", "trainer=smoke", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 2, out.stderr[-2000:]
    assert (
        out.stderr.strip().splitlines()[-1] == "genexp: error: model.noise='gaussian': must be one of uniform, normal"
    )


@pytest.mark.parametrize("d_steps", [1, 3])
def test_discriminator_steps_per_generator_step_is_exactly_d_steps(fake_dm, d_steps):
    model = tiny(f"model.d_steps={d_steps}")
    trainer = _fit(model, fake_dm, n_batches=4)
    opt_d, opt_g = (o.optimizer if hasattr(o, "optimizer") else o for o in trainer.optimizers)
    assert {id(p) for g in opt_d.param_groups for p in g["params"]} == {id(p) for p in model.discriminator.parameters()}
    assert {id(p) for g in opt_g.param_groups for p in g["params"]} == {id(p) for p in model.generator.parameters()}
    d_updates = {int(s["step"]) for s in opt_d.state.values()}  # Adam counts its own steps per parameter
    g_updates = {int(s["step"]) for s in opt_g.state.values()}
    assert d_updates == {4 * d_steps} and g_updates == {4}
    assert len(opt_d.state) == len(list(model.discriminator.parameters()))  # every D parameter stepped
    assert len(opt_g.state) == len(list(model.generator.parameters()))
    assert int(model.gen_step) == 4
    assert trainer.global_step == 4 * (d_steps + 1)  # Lightning counts every optimizer step


def test_fakes_for_the_discriminator_carry_no_gradient_to_the_generator(fake_dm):
    model = tiny("model.d_steps=2")
    phase, steps, g_grads, d_grads = ["none"], [], [], []
    for p in model.generator.parameters():
        p.register_hook(lambda grad: g_grads.append(phase[0]))
    for p in model.discriminator.parameters():
        p.register_hook(lambda grad: d_grads.append(phase[0]))
    step_optimizer = model.step_optimizer

    def spy(opt, loss):
        phase[0] = "d" if opt.optimizer is model.trainer.optimizers[0] else "g"  # D's optimizer comes first
        steps.append(phase[0])
        step_optimizer(opt, loss)

    model.step_optimizer = spy
    _fit(model, fake_dm, n_batches=2)
    assert steps == ["d", "d", "g"] * 2  # numbered phases: d_steps D updates, then one G update
    assert g_grads and set(g_grads) == {"g"}  # G got gradients, and only in its own phase
    assert d_grads and set(d_grads) == {"d"}  # D is frozen while G learns


def test_gen_step_and_ema_round_trip_through_a_checkpoint(fake_dm, tmp_path):
    model = tiny("model.ema_decay=0.9")
    trainer = _fit(model, fake_dm, n_batches=3)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    assert torch.load(path, weights_only=True)["genexp_class"] == "genexp.models.cdcgan.CDCGAN"
    for loaded in (CDCGAN.load_from_checkpoint(path), load_model(path)):
        assert int(loaded.gen_step) == 3 and loaded.generator_ema is not None
        for (name, a), b in zip(
            model.generator_ema.state_dict().items(), loaded.generator_ema.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b), name
        model.eval(), loaded.eval()
        same = [m.sample(6, torch.arange(6), torch.Generator().manual_seed(0)) for m in (model, loaded)]
        assert torch.equal(*same)  # sampling uses the EMA generator, restored exactly
    live, ema = model.generator.fc1.weight, model.generator_ema.fc1.weight
    assert not torch.allclose(live, ema)  # the EMA really averages: it is not the live G
    live_sample = model.generator(
        model.sample_noise(6, torch.Generator().manual_seed(0)), model.one_hot(torch.arange(6))
    )
    assert not torch.allclose(live_sample, same[0])


def test_val_fid_is_logged_each_epoch_and_ranks_the_best_checkpoint(fake_dm, tmp_path):
    """SampleQuality produces the model's val_metric at every training epoch end; the Checkpoint callback
    reads it from the model; at test end the nearest-neighbour check runs on `nn_samples` samples."""
    seen = []

    class Record(pl.Callback):  # after SampleQuality (callbacks run in order)
        def on_train_epoch_end(self, trainer, module):
            seen.append(float(trainer.callback_metrics[CDCGAN.val_metric]))

    model = tiny()
    quality = SampleQuality(n_samples=40, val_samples=40, nn_samples=30, batch_size=20)
    ckpt = Checkpoint(dirpath=tmp_path, save_last=True, save_top_k=1, filename="best")
    trainer = _fit(model, fake_dm, n_batches=2, max_epochs=2, callbacks=[quality, Record(), ckpt])
    assert len(seen) == 2 and all(math.isfinite(v) and v >= 0 for v in seen)
    assert ckpt.monitor == "val/fid" and ckpt.mode == "min"
    assert {p.name for p in tmp_path.glob("*.ckpt")} == {"best.ckpt", "last.ckpt"}
    assert float(ckpt.best_model_score) == pytest.approx(min(seen))
    trainer.test(model, datamodule=fake_dm, verbose=False)
    test = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    assert 0 <= test["test/cond_acc"] <= 1 and math.isfinite(test["test/fid_mnist_cnn"])
    assert test["test/nn_ratio"] > 0 and 0 <= test["test/copy_frac"] <= 1
    assert {"test/d_loss", "test/g_loss", "test/d_real", "test/d_fake"} <= test.keys()


def test_sample_export_writes_images_and_labels(fake_dm, tmp_path, capsys):
    model = tiny()
    trainer = _fit(model, fake_dm, n_batches=1)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "s.npz"
    # what `python -m genexp.sample` runs
    sample_main([str(ckpt), "--n", "25", "--out", str(out), "--seed", "1", "--batch-size", "10"])
    data = np.load(out)
    assert data["images"].shape == (25, 1, 28, 28) and data["images"].dtype == np.float32
    assert 0 <= data["images"].min() and data["images"].max() <= 1
    assert data["labels"].tolist() == [i % 10 for i in range(25)]
    assert not list(tmp_path.glob(".*.tmp"))
    # the function behind it: same seed, same samples, whatever the batch size; digit= fixes the label
    again = np.load(export_samples(load_model(ckpt), 25, tmp_path / "t.npz", seed=1, batch_size=25))
    np.testing.assert_array_equal(again["images"], data["images"])
    threes = np.load(export_samples(load_model(ckpt), 4, tmp_path / "d.npz", digit=3))
    assert threes["labels"].tolist() == [3] * 4
    with pytest.raises(SystemExit) as done:
        sample_main([str(ckpt), "--n", "5", "--out", str(out), "colour=red"])
    assert done.value.code == 2 and "unknown argument 'colour=red'" in capsys.readouterr().err


def test_nearest_neighbour_check_tells_copies_from_new_digits():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(300, 1, 28, 28, generator=g)
    held_out = torch.rand(100, 1, 28, 28, generator=g)
    copies = nearest_neighbour_check(train[:50], train, held_out)
    fresh = nearest_neighbour_check(torch.rand(50, 1, 28, 28, generator=g), train, held_out)
    assert copies["copy_frac"] == 1.0 and copies["nn_ratio"] < 0.01
    assert fresh["copy_frac"] < 0.2 and 0.8 < fresh["nn_ratio"] < 1.25


class NoiseProbe(pl.Callback):
    """Saves the first noise batch each rank draws (run through Hydra in the DDP test below)."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def on_train_start(self, trainer, pl_module):
        draw, saved = pl_module.sample_noise, []

        def recording(n, generator=None):
            z = draw(n, generator)
            if not saved:
                saved.append(z)
                torch.save(z.cpu(), Path(self.out_dir) / f"z_rank{trainer.global_rank}.pt")
            return z

        pl_module.sample_noise = recording


@pytest.mark.slow
def test_ddp_two_cpu_processes_draw_different_noise(genexp_cli, tmp_path):
    out = genexp_cli(
        "model=cdcgan",
        *TINY,
        "data=fake",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "trainer.limit_test_batches=1",
        "trainer.limit_val_batches=0",
        "data.batch_size=16",
        "logger=csv",
        "eval_size.n_samples=100",
        "eval_size.val_samples=50",
        "callbacks.sample_quality.nn_samples=50",
        "+callbacks.noise_probe._target_=tests.test_cdcgan.NoiseProbe",
        f"+callbacks.noise_probe.out_dir={tmp_path}",
        f"hydra.run.dir={tmp_path}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["status"] == "finished"
    assert metrics["global_step"] == 3 * 3  # 3 batches x (2 D steps + 1 G step)
    assert 0.0 <= metrics["test/cond_acc"] <= 1.0 and "test/nn_ratio" in metrics
    assert metrics["val_metric"]["name"] == "val/fid" and math.isfinite(metrics["val_metric"]["value"])
    z0, z1 = (torch.load(tmp_path / f"z_rank{r}.pt") for r in (0, 1))
    assert z0.shape == z1.shape == (16, 8) and not torch.allclose(z0, z1)
    assert (tmp_path / "samples" / "epoch_001.png").is_file()
    # the export command reads the checkpoint of a real (Hydra, DDP) run
    sample_main([str(tmp_path / "checkpoints" / "last.ckpt"), "--n", "10", "--out", str(tmp_path / "s.npz")])
    assert np.load(tmp_path / "s.npz")["images"].shape == (10, 1, 28, 28)
