"""The conditional DCGAN: sample contract per label, the d_steps schedule, detached fakes, checkpoint
round-trip of gen_step + EMA, the sample export command, and a 2-process CPU DDP run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from genexp import GenexpError
from genexp.metrics.sample_quality import nearest_neighbour_check
from genexp.models.cdcgan import CDCGAN, conv_cond_concat
from genexp.sample import main as sample_main

TINY = dict(nz=8, ngf=4, ndf=4, ngfc=16, ndfc=16)
TINY_CLI = ["model.nz=8", "model.ngf=4", "model.ndf=4", "model.ngfc=16", "model.ndfc=16"]


def _loader(n_batches: int = 4, batch_size: int = 8) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n_batches * batch_size, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n_batches * batch_size,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def _fit(model: CDCGAN, n_batches: int = 4, **trainer_kw) -> pl.Trainer:
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kw,
    )
    trainer.fit(model, _loader(n_batches))
    return trainer


def test_conv_cond_concat_appends_constant_label_planes():
    x, y = torch.randn(2, 3, 5, 5), torch.eye(10)[[4, 7]]
    out = conv_cond_concat(x, y)
    assert out.shape == (2, 13, 5, 5)
    assert torch.equal(out[:, :3], x)
    assert torch.equal(out[:, 3:], y[:, :, None, None].expand(2, 10, 5, 5))


@pytest.mark.parametrize("noise", ["uniform", "normal"])
def test_samples_have_shape_and_range_for_every_label(noise):
    model = CDCGAN(noise=noise, **TINY).eval()
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


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"noise": "gaussian"}, "model.noise='gaussian'"),
        ({"d_steps": 0}, "model.d_steps=0"),
        ({"g_loss": "wasserstein"}, "model.g_loss"),
        ({"ema_decay": 1.0}, "model.ema_decay=1.0"),
        ({"ngf": 2.5}, "model.ngf=2.5"),
        ({"lr": -1.0}, "model.lr=-1.0"),
    ],
)
def test_bad_config_values_are_refused_in_one_line(kwargs, needle):
    with pytest.raises(GenexpError, match=needle.replace("(", r"\(").replace(".", r"\.")) as err:
        CDCGAN(**kwargs)
    assert "\n" not in str(err.value)


def test_cli_refuses_a_bad_model_value_in_one_line(genexp_cli, tmp_path):
    out = genexp_cli("model=cdcgan", "model.noise=gaussian", "trainer=smoke", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1] == "genexp: error: model.noise='gaussian' is not one of uniform, normal"


@pytest.mark.parametrize("d_steps", [1, 3])
def test_discriminator_steps_per_generator_step_is_exactly_d_steps(d_steps):
    model = CDCGAN(d_steps=d_steps, **TINY)
    trainer = _fit(model, n_batches=4)
    opt_d, opt_g = (o.optimizer if hasattr(o, "optimizer") else o for o in trainer.optimizers)
    d_updates = {int(s["step"]) for s in opt_d.state.values()}  # Adam counts its own steps per parameter
    g_updates = {int(s["step"]) for s in opt_g.state.values()}
    assert d_updates == {4 * d_steps} and g_updates == {4}
    assert int(model.gen_step) == 4
    assert trainer.global_step == 4 * (d_steps + 1)  # Lightning counts every optimizer step


def test_fakes_for_the_discriminator_carry_no_gradient_to_the_generator():
    model = CDCGAN(d_steps=2, **TINY)
    phase, steps, g_grads = ["none"], [], []
    for p in model.generator.parameters():
        p.register_hook(lambda grad: g_grads.append(phase[0]))
    step_optimizer = model.step_optimizer

    def spy(opt, loss):
        phase[0] = "d" if opt.optimizer is model.trainer.optimizers[0] else "g"  # D's optimizer comes first
        steps.append(phase[0])
        step_optimizer(opt, loss)

    model.step_optimizer = spy
    _fit(model, n_batches=2)
    assert steps == ["d", "d", "g"] * 2  # numbered phases: d_steps D updates, then one G update
    assert g_grads and set(g_grads) == {"g"}  # G got gradients, and only in its own phase


def test_gen_step_and_ema_round_trip_through_a_checkpoint(tmp_path):
    model = CDCGAN(ema_decay=0.9, **TINY)
    trainer = _fit(model, n_batches=3)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = CDCGAN.load_from_checkpoint(path)
    assert int(loaded.gen_step) == 3 and loaded.generator_ema is not None
    for (name, a), b in zip(
        model.generator_ema.state_dict().items(), loaded.generator_ema.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    live, ema = model.generator.fc1.weight, model.generator_ema.fc1.weight
    assert not torch.allclose(live, ema)  # the EMA really averages: it is not the live G
    model.eval(), loaded.eval()
    same = [m.sample(6, torch.arange(6), torch.Generator().manual_seed(0)) for m in (model, loaded)]
    assert torch.equal(*same)  # sampling uses the EMA generator, restored exactly


def test_sample_export_writes_images_and_labels(tmp_path, capsys):
    model = CDCGAN(**TINY)
    trainer = _fit(model, n_batches=1)
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "s.npz"
    sample_main([str(ckpt), "n=25", f"out={out}", "seed=1"])  # what `python -m genexp.sample` runs
    data = np.load(out)
    assert data["images"].shape == (25, 1, 28, 28) and data["images"].dtype == np.float32
    assert 0 <= data["images"].min() and data["images"].max() <= 1
    assert data["labels"].tolist() == [i % 10 for i in range(25)]
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(SystemExit) as done:
        sample_main([str(ckpt), "n=5", f"out={out}", "colour=red"])
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


def test_ddp_two_cpu_processes_draw_different_noise(genexp_cli, feature_classifier, tmp_path):
    out = genexp_cli(
        "model=cdcgan",
        *TINY_CLI,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "trainer.limit_test_batches=1",
        "trainer.limit_val_batches=0",
        "data.batch_size=16",
        "logger=csv",
        "model.nn_samples=50",
        "callbacks.sample_quality.n_samples=100",
        "+callbacks.noise_probe._target_=tests.test_cdcgan.NoiseProbe",
        f"+callbacks.noise_probe.out_dir={tmp_path}",
        f"hydra.run.dir={tmp_path}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["status"] == "finished"
    assert metrics["global_step"] == 3 * 3  # 3 batches x (2 D steps + 1 G step)
    assert 0.0 <= metrics["test/cond_acc"] <= 1.0 and "test/nn_ratio" in metrics
    z0, z1 = (torch.load(tmp_path / f"z_rank{r}.pt") for r in (0, 1))
    assert z0.shape == z1.shape == (16, 8) and not torch.allclose(z0, z1)
    assert (tmp_path / "samples" / "epoch_001.png").is_file()
    # the export command reads a checkpoint of a real (Hydra) run: omegaconf hparams inside
    sample_main([str(tmp_path / "checkpoints" / "last.ckpt"), "n=10", f"out={tmp_path / 's.npz'}"])
    assert np.load(tmp_path / "s.npz")["images"].shape == (10, 1, 28, 28)
