"""Checkpoints that are never lost or half-written, and loading that fails with one clear line:
the atomic CheckpointIO plugin, last.ckpt by time / steps / on SIGTERM, Ctrl-C and crashes, never with
non-finite weights, mid-epoch resume, and every way `genexp.ckpt.load_checkpoint` refuses a file.
Fast tier except the SIGTERM-to-a-subprocess test."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from genexp import GenexpError
from genexp.callbacks import Checkpoint
from genexp.ckpt import AtomicCheckpointIO, load_checkpoint, resolve_ckpt_path
from genexp.ckpt_fit import check_compatible
from genexp.evaluate import main as evaluate_main
from genexp.models.rbm import RBM
from genexp.sample import main as sample_main
from tests import zygote
from tests.conftest import ROOT, build_model, choices, compose_config

TINY_RBM = ["model.n_hidden=16", "model.sample_steps=2"]


class RecordingIO(AtomicCheckpointIO):
    """The plugin, noting (file name, global_step, finite weights) of every write."""

    def __init__(self):
        super().__init__()
        self.saved: list[tuple[str, int, bool]] = []

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        finite = all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
        self.saved.append((Path(path).name, checkpoint["global_step"], bool(finite)))
        super().save_checkpoint(checkpoint, path, storage_options)


def tiny_rbm(*overrides: str) -> RBM:
    return build_model("rbm", *TINY_RBM, *overrides)


def fit(model, dm, ckpt: Checkpoint, *, batches=4, epochs=1, callbacks=(), ckpt_path=None, io_plugin=None):
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        limit_train_batches=batches,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=False,
        callbacks=[*callbacks, ckpt],
        plugins=[io_plugin or AtomicCheckpointIO()],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return trainer


def checkpoint(tmp_path, **kw) -> Checkpoint:
    return Checkpoint(dirpath=tmp_path, save_last=True, save_top_k=1, filename="best", **kw)


class At(pl.Callback):
    """Call `action(trainer, pl_module)` at the start of train batch `batch_idx` (before it trains)."""

    def __init__(self, batch_idx: int, action, epoch: int = 0):
        self.batch_idx, self.action, self.epoch = batch_idx, action, epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.batch_idx and trainer.current_epoch == self.epoch:
            self.action(trainer, pl_module)


def _raise(exc):
    def action(trainer, pl_module):
        raise exc

    return action


def _poison(trainer, pl_module):
    with torch.no_grad():
        pl_module.rbm.W.fill_(float("nan"))


@pytest.fixture(scope="module")
def real_ckpt(tmp_path_factory) -> bytes:
    """The bytes of a real (tiny RBM) Lightning checkpoint, written by the plugin."""
    out = tmp_path_factory.mktemp("real")
    dm = hydra.utils.instantiate(compose_config("data=fake").data, _convert_="all")
    fit(tiny_rbm(), dm, checkpoint(out), batches=2)
    return (out / "last.ckpt").read_bytes()


@pytest.fixture
def ckpt_file(real_ckpt, tmp_path) -> Path:
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    path.write_bytes(real_ckpt)
    return path


# ---- the plugin ------------------------------------------------------------------------------------
@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_crash_mid_write_keeps_the_old_file_and_no_temp_file(tmp_path, monkeypatch, exc):
    io_plugin, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io_plugin.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, path)
    before = path.read_bytes()

    def torch_save_dies_halfway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04" + b"\0" * 1000)  # part of an archive
        raise exc

    monkeypatch.setattr(torch, "save", torch_save_dies_halfway)
    with pytest.raises(type(exc)):
        io_plugin.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    monkeypatch.undo()
    assert load_checkpoint(path)["global_step"] == 1


def test_a_save_replaces_the_file_and_clears_temp_files_of_dead_writers(tmp_path):
    path = tmp_path / "sub" / "last.ckpt"
    io_plugin = AtomicCheckpointIO()
    io_plugin.save_checkpoint({"state_dict": {}, "global_step": 1}, path)  # makes the directory
    dead = path.with_name(f".last.ckpt.{2**22 + 12345}.{'0' * 32}.tmp")  # above Linux's pid_max: no process
    alive = path.with_name(f".last.ckpt.{os.getppid()}.{'1' * 32}.tmp")  # a running writer's: kept
    dead.write_bytes(b"half"), alive.write_bytes(b"half")
    io_plugin.save_checkpoint({"state_dict": {}, "global_step": 2}, path)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([alive.name, "last.ckpt"])
    assert io_plugin.load_checkpoint(path)["global_step"] == 2


@pytest.mark.parametrize("trainer", choices("trainer"))  # cpu, ddp, default, gpu, smoke
def test_every_trainer_config_writes_through_the_plugin(trainer, tmp_path):
    cfg = compose_config(f"trainer={trainer}")
    cfg.trainer.accelerator = "cpu"  # ddp with CPU processes; gpu: only the plugin wiring is checked here
    t = hydra.utils.instantiate(cfg.trainer, default_root_dir=str(tmp_path), logger=False)
    assert isinstance(t.strategy.checkpoint_io, AtomicCheckpointIO)


# ---- when last.ckpt is written ---------------------------------------------------------------------
def test_every_n_minutes_writes_last_mid_epoch_and_best_is_still_ranked(fake_dm, tmp_path):
    rec = RecordingIO()
    fit(tiny_rbm(), fake_dm, checkpoint(tmp_path, every_n_minutes=1e-9), batches=4, io_plugin=rec)
    assert [s for s in rec.saved if s[1] < 4] == [
        ("last.ckpt", 1, True),
        ("last.ckpt", 2, True),
        ("last.ckpt", 3, True),
    ]
    assert ("best.ckpt", 4, True) in rec.saved and rec.saved[-1] == ("last.ckpt", 4, True)  # ranked after validation
    rec = RecordingIO()
    fit(tiny_rbm(), fake_dm, checkpoint(tmp_path / "b", every_n_minutes=60), batches=4, io_plugin=rec)
    assert {s[1] for s in rec.saved} == {4}  # not yet due: epoch end only


def test_every_n_train_steps_writes_last_only_and_resumes_mid_epoch(fake_dm, tmp_path):
    rec = RecordingIO()
    stop = At(2, _raise(RuntimeError("stop after 2 batches")))  # before batch 2: last.ckpt of step 2 stays
    with pytest.raises(RuntimeError, match="stop after"):
        fit(
            tiny_rbm(), fake_dm, checkpoint(tmp_path, every_n_train_steps=2), batches=5, callbacks=[stop], io_plugin=rec
        )
    assert rec.saved == [("last.ckpt", 2, True)]  # no top-k copy on stale metrics, no rewrite at the same step
    assert {p.name for p in tmp_path.iterdir()} == {"last.ckpt"}
    mid = load_checkpoint(tmp_path / "last.ckpt", expected_cls=RBM)
    assert mid["global_step"] == 2 and mid["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] == 0

    rec, model = RecordingIO(), tiny_rbm("model.seed=1")
    check_compatible(model, mid)  # the fresh model's empty PCD chains are a placeholder
    path = resolve_ckpt_path(str(tmp_path / "last.ckpt"), tmp_path)
    trainer = fit(model, fake_dm, checkpoint(tmp_path), batches=5, epochs=2, io_plugin=rec, ckpt_path=path)
    assert trainer.global_step == 10 and int(model.gen_step) == 10 and trainer.current_epoch == 2
    assert [s for s in rec.saved if s[0] == "last.ckpt"] == [("last.ckpt", 5, True), ("last.ckpt", 10, True)]
    assert ("best.ckpt", 5, True) in rec.saved

    # uninterrupted: last.ckpt every 2 steps, best.ckpt ranked at epoch ends only (on fresh metrics)
    rec = RecordingIO()
    fit(tiny_rbm(), fake_dm, checkpoint(tmp_path / "c", every_n_train_steps=2), batches=5, epochs=2, io_plugin=rec)
    assert [s[1] for s in rec.saved if s[0] == "last.ckpt"] == [2, 4, 5, 7, 9, 10]
    assert {s[1] for s in rec.saved if s[0] != "last.ckpt"} <= {5, 10} and ("best.ckpt", 5, True) in rec.saved
    assert {p.name for p in (tmp_path / "c").iterdir()} == {"last.ckpt", "best.ckpt"}


def test_an_exception_writes_last_and_a_non_finite_model_keeps_the_old_one(fake_dm, tmp_path, caplog):
    rec = RecordingIO()
    with pytest.raises(ValueError, match="boom"):
        fit(
            tiny_rbm(),
            fake_dm,
            checkpoint(tmp_path),
            batches=3,
            callbacks=[At(2, _raise(ValueError("boom")))],
            io_plugin=rec,
        )
    assert rec.saved == [("last.ckpt", 2, True)]

    rec, bad = RecordingIO(), At(1, lambda t, m: (_poison(t, m), _raise(ValueError("nan"))(t, m)), epoch=1)
    with caplog.at_level(logging.WARNING, logger="genexp.callbacks.checkpoint"), pytest.raises(ValueError):
        fit(tiny_rbm(), fake_dm, checkpoint(tmp_path / "b"), batches=3, epochs=2, callbacks=[bad], io_plugin=rec)
    assert all(finite for _, _, finite in rec.saved) and rec.saved[-1] == ("last.ckpt", 3, True)
    assert [r.getMessage() for r in caplog.records if "not finite" in r.getMessage()] == [
        "last.ckpt not written at step 4: the parameters are not finite (NaN/Inf); keeping the previous file"
    ]
    assert load_checkpoint(tmp_path / "b" / "last.ckpt")["global_step"] == 3


def test_nan_weights_never_reach_best_or_last_at_an_epoch_end(fake_dm, tmp_path):
    """Weights go NaN in epoch 1 and training goes on: both files keep epoch 0's finite weights."""
    rec = RecordingIO()
    fit(
        tiny_rbm(),
        fake_dm,
        checkpoint(tmp_path),
        batches=2,
        epochs=3,
        callbacks=[At(1, _poison, epoch=1)],
        io_plugin=rec,
    )
    assert rec.saved == [("best.ckpt", 2, True), ("last.ckpt", 2, True)]
    for name in ("best.ckpt", "last.ckpt"):
        sd = load_checkpoint(tmp_path / name)["state_dict"]
        assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())


