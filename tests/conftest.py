"""Shared fixtures: the real MNIST beside the checkout, composed configs and tiny models, a CLI runner.

Fast tier (`pytest -m "not slow"`): fake data and the shipped feature network only. Tests that read the
real MNIST, start a CLI subprocess, DDP or a sweep are marked `slow`; `python3 dev.py test` runs both.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import hydra
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from tests import zygote

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DATA = Path(os.environ.get("GENEXP_DATA_DIR") or ROOT.parent / "shared" / "data" / "mnist").resolve()
os.environ.setdefault("GENEXP_DATA_DIR", str(DATA))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# two xdist workers on a 2-core machine: one thread each, or OpenMP contention makes everything 20x slower
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_config(*overrides: str, hydra_cfg: bool = False):
    """The composed config as `python -m genexp overrides` would see it (no ${hydra:...} run values)."""
    from genexp import __main__  # noqa: F401  (registers the val_direction resolver)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=hydra_cfg)
    cfg.paths.output_dir = "/tmp/genexp-config-test"
    return cfg


# The data each model is exercised on, by the first kind of data its class takes (`data_kinds`): a new
# model of any kind gets every generic test (contract, resume, DDP, divergence) with no test edit.
FAKE_DATA = {"image": "fake", "vector": "fake", "sequence": "fake_sequences"}  # fast, no files
# the smoke runs of the contract tests: the fake set, and for images a slice of a second real dataset
# (Fashion-MNIST, from the Debian package, .ci/run)
SMOKE_DATA = {
    "image": {"fake": (), "fashion_mnist": ("data.batch_size=16", "data.eval_batch_size=100")},
    "vector": {"fake": ()},
    "sequence": {"fake_sequences": ()},
}
REAL_DATA = {"image": "mnist", "vector": "mnist", "sequence": "bach_chorales"}  # the CLI's real-data runs


def model_class(model: str) -> type:
    return hydra.utils.get_class(compose_config(f"model={model}").model._target_)


def data_kind(model: str) -> str:
    """The kind of data (DataInfo.kind) model `model` is tested on: the first of its class's data_kinds."""
    return model_class(model).data_kinds[0]


def fake_data(model: str) -> str:
    """The `data=` override of the fast synthetic data model `model` trains on."""
    return f"data={FAKE_DATA[data_kind(model)]}"


def build_model(model: str, *overrides: str):
    """Model `model` from its yaml (the one place its defaults live), with `model.key=value` overrides."""
    cfg = compose_config(f"model={model}", *overrides)
    return hydra.utils.instantiate(cfg.model, _convert_="all")


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    if not (DATA / "t10k-images-idx3-ubyte.gz").is_file() and not (DATA / "t10k-images-idx3-ubyte").is_file():
        pytest.fail(f"real MNIST not found at {DATA}: set GENEXP_DATA_DIR")
    return DATA


@pytest.fixture(scope="session")
def mnist_dm(mnist_root):
    """The default datamodule, set up once (grey levels, 50k/10k/10k)."""
    from genexp.data import MNISTDataModule

    dm = MNISTDataModule(root=str(mnist_root))
    dm.setup()
    return dm


@pytest.fixture
def fake_dm():
    """Tiny synthetic digits (conf/data/fake.yaml), set up."""
    dm = hydra.utils.instantiate(compose_config("data=fake").data, _convert_="all")
    dm.setup()
    return dm


def quiet_trainer(root, callbacks=(), max_epochs: int = 1, limit_train_batches: int = 3):
    """A CPU Trainer with no logger, checkpointing, progress bar, summary or validation."""
    return pl.Trainer(
        max_epochs=max_epochs,
        limit_train_batches=limit_train_batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        default_root_dir=str(root),
        callbacks=list(callbacks),
    )


def run_genexp(
    *overrides: str, cwd: Path | None = None, timeout: int = 1800, env: dict | None = None, multirun: bool = False
) -> subprocess.CompletedProcess:
    """`python -m genexp [-m] overrides...` in a fresh process (a child of the warm server, tests.zygote);
    returns the finished process (text).
    The timeout only catches a hang: a busy machine must not fail a test."""
    args = (["-m"] if multirun else []) + list(overrides)
    full_env = zygote.cli_env(**(env or {}))
    return zygote.run("genexp", args, cwd=cwd or ROOT, env=full_env, timeout=timeout)


@pytest.fixture
def genexp_cli():
    return run_genexp
