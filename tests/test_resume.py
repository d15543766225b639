"""Runs that survive: a run stopped anywhere (kill -9, Ctrl-C, SIGTERM; mid-epoch or at an epoch end) and
resumed with `ckpt_path=` into the same run dir ends with the uninterrupted run's weights, bitwise, and
the same CSV history.

Fast tier: the stateful BatchLoader, the datamodule's random streams and position, the RNG round trip,
and an in-process RBM run resumed from every checkpoint it wrote. Slow tier: every
conf/model/*.yaml (by glob) killed with SIGKILL mid-epoch and resumed from the CLI, and Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from genexp.data import FakeDataModule
from genexp.data.loader import BatchLoader
from genexp.rng import _pack, _unpack, rng_state, set_rng_state
from tests import zygote
from tests.conftest import MODELS, ROOT, compose_config, fake_data, run_genexp


# ---- the stateful BatchLoader ----------------------------------------------------------------------
def _images(n: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randint(0, 256, (n, 1, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return x, torch.arange(n)


def _loader(dynamic: bool = True, **kw) -> BatchLoader:
    x, y = _images()
    g = torch.Generator().manual_seed(5) if dynamic else None
    return BatchLoader(x, y, 10, shuffle=True, drop_last=True, seed=3, dynamic=g, **kw)


def test_loader_resumes_at_the_next_batch_with_the_same_pixels():
    whole = _loader()
    epochs = [[(x.clone(), y.clone()) for x, y in whole] for _ in range(2)]  # two passes: two permutations
    assert not torch.equal(torch.cat([y for _, y in epochs[0]]), torch.cat([y for _, y in epochs[1]]))

    first = _loader()
    list(first)  # epoch 0
    it = iter(first)
    for _ in range(4):
        next(it)  # 4 batches of epoch 1 trained, then the run stops
    state = first.state_dict()
    assert (state["epoch"], state["served"]) == (1, 4) and state["dynamic"].shape[0] == 1

    resumed = _loader(dynamic=True)  # a new process: a fresh loader and a freshly seeded stream
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == 6
    for (x, y), (x0, y0) in zip(rest, epochs[1][4:], strict=True):
        assert torch.equal(y, y0) and torch.equal(x, x0)  # same images, same Bernoulli draws
    assert resumed.state_dict()["served"] == 10
    # and the pass after it is epoch 2's permutation
    assert torch.equal(torch.cat([y for _, y in resumed]), torch.cat([y for _, y in _nth_pass(_loader(), 2)]))


def _nth_pass(loader: BatchLoader, n: int) -> list:
    for _ in range(n):
        list(loader)
    return list(loader)


def test_loader_follows_the_trainers_epoch():
    """With `epoch_fn` (the trainer's current epoch): the permutation is the epoch's, whatever number of
    passes came before; a loaded position is continued only in its own epoch."""
    epoch = {"now": 2}
    a = _loader(dynamic=False, epoch_fn=lambda: epoch["now"])
    assert torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in _nth_pass(_loader(False), 2)]))

    b = _loader(dynamic=False, epoch_fn=lambda: epoch["now"])
    b.load_state_dict({"epoch": 2, "served": 7, "dynamic": None})
    assert len(list(b)) == 3  # the rest of epoch 2
    c = _loader(dynamic=False, epoch_fn=lambda: epoch["now"])
    c.load_state_dict({"epoch": 1, "served": 10, "dynamic": None})  # saved at the end of epoch 1
    assert len(list(c)) == 10  # the trainer is in epoch 2 now: a whole new pass


def test_loader_position_counts_trained_batches_only():
    """A batch served but interrupted before its training step finished is served again."""
    trained = {"n": 3}
    loader = _loader(dynamic=False, trained_fn=lambda: trained["n"])
    it = iter(loader)
    for _ in range(4):  # the 4th batch was fetched, then Ctrl-C
        next(it)
    assert loader.state_dict()["served"] == 3


def test_sanity_check_batches_leave_the_stream_alone():
    checking = {"now": True}
    loader = _loader(isolate=lambda: checking["now"])
    before = loader.dynamic.get_state()
    next(iter(loader))
    assert torch.equal(loader.dynamic.get_state(), before)
    checking["now"] = False
    next(iter(loader))
    assert not torch.equal(loader.dynamic.get_state(), before)


# ---- the datamodule's streams and position -------------------------------------------------------------
def test_datamodule_state_round_trip_before_and_after_setup():
    dm = FakeDataModule(binarize="dynamic")
    dm.setup()
    loader = dm.train_dataloader()
    it = iter(loader)
    for _ in range(5):
        next(it)
    next(iter(dm.val_dataloader()))
    state = dm.state_dict()
    assert state["train_position"] == {"epoch": 0, "served": 5}
    assert set(state["dynamic"]) == {"train", "val", "test"}
    expected_train = [x for x, _ in list(it)]
    expected_val = next(iter(dm.val_dataloader()))[0]

    for load_first in (True, False):  # Lightning loads the datamodule state after setup; a user may not
        again = FakeDataModule(binarize="dynamic")
        if load_first:
            again.load_state_dict(state)
            again.setup()
        else:
            again.setup()
            again.load_state_dict(state)
        rest = [x for x, _ in again.train_dataloader()]
        assert len(rest) == len(expected_train)
        assert all(torch.equal(a, b) for a, b in zip(rest, expected_train, strict=True))
        assert torch.equal(next(iter(again.val_dataloader()))[0], expected_val)


def test_streams_are_per_split_and_rank():
    dm = FakeDataModule(binarize="dynamic")
    dm.setup()
    states = [g.get_state() for g in dm._streams.values()]
    assert not torch.equal(states[0], states[1]) and not torch.equal(states[1], states[2])
    assert FakeDataModule().state_dict() == {}  # nothing random to keep without dynamic binarization


# ---- RNG states -----------------------------------------------------------------------------------
def _draws() -> tuple:
    return torch.rand(3), np.random.rand(3), np.random.randn(), random.random(), random.gauss(0, 1)


def test_rng_state_round_trip_and_packing():
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    random.gauss(0, 1)  # and in python's
    state = rng_state()
    a = _draws()
    packed = _pack(state)
    assert packed.dtype == torch.uint8 and packed.ndim == 1
    for restored in (state, _unpack(packed, state)):  # as saved, and after an all_gather's bytes
        torch.manual_seed(99), np.random.seed(99), random.seed(99)
        set_rng_state(restored)
        b = _draws()
        assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2:] == b[2:]
    # a checkpoint's copy is plain data: it survives torch.load(weights_only=True)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"rng-{os.getpid()}.pt"
    torch.save({"rng_states": [state]}, path)
    loaded = torch.load(path, weights_only=True)["rng_states"][0]
    path.unlink()
    set_rng_state(loaded)
    assert torch.equal(_draws()[0], a[0])


# ---- the appending CSV logger -----------------------------------------------------------------------------
def _csv_logger(run_dir: Path):
    from genexp.loggers import CSVLogger

    return CSVLogger(save_dir=str(run_dir), name="csv", version="")


def _log(logger, rows: list[tuple[int, dict]]) -> None:
    for step, metrics in rows:
        logger.log_metrics(metrics, step)
        logger.save()


def test_csv_logger_fresh_run_replaces_an_old_history(tmp_path):
    old = _csv_logger(tmp_path)
    _log(old, [(0, {"a": 1.0}), (1, {"a": 2.0})])
    new = _csv_logger(tmp_path)  # a new run (no resume) in the same dir: Lightning's behaviour
    assert (tmp_path / "csv" / "metrics.csv").is_file()  # nothing deleted until it writes
    _log(new, [(0, {"b": 3.0})])
    assert _rows(tmp_path / "csv" / "metrics.csv") == [{"b": "3.0", "step": "0"}]


def test_csv_logger_resume_keeps_the_past_drops_the_future_and_adds_the_pending_row(tmp_path):
    first = _csv_logger(tmp_path)
    _log(first, [(0, {"a": 1.0}), (1, {"a": 2.0})])
    state = first.checkpoint_state()  # a checkpoint here: 2 rows before it, the step-1 row of b after it
    assert state == {"rows": 2}
    _log(first, [(1, {"b": 5.0}), (2, {"a": 3.0})])  # written after the checkpoint, then kill -9
    with open(tmp_path / "csv" / "metrics.csv", "a") as f:
        f.write("7,")  # half a row: the kill landed mid-write

    resumed = _csv_logger(tmp_path)
    resumed.resume(state, [{"step": 1, "metrics": {"b": 5.0}}])  # the row the checkpoint carries
    _log(resumed, [(2, {"a": 3.0}), (3, {"c": 4.0})])  # a new column: the header is rewritten
    rows = _rows(tmp_path / "csv" / "metrics.csv")
    assert rows == [
        {"a": "1.0", "step": "0"},
        {"a": "2.0", "step": "1"},
        {"b": "5.0", "step": "1"},
        {"a": "3.0", "step": "2"},
        {"c": "4.0", "step": "3"},
    ]
    assert resumed.checkpoint_state() == {"rows": 5}
    assert not list((tmp_path / "csv").glob(".metrics-*"))  # no temp file left behind


def test_csv_logger_resume_without_a_row_count_cuts_at_the_first_new_step(tmp_path):
    """A checkpoint written before genexp.loggers existed: the rows before the resumed run's first step stay."""
    first = _csv_logger(tmp_path)
    _log(first, [(0, {"a": 1.0}), (1, {"a": 2.0}), (2, {"a": 3.0})])
    resumed = _csv_logger(tmp_path)
    resumed.resume(None, [])
    _log(resumed, [(2, {"a": 3.5})])
    assert [r["step"] for r in _rows(tmp_path / "csv" / "metrics.csv")] == ["0", "1", "2"]
    assert _rows(tmp_path / "csv" / "metrics.csv")[-1]["a"] == "3.5"


# ---- in-process: an RBM resumed from every checkpoint it wrote ----------------------------------------------
class SaveEverywhere(pl.Callback):
    """Writes a checkpoint at every train batch end, validation end and train epoch end (numbered)."""

    def __init__(self, out: str):
        self.out, self.n = Path(out), 0

    def _save(self, trainer, where: str) -> None:
        if trainer.sanity_checking:
            return
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        trainer.save_checkpoint(self.out / f"{self.n:03d}_e{trainer.current_epoch}_b{batches}_{where}.ckpt")
        self.n += 1

    def on_train_batch_end(self, trainer, *args):
        self._save(trainer, "batch")

    def on_validation_end(self, trainer, *args):
        self._save(trainer, "val")

    def on_train_epoch_end(self, trainer, *args):
        self._save(trainer, "epoch")


def _in_process_run(out: Path, *overrides: str) -> Path:
    from genexp.run import run

    cfg = compose_config(*overrides)
    cfg.paths.output_dir = str(out)
    run(cfg)
    return out


def test_rbm_resumed_from_every_checkpoint_ends_bitwise_equal(tmp_path):
    """PCD chains, dynamic binarization, momentum, a linear lr schedule, epoch means of train/cost: each
    checkpoint of a run, resumed with its CSV history (as long as at the kill), ends where the run ended."""
    torch.set_num_threads(1)
    base = [
        "model=rbm", "model.n_hidden=16", "model.momentum=0.5", "data=fake", "data.binarize=dynamic",
        "trainer=smoke", "trainer.max_epochs=3", "trainer.limit_train_batches=3", "logger=csv",
        "seed=3", "test=false",
    ]  # fmt: skip
    every = tmp_path / "every"
    every.mkdir()
    cfg_extra = [f"+callbacks.every._target_={__name__}.SaveEverywhere", f"+callbacks.every.out={every}"]
    a = _in_process_run(tmp_path / "A", *base, *cfg_extra)
    ref = torch.load(a / "checkpoints" / "last.ckpt", weights_only=True)
    history = (a / "csv" / "metrics.csv").read_text()
    ckpts = sorted(every.glob("*.ckpt"))[:-1]  # the last one has nothing left to train
    assert len(ckpts) == 14  # 3 epochs x (3 batch ends, a validation end, an epoch end), less the last
    lightning_skips = []
    for ck in ckpts:
        run_dir = tmp_path / ck.stem
        (run_dir / "csv").mkdir(parents=True)
        (run_dir / "csv" / "metrics.csv").write_text(history)  # killed late: rows past the checkpoint too
        _in_process_run(run_dir, *base, f"ckpt_path={ck}")
        got = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
        for k, v in ref["state_dict"].items():
            assert torch.equal(v, got["state_dict"][k]), (ck.name, k)
        assert _tensors_equal(ref["optimizer_states"], got["optimizer_states"]), ck.name
        same_csv = (run_dir / "csv" / "metrics.csv").read_text() == history
        # Lightning 2.6 resumes a checkpoint written at the last train batch of an epoch, or at its
        # validation end, in the next epoch: that epoch's validation (or train epoch-end row) is skipped
        last_batch = ck.stem.endswith("_b3_batch") or ck.stem.endswith("_val")
        if last_batch:
            lightning_skips.append(ck.stem)
        else:
            assert same_csv, ck.name
    assert len(lightning_skips) == 6, lightning_skips


def _tensors_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_tensors_equal, a, b))
    return a == b