def test_sigterm_in_fit_writes_last(fake_dm, tmp_path):
    """Lightning's handler only sets a flag; SIGTERMException (a SystemExit) is raised at the batch end
    and reaches on_exception (pytorch_lightning/loops/training_epoch_loop.py, on_advance_end)."""
    rec = RecordingIO()
    term = At(1, lambda t, m: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(SystemExit):
        fit(tiny_rbm(), fake_dm, checkpoint(tmp_path), batches=4, callbacks=[term], io_plugin=rec)
    assert rec.saved == [("last.ckpt", 2, True)]  # batch 1 still finished
    model = tiny_rbm()  # and the run goes on from there: the epoch's 2 remaining batches
    trainer = fit(model, fake_dm, checkpoint(tmp_path), batches=4, ckpt_path=str(tmp_path / "last.ckpt"))
    assert trainer.global_step == 4 and int(model.gen_step) == 4


def test_ctrl_c_in_fit_writes_last(fake_dm, tmp_path):
    rec, sigint = RecordingIO(), signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning turns KeyboardInterrupt into exit(1)
            fit(
                tiny_rbm(),
                fake_dm,
                checkpoint(tmp_path),
                batches=4,
                callbacks=[At(3, _raise(KeyboardInterrupt()))],
                io_plugin=rec,
            )
    finally:
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores SIGINT after the first one
    assert rec.saved == [("last.ckpt", 3, True)]


@pytest.mark.slow
def test_sigterm_to_a_training_process_leaves_a_loadable_last_ckpt(tmp_path):
    cmd = [sys.executable, "-m", "genexp", "model=classifier", "data=fake", "logger=csv", "trainer.max_epochs=100"]
    cmd += [
        "callbacks.progress_bar.refresh_rate=0",
        "callbacks.checkpoint.every_n_minutes=null",
        f"hydra.run.dir={tmp_path}",
    ]
    env = zygote.cli_env()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    last = tmp_path / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert last.exists(), proc.communicate(timeout=60)[0][-3000:] if proc.poll() is not None else "no checkpoint"
    time.sleep(0.5)  # into the next epoch
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    ckpt = load_checkpoint(last, expected_cls="genexp.models.classifier.Classifier")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "interrupted", out[-3000:]
    assert ckpt["global_step"] == metrics["global_step"] > 0, out[-3000:]  # written at the stop, not an epoch earlier
    assert "SIGTERMException: saved" in out or "SIGTERMException: last.ckpt of step" in out  # or at an epoch end
    assert not [p for p in last.parent.iterdir() if p.suffix == ".tmp"]


# ---- loading: one line per problem -----------------------------------------------------------------
def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


LOAD_ERRORS = {
    # name: (file content (None: no file, "dir": a directory), expected_cls, message fragment)
    "missing": (None, None, "does not exist"),
    "directory": ("dir", None, "is a directory"),
    "empty": (b"", None, "corrupted or truncated checkpoint .* empty"),
    "truncated": ("half", None, "corrupted or truncated checkpoint"),
    "ten bytes": ("ten", None, "corrupted or truncated checkpoint"),
    "random bytes": (bytes(range(256)) * 4, None, "corrupted or truncated checkpoint"),
    "a text file": (b"epoch,step,loss\n0,1,0.5\n", None, "corrupted or truncated checkpoint .*not a torch file"),
    "a plain pickle": (pickle.dumps({"state_dict": {}}, protocol=4), None, "corrupted or truncated checkpoint"),
    "needs code to load": (_torch_bytes({"state_dict": {}, "m": torch.nn.Linear(2, 2)}), None, "needs code execution"),
    "no state_dict": (_torch_bytes({"epoch": 3}), None, "not a Lightning checkpoint"),
    "not a dict": (_torch_bytes([torch.ones(2)]), None, "not a Lightning checkpoint"),
    "state_dict of junk": (_torch_bytes({"state_dict": {"w": 3}}), None, "not a dict of tensors"),
    "another model": ("real", "genexp.models.cdcgan.CDCGAN", "holds a RBM, expected CDCGAN"),
}


@pytest.mark.parametrize("case", list(LOAD_ERRORS))
def test_every_bad_checkpoint_is_one_line_naming_the_path(case, real_ckpt, tmp_path):
    content, expected, fragment = LOAD_ERRORS[case]
    path = tmp_path / "x.ckpt"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        content = {"half": real_ckpt[: len(real_ckpt) // 2], "ten": real_ckpt[:10], "real": real_ckpt}.get(
            content, content
        )
        path.write_bytes(content)
    with pytest.raises(GenexpError, match=fragment) as info:
        load_checkpoint(path, expected_cls=expected)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and len(msg) < 400, msg


@pytest.mark.parametrize("url", ["http://example.com/m.ckpt", "https://x.org/last.ckpt", "s3://bucket/last.ckpt"])
def test_urls_are_refused(url):
    with pytest.raises(GenexpError, match="only local checkpoint files are accepted"):
        load_checkpoint(url)
    with pytest.raises(GenexpError, match="only local checkpoint files"):
        resolve_ckpt_path(url, "/nowhere")


def test_the_expected_class_may_be_a_class_or_a_dotted_path(ckpt_file):
    assert load_checkpoint(ckpt_file, expected_cls=RBM)["genexp_class"] == "genexp.models.rbm.RBM"
    load_checkpoint(ckpt_file, expected_cls="genexp.models.rbm.RBM")
    with pytest.raises(GenexpError, match="holds a RBM, expected Classifier"):
        load_checkpoint(ckpt_file, expected_cls="genexp.models.classifier.Classifier")


def test_resolve_ckpt_path(ckpt_file, tmp_path):
    run = ckpt_file.parent.parent
    assert resolve_ckpt_path(None, run) is None
    assert resolve_ckpt_path("last", run) == str(ckpt_file)
    assert resolve_ckpt_path(str(ckpt_file), "/elsewhere") == str(ckpt_file)
    with pytest.raises(GenexpError, match=rf"ckpt_path=last: {tmp_path / 'checkpoints' / 'last.ckpt'} does not exist"):
        resolve_ckpt_path("last", tmp_path)
    with pytest.raises(GenexpError, match="ckpt_path=.*nope.ckpt: checkpoint .* does not exist"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), run)


def test_a_shape_mismatch_names_the_key_both_shapes_and_the_setting(ckpt_file, monkeypatch):
    saved = load_checkpoint(ckpt_file)
    with pytest.raises(GenexpError) as info:
        check_compatible(tiny_rbm("model.n_hidden=8"), saved)
    assert str(info.value) == (
        "checkpoint rbm.W has shape [784, 16] but the model (model.n_hidden=8, the checkpoint's 16) has [784, 8]"
    )
    gone = {**saved, "state_dict": {k: v for k, v in saved["state_dict"].items() if k != "rbm.vbias"}}
    with pytest.raises(GenexpError, match="does not fit RBM: missing keys rbm.vbias$"):
        check_compatible(tiny_rbm(), gone)
    extra = {**saved, "state_dict": {**saved["state_dict"], "head.w": torch.ones(1)}}
    with pytest.raises(GenexpError, match="unexpected keys head.w"):
        check_compatible(tiny_rbm(), extra)
    # PCD chains sized by another batch size: allowed through the class's resizable_buffers (fnmatch)
    model = tiny_rbm()
    model.rbm.persistent_chain = torch.zeros(3, 16)  # a trained model's chains, not a placeholder
    check_compatible(model, saved)  # RBM.resizable_buffers names the chains
    monkeypatch.setattr(RBM, "resizable_buffers", (), raising=False)
    with pytest.raises(GenexpError, match=r"rbm.persistent_chain has shape \[16, 16\] .* has \[3, 16\]"):
        check_compatible(model, saved)
    monkeypatch.setattr(RBM, "resizable_buffers", ("rbm.persistent_*",), raising=False)
    check_compatible(model, saved)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=600),
        st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b),
        st.binary(max_size=300).map(lambda b: b"\x80\x02" + b),
        st.integers(0, 10**9).map(lambda n: ("prefix", n)),
        st.tuples(st.integers(0, 10**9), st.integers(1, 255)).map(lambda t: ("flip", *t)),
        st.binary(min_size=1, max_size=64).map(lambda b: ("zip-member", b)),
    )
)
def test_load_checkpoint_only_ever_raises_genexp_error(data, real_ckpt, tmp_path):
    if isinstance(data, tuple) and data[0] == "prefix":
        data = real_ckpt[: data[1] % len(real_ckpt)]
    elif isinstance(data, tuple) and data[0] == "flip":
        i = data[1] % len(real_ckpt)
        data = real_ckpt[:i] + bytes([real_ckpt[i] ^ data[2]]) + real_ckpt[i + 1 :]
    elif isinstance(data, tuple):  # a well-formed archive holding junk where torch's pickle should be
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("archive/data.pkl", data[1])
            z.writestr("archive/version", b"3\n")
        data = buf.getvalue()
    path = tmp_path / "h.ckpt"
    path.write_bytes(data)
    try:
        ckpt = load_checkpoint(path)
    except GenexpError as e:
        assert "\n" not in str(e) and str(path) in str(e)
    else:  # a flipped byte the archive does not check (alignment padding) may leave a good file
        assert isinstance(ckpt, dict) and "state_dict" in ckpt


