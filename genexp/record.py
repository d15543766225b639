"""Writing what a run leaves behind: atomic files (a reader never sees half of one) in strict JSON,
and the provenance that makes a number reproducible (git commit, versions, feature network)."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import genexp

PACKAGE = Path(genexp.__file__).resolve().parent


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write via a uniquely named temp file in the *same* directory, fsync, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def strict(obj):
    """NaN and infinities -> None (strict JSON), tensors -> numbers, recursively. torch is not imported
    here: `genexp summary` and the table scripts start in a fraction of a second without it, and a tensor
    exists only where torch is already loaded."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        obj = obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def write_json(data: dict, path: str | os.PathLike) -> Path:
    return write_atomic(path, json.dumps(strict(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def git_state() -> dict:
    """Commit and dirtiness of the checkout genexp runs from (None outside a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(PACKAGE), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def versions() -> dict:
    import pytorch_lightning as pl
    import torch

    return {
        "genexp": genexp.__version__,
        "torch": torch.__version__,
        "pytorch_lightning": pl.__version__,
        "python": platform.python_version(),
    }