# ---- slow: the CLI, stopped by a signal mid-epoch, resumed into the same run dir --------------------------
BATCHES = 4  # per epoch: trainer=smoke keeps its 8 epochs (the DBN family's schedules need them)
CLI = [  # with each model's fake data (tests.conftest.fake_data)
    "trainer=smoke", f"trainer.limit_train_batches={BATCHES}", "logger=csv",
    "callbacks.checkpoint.every_n_train_steps=1", "seed=3",
    "test=false", "eval_size.every_n_epochs=8",  # only training is compared: no test-time evaluation
]  # fmt: skip


class Pause(pl.Callback):
    """Holds run B at the start of train batch `batch` of epoch `epoch` (last.ckpt is then the previous
    batch's end: mid-epoch), with a marker file present until it goes on: the test signals it there.
    A SIGTERM (Lightning's flag) ends the pause; numerics are untouched (a run without it is identical)."""

    def __init__(self, marker: str, epoch: int = 1, batch: int = 2, seconds: float = 600.0):
        self.marker, self.epoch, self.batch, self.seconds = Path(marker), epoch, batch, seconds

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) != (self.epoch, self.batch):
            return
        self.marker.touch()
        try:
            end = time.monotonic() + self.seconds
            while time.monotonic() < end and not trainer.received_sigterm:
                time.sleep(0.05)
        finally:
            self.marker.unlink(missing_ok=True)