# ---- genexp.sample / genexp.evaluate: one line, exit code 2 ----------------------------------------
def _one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog}: error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "does not exist"),
        (b"\x00" * 50, "corrupted or truncated checkpoint"),
        (
            _torch_bytes({"state_dict": {}, "genexp_class": "genexp.models.classifier.Classifier"}),
            "not a GenerativeModule",
        ),
        (_torch_bytes({"state_dict": {}, "genexp_class": "os.system"}), "is not a genexp model"),
        (_torch_bytes({"state_dict": {}}), "no genexp_class"),
    ],
)
def test_sample_refuses_a_bad_checkpoint_with_one_line(content, fragment, tmp_path, capsys):
    path = tmp_path / "m.ckpt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as info:
        sample_main([str(path), "--n", "4", "--out", str(tmp_path / "s.npz")])
    assert info.value.code == 2 and fragment in _one_error_line(capsys, "genexp.sample")
    assert not (tmp_path / "s.npz").exists()


def test_sample_refuses_an_unwritable_out_before_sampling(ckpt_file, tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    for out, fragment in [(tmp_path / "a_file" / "s.npz", "cannot write in"), (tmp_path, "is a directory")]:
        with pytest.raises(SystemExit) as info:
            sample_main([str(ckpt_file), "--n", "4", "--out", str(out)])
        assert info.value.code == 2 and fragment in _one_error_line(capsys, "genexp.sample")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "run"]  # nothing half-written
    sample_main([str(ckpt_file), "--n", "4", "--out", str(tmp_path / "ok" / "s.npz")])  # and a good one works
    assert [p.name for p in (tmp_path / "ok").iterdir()] == ["s.npz"]


