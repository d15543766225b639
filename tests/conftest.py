"""Shared fixtures: the real MNIST beside the checkout, a CLI runner, the cached feature classifier."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GENEXP_DATA_DIR") or ROOT.parent / "shared" / "data" / "mnist").resolve()
os.environ.setdefault("GENEXP_DATA_DIR", str(DATA))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


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


@pytest.fixture(scope="session")
def feature_classifier(mnist_root):
    """The project's cached MNIST classifier (trained here on first use: a few minutes, once)."""
    from genexp.metrics import load_classifier

    return load_classifier(str(mnist_root))


def run_genexp(
    *overrides: str, cwd: Path | None = None, timeout: int = 600, env: dict | None = None, multirun: bool = False
) -> subprocess.CompletedProcess:
    """`python -m genexp [-m] overrides...` in a subprocess; returns the finished process (text)."""
    cmd = [sys.executable, "-m", "genexp"] + (["-m"] if multirun else []) + list(overrides)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(cmd, cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture
def genexp_cli():
    return run_genexp