def _start_paused(run_dir: Path, marker: Path, *overrides: str) -> subprocess.Popen:
    """`python -m genexp overrides` into run_dir, paused by `Pause`, in its own process group (a signal to
    the group reaches every DDP rank, as Ctrl-C in a terminal does)."""
    args = [*overrides, f"hydra.run.dir={run_dir}"]
    args += [f"+callbacks.pause._target_={__name__}.Pause", f"+callbacks.pause.marker={marker}"]
    env = zygote.cli_env()
    log = run_dir.parent / f"{run_dir.name}.log"
    return zygote.spawn("genexp", args, cwd=ROOT, env=env, stdout=log, stderr=log, new_session=True)


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 1800) -> None:
    end = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, f"run B ended (rc={proc.returncode}) before reaching the pause"
        assert time.monotonic() < end, "run B never reached the pause"
        time.sleep(0.05)


def _where(ckpt: Path) -> tuple[int, int, bool]:
    """(epoch, batches of it trained, written at a train batch end) of a checkpoint."""
    c = torch.load(ckpt, map_location="cpu", weights_only=True)
    progress = c["loops"]["fit_loop"]["epoch_loop.batch_progress"]
    at_batch_end = progress["total"]["completed"] == progress["total"]["processed"] - 1
    return c["epoch"], progress["current"]["processed"], at_batch_end


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def _assert_same_history(a: Path, b: Path) -> None:
    rows_a, rows_b = _rows(a / "csv" / "metrics.csv"), _rows(b / "csv" / "metrics.csv")
    steps_a = [(r.get("epoch"), r["step"], sorted(r)) for r in rows_a]
    steps_b = [(r.get("epoch"), r["step"], sorted(r)) for r in rows_b]
    assert steps_a == steps_b, "rows differ (a gap or a duplicate)"
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for k, v in ra.items():
            x, y = float(v), float(rb[k])
            assert x == y or (math.isnan(x) and math.isnan(y)) or abs(x - y) <= 1e-6 * max(1.0, abs(x)), (k, x, y)