def test_evaluate_refuses_a_bad_checkpoint_or_another_runs_model_with_one_line(ckpt_file, tmp_path, capsys):
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    assert evaluate_main([str(tmp_path / "junk.ckpt")]) == 2
    assert "corrupted or truncated checkpoint" in _one_error_line(capsys, "genexp.evaluate")
    cfg = compose_config("model=cdcgan", "data=fake")  # the run dir says CDCGAN, the file holds an RBM
    (ckpt_file.parent.parent / ".hydra").mkdir()
    OmegaConf.save(cfg, ckpt_file.parent.parent / ".hydra" / "config.yaml")
    assert evaluate_main([str(ckpt_file)]) == 2
    assert "holds a RBM, expected CDCGAN" in _one_error_line(capsys, "genexp.evaluate")


def test_evaluate_scores_a_model_that_cannot_sample(fake_dm, tmp_path, capsys):
    """A classifier (no sample()): evaluate runs the run's own callbacks, nothing generative."""
    run = tmp_path / "run"
    cfg = compose_config("model=classifier", "data=fake", "trainer=smoke", "model.channels=4", "model.n_features=8")
    model = hydra.utils.instantiate(cfg.model, _convert_="all")
    fit(model, fake_dm, checkpoint(run / "checkpoints"), batches=2)
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    assert evaluate_main([str(run / "checkpoints" / "last.ckpt")]) == 0
    scores = json.loads((run / "evaluation.json").read_text())
    assert 0 <= scores["test/acc"] <= 1


def test_the_callbacks_config_has_the_time_and_step_keys():
    cfg = compose_config()
    assert cfg.callbacks.checkpoint.every_n_minutes == 10 and cfg.callbacks.checkpoint.every_n_train_steps is None
    assert cfg.trainer.plugins[0]._target_ == "genexp.ckpt.AtomicCheckpointIO"
