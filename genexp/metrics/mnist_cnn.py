"""The feature network of the metrics: the project's classifier, trained once on first use and cached.

No weights are downloaded: the first call runs `python -m genexp experiment=feature_classifier`
(the shipped recipe) and keeps its checkpoint in $GENEXP_CACHE_DIR (default ~/.cache/genexp).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from genexp import GenexpError
from genexp.models.classifier import Classifier

log = logging.getLogger(__name__)
_LOADED: dict[tuple[str, str], Classifier] = {}


def classifier_path() -> Path:
    return Path(os.environ.get("GENEXP_CACHE_DIR") or Path.home() / ".cache" / "genexp") / "mnist_cnn.ckpt"


def _train(path: Path, data_root: str | None) -> None:
    run_dir = path.parent / "feature_classifier_run"
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "genexp", "experiment=feature_classifier", f"hydra.run.dir={run_dir}"]
    if data_root:
        cmd.append(f"data.root={data_root}")
    log.warning("no MNIST feature classifier at %s: training it now, once (%s)", path, " ".join(cmd[1:]))
    done = subprocess.run(cmd, capture_output=True, text=True)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if done.returncode != 0 or not ckpt.is_file():
        raise GenexpError(
            f"training the feature classifier failed (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}; see {run_dir}"
        )
    tmp = path.with_name(path.name + ".tmp")
    shutil.copyfile(ckpt, tmp)
    os.replace(tmp, path)  # atomic: a reader sees no checkpoint or a whole one
    acc = json.loads((run_dir / "metrics.json").read_text()).get("test/acc")
    log.warning("feature classifier cached at %s (test/acc %s)", path, acc)


def load_classifier(data_root: str | None = None, device: torch.device | str = "cpu") -> Classifier:
    """The cached classifier in eval mode on `device`, training it first if there is none."""
    path = classifier_path()
    key = (str(path), str(device))
    if key not in _LOADED:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:  # one trainer even with several processes
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.is_file():
                _train(path, data_root)
        model = Classifier.load_from_checkpoint(path, map_location=device)
        _LOADED[key] = model.eval().requires_grad_(False)
    return _LOADED[key]