def _assert_same_weights(a: Path, b: Path) -> None:
    ca = torch.load(a / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    cb = torch.load(b / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ca["state_dict"].keys() == cb["state_dict"].keys()
    unequal = [k for k, v in ca["state_dict"].items() if not torch.equal(v, cb["state_dict"][k])]
    assert not unequal, unequal
    assert _tensors_equal(ca["optimizer_states"], cb["optimizer_states"])
    assert _tensors_equal(ca["lr_schedulers"], cb["lr_schedulers"])
    assert (ca["epoch"], ca["global_step"]) == (cb["epoch"], cb["global_step"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Run A of each model, once per session."""
    runs = {}

    def get(model: str) -> Path:
        if model not in runs:
            out = tmp_path_factory.mktemp(f"A_{model}")
            done = run_genexp(f"model={model}", fake_data(model), *CLI, f"hydra.run.dir={out}")
            assert done.returncode == 0, done.stderr[-3000:]
            runs[model] = out
        return runs[model]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_kill_9_mid_epoch_then_resume_is_the_uninterrupted_run(model, tmp_path, uninterrupted):
    a = uninterrupted(model)
    b, marker = tmp_path / "B", tmp_path / "paused"
    b.mkdir()
    proc = _start_paused(b, marker, f"model={model}", fake_data(model), *CLI)
    try:
        _wait_for(marker, proc)
        epoch, trained, at_batch_end = _where(b / "checkpoints" / "last.ckpt")
        assert (epoch, trained, at_batch_end) == (1, 2, True)  # mid-epoch: 2 of epoch 1's 4 batches
        _signal(proc, signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
    finally:
        _signal(proc, signal.SIGKILL)
    assert json.loads((b / "metrics.json").read_text())["status"] == "running"  # what a kill -9 leaves
    done = run_genexp(f"model={model}", fake_data(model), *CLI, "ckpt_path=last", f"hydra.run.dir={b}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((b / "metrics.json").read_text())["status"] == "finished"
    _assert_same_weights(a, b)
    _assert_same_history(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("sig, rc", [(signal.SIGINT, 1), (signal.SIGTERM, 143)], ids=["sigint", "sigterm"])
def test_ctrl_c_or_sigterm_mid_epoch_then_resume(sig, rc, tmp_path, uninterrupted):
    a = uninterrupted("rbm")
    b, marker = tmp_path / "B", tmp_path / "paused"
    b.mkdir()
    proc = _start_paused(b, marker, "model=rbm", "data=fake", *CLI)
    try:
        _wait_for(marker, proc)
        _signal(proc, sig)
        assert proc.wait(600) == rc
    finally:
        _signal(proc, signal.SIGKILL)
    metrics = json.loads((b / "metrics.json").read_text())
    assert metrics["status"] == "interrupted", metrics.get("reason")
    epoch, trained, _ = _where(b / "checkpoints" / "last.ckpt")
    # Ctrl-C stops before batch 2 trains (written by the interrupt); SIGTERM after it (at its batch end)
    assert (epoch, trained) == ((1, 2) if sig == signal.SIGINT else (1, 3))
    done = run_genexp("model=rbm", "data=fake", *CLI, "ckpt_path=last", f"hydra.run.dir={b}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((b / "metrics.json").read_text())["status"] == "finished"
    _assert_same_weights(a, b)
    _assert_same_history(a, b)


@pytest.mark.slow
def test_ddp_kill_9_then_resume_gives_every_rank_its_own_state(tmp_path):
    """Two CPU processes (gloo): each rank's random states, PCD chains and dynamic-binarization streams
    are saved (one entry per rank) and each rank gets its own back: the resumed run is bitwise the
    uninterrupted one."""
    ddp = [
        "model=rbm", "model.n_hidden=32", "data=fake", "data.binarize=dynamic", "trainer=ddp",
        "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=3",
        f"trainer.limit_train_batches={BATCHES}", "trainer.limit_val_batches=1", "test=false",
        "eval_size.ais_chains=10", "eval_size.ais_betas=100", "eval_size.every_n_epochs=4", "logger=csv",
        "callbacks.checkpoint.every_n_train_steps=1", "seed=3",
    ]  # fmt: skip
    a, b, marker = tmp_path / "A", tmp_path / "B", tmp_path / "paused"
    done = run_genexp(*ddp, f"hydra.run.dir={a}")
    assert done.returncode == 0, done.stderr[-3000:]
    b.mkdir()
    proc = _start_paused(b, marker, *ddp)
    try:
        _wait_for(marker, proc)
        time.sleep(1.0)  # both ranks in the pause
        _signal(proc, signal.SIGKILL)
        proc.wait(60)
    finally:
        _signal(proc, signal.SIGKILL)
    ckpt = torch.load(b / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert _where(b / "checkpoints" / "last.ckpt") == (1, 2, True)
    ranks = ckpt["rng_states"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])  # noise seeded per rank
    streams = ckpt["FakeDataModule"]["dynamic"]["train"]
    assert streams.shape[0] == 2 and not torch.equal(streams[0], streams[1])
    assert ckpt["pcd_chains"].shape[0] == 2
    done = run_genexp(*ddp, "ckpt_path=last", f"hydra.run.dir={b}")
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_weights(a, b)
    _assert_same_history(a, b)


def test_cli_overrides_compose():
    """The overrides the slow tests use are valid for every model (no run: composition only)."""
    for model in MODELS:
        cfg = compose_config(f"model={model}", fake_data(model), *CLI)
        assert OmegaConf.select(cfg, "callbacks.checkpoint.every_n_train_steps") == 1
        assert cfg.logger._target_ == "genexp.loggers.CSVLogger"
