"""Checks of user-given values, each failing with one line `<key>=<value>: <what is valid>`.

- `number`, `numbers`, `choice`, `flag`: the helpers model and data constructors check their
  arguments with, one line per argument, so every message reads the same, e.g.
  `model.lr='abc': must be a number > 0`.
- `check_config(cfg, run_dir)`: what no constructor sees (seed, trainer limits, precision, devices,
  a writable run dir), called by `genexp.run` before anything is instantiated or written.
- `OutputDirCheck`: a Hydra callback that refuses an unwritable `hydra.run.dir` / `hydra.sweep.dir`
  before Hydra itself tries to create it (Hydra's own failure there is a traceback).

Imports nothing from genexp's models, metrics or callbacks (they import this).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import typing
from collections.abc import Iterable
from numbers import Integral, Real
from pathlib import Path
from typing import Any, NoReturn

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from lightning_fabric import connector as fabric_connector
from omegaconf import OmegaConf
from pytorch_lightning.accelerators import AcceleratorRegistry

from genexp import GenexpError

SEED_MAX = 2**32 - 1  # pl.seed_everything's range: [0, 2**32 - 1]
TEST_CKPTS = ("last", "best")
MATMUL_PRECISIONS = ("highest", "high", "medium")
# Lightning 2.x precision values (lightning_fabric.connector._PRECISION_INPUT), used if that moves
_PRECISIONS = (
    "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true",
    "transformer-engine", "transformer-engine-float16", "64", "32", "16", "bf16", 64, 32, 16,
)  # fmt: skip


# ---- the helpers ------------------------------------------------------------------------------------
def show(value: Any) -> str:
    """A value as the user would type it back: null, true/false, 'text', numbers and lists as repr."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value)


def fail(name: str, value: Any, valid: str) -> NoReturn:
    """Raise the one-line GenexpError `name=value: valid`."""
    raise GenexpError(f"{name}={show(value)}: {valid}")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _describe(low, high, integer: bool, low_open: bool, high_open: bool, finite: bool = False) -> str:
    """'a number > 0', 'an integer >= 1', 'a number in [0, 1)' ('a finite number ...' with `finite`)."""
    what = "an integer" if integer else "a finite number" if finite else "a number"
    if low is not None and high is not None:
        return f"{what} in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{what} {'>' if low_open else '>='} {_fmt(low)}"
    if high is not None:
        return f"{what} {'<' if high_open else '<='} {_fmt(high)}"
    return what


def _is_number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    if integer:
        return isinstance(value, Integral)
    return isinstance(value, Real) and math.isfinite(value)


def _in_range(value, low, high, low_open: bool, high_open: bool) -> bool:
    if low is not None and (value <= low if low_open else value < low):
        return False
    return not (high is not None and (value >= high if high_open else value > high))


def number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    integer: bool = False,
    low_open: bool = False,
    high_open: bool = False,
    null: bool = False,
    hint: str = "",
):
    """`value` if it is a finite number (an int, not a bool, when `integer`) in [low, high] (bounds
    excluded where `low_open` / `high_open`; None: unbounded), or None when `null` allows it; else a
    GenexpError `name=value: must be <a number in the range>[, or null][ (hint)]`."""
    if value is None and null:
        return None
    if _is_number(value, integer) and _in_range(value, low, high, low_open, high_open):
        return value
    finite = isinstance(value, Real) and not isinstance(value, Integral) and not math.isfinite(value)
    fail(
        name,
        value,
        f"must be {_describe(low, high, integer, low_open, high_open, finite)}"
        + (", or null" if null else "")
        + (f" ({hint})" if hint else ""),
    )


def numbers(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    integer: bool = False,
    low_open: bool = False,
    high_open: bool = False,
    length: int | None = None,
    min_length: int = 1,
    scalar: bool = False,
    hint: str = "",
) -> list:
    """A list of numbers, each as `number` checks it: exactly `length` of them (else at least
    `min_length`); with `scalar`, a single number stands for `length` copies of itself."""
    each = _describe(low, high, integer, low_open, high_open)
    if scalar and length is not None:
        valid = f"must be {each}, or a list of {length} such"
    else:
        count = f"{length}" if length is not None else f">= {min_length}"
        valid = f"must be a list of {count} values, each {each}"
    valid += f" ({hint})" if hint else ""
    values = [value] * (length or 1) if scalar and _is_number(value, integer) else value
    if not isinstance(values, (list, tuple)):
        fail(name, value, valid)
    ok_len = len(values) == length if length is not None else len(values) >= min_length
    if not ok_len or not all(_is_number(v, integer) and _in_range(v, low, high, low_open, high_open) for v in values):
        fail(name, value, valid)  # the value as given (a scalar stays a scalar)
    return list(values)


def choice(name: str, value: Any, options: Iterable, *, null: bool = False):
    """`value` if it is one of `options` (or None when `null`), else `name=value: must be one of a, b`."""
    options = tuple(options)
    if (value is None and null) or (isinstance(value, (str, int)) and not isinstance(value, bool) and value in options):
        return value
    fail(name, value, "must be one of " + ", ".join(str(o) for o in options) + (", or null" if null else ""))


def flag(name: str, value: Any) -> bool:
    """`value` if it is a bool, else `name=value: must be true or false`."""
    if not isinstance(value, bool):
        fail(name, value, "must be true or false")
    return value


# ---- directories ------------------------------------------------------------------------------------
def writable_dir(name: str, path: str | os.PathLike) -> None:
    """Refuse a directory that cannot be written (or created): one line naming it. An existing one is
    tried with a temporary file (removed at once); a missing one needs a writable existing ancestor
    (nothing is created)."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as e:
            fail(name, str(path), f"cannot write in it ({e.strerror or e}); choose a writable directory")
        return
    if path.exists():
        fail(name, str(path), "is a file, not a directory; choose a writable directory")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        fail(name, str(path), f"cannot be created: {parent} is a file, not a directory; choose a writable directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        fail(name, str(path), f"cannot be created: {parent} is not writable; choose a writable directory")


# ---- the whole config -------------------------------------------------------------------------------
def _get(cfg, key: str, default: Any = KeyError) -> Any:
    """cfg's value at dotted `key` (resolved); `default` when absent or unresolvable."""

    try:
        return OmegaConf.select(cfg, key, default=default, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - an interpolation that cannot resolve here (e.g. ${hydra:...})
        return default


def _precisions() -> tuple:
    try:
        return tuple(v for lit in typing.get_args(fabric_connector._PRECISION_INPUT) for v in typing.get_args(lit))
    except Exception:  # noqa: BLE001 - a private name of Lightning: fall back to the 2.x list
        return _PRECISIONS


def _limit(name: str, value: Any, allow_zero: bool) -> None:
    """Lightning's limit_*_batches: a fraction (float) in [0, 1] or a number of batches (int) >= 0."""
    ok = (isinstance(value, float) and 0.0 <= value <= 1.0) or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0
    )
    if not ok or (not allow_zero and value == 0):
        lo = "0" if allow_zero else "1"
        fail(name, value, f"must be a fraction in {'[' if allow_zero else '('}0, 1] or a number of batches >= {lo}")


def _devices(value: Any) -> None:
    valid = "must be an integer >= 1, -1 (all), 'auto', or a list of device indices like [0, 1]"
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1)):
        return
    if isinstance(value, (list, tuple)) and value and all(_is_number(v, True) and v >= 0 for v in value):
        return
    if isinstance(value, str) and value.strip():  # Lightning's "0,1", "-1" and "2" forms
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if parts and (parts == ["-1"] or all(p.isdigit() for p in parts)) and (len(parts) > 1 or parts[0] != "0"):
            return
    fail("trainer.devices", value, valid)


def check_config(cfg, run_dir: str | os.PathLike | None = None) -> None:
    """Refuse, in one line, what no constructor sees; call before anything is instantiated or written.
    `run_dir`: the run's output directory (Hydra's, when running under Hydra); else `paths.output_dir`."""
    absent = KeyError
    # the run
    seed = _get(cfg, "seed", absent)
    if seed is not absent:
        number("seed", seed, 0, SEED_MAX, integer=True)
    if (v := _get(cfg, "matmul_precision", absent)) is not absent:
        choice("matmul_precision", v, MATMUL_PRECISIONS)
    if (v := _get(cfg, "test", absent)) is not absent:
        flag("test", v)
    if (v := _get(cfg, "test_ckpt", absent)) is not absent:
        choice("test_ckpt", v, TEST_CKPTS)
    # (ckpt_path: genexp.ckpt.resolve_ckpt_path checks it, with the checkpoint's contents)

    # the trainer
    if _get(cfg, "trainer", None) is not None:
        max_steps = _get(cfg, "trainer.max_steps", -1)
        number("trainer.max_steps", max_steps, -1, integer=True, hint="-1: no limit")
        if max_steps == 0:
            fail("trainer.max_steps", max_steps, "must be -1 (no limit) or an integer >= 1")
        max_epochs = _get(cfg, "trainer.max_epochs", None)
        if not (max_epochs is None and max_steps >= 1):
            number("trainer.max_epochs", max_epochs, 1, integer=True, hint="or null with trainer.max_steps >= 1")
        for split in ("train", "val", "test", "predict"):
            if (v := _get(cfg, f"trainer.limit_{split}_batches", absent)) is not absent and v is not None:
                _limit(f"trainer.limit_{split}_batches", v, allow_zero=split != "train")
        if (v := _get(cfg, "trainer.devices", absent)) is not absent:
            _devices(v)
        if (v := _get(cfg, "trainer.num_nodes", absent)) is not absent:
            number("trainer.num_nodes", v, 1, integer=True)
        if (v := _get(cfg, "trainer.precision", absent)) is not absent and v is not None and v not in _precisions():
            valid = _precisions()  # named in this order: the usual ones first
            named = [p for p in (*_PRECISIONS, *valid) if isinstance(p, str) and "-" in p and p in valid]
            named = list(dict.fromkeys(named))
            fail("trainer.precision", v, "must be one of " + ", ".join(named))
        if (v := _get(cfg, "trainer.check_val_every_n_epoch", absent)) is not absent:
            number("trainer.check_val_every_n_epoch", v, 1, integer=True, null=True)
        if (v := _get(cfg, "trainer.log_every_n_steps", absent)) is not absent and v is not None:
            number("trainer.log_every_n_steps", v, 1, integer=True)
        if (v := _get(cfg, "trainer.num_sanity_val_steps", absent)) is not absent and v is not None:
            number("trainer.num_sanity_val_steps", v, -1, integer=True, hint="-1: all")
        if (v := _get(cfg, "trainer.gradient_clip_val", absent)) is not absent:
            number("trainer.gradient_clip_val", v, 0, null=True)
        if isinstance(v := _get(cfg, "trainer.accelerator", absent), str):  # (not an Accelerator's config)
            _accelerator(v)

    # the run directory (Hydra has created it by now; paths.output_dir is where checkpoints go)
    dirs = []
    if run_dir is not None:
        dirs.append((_run_dir_key(), run_dir))
    out = _get(cfg, "paths.output_dir", None)
    if out is not None and (run_dir is None or Path(out).absolute() != Path(run_dir).absolute()):
        dirs.append(("paths.output_dir", out))
    for key, d in dirs:
        writable_dir(key, d)


def _accelerator(value: str) -> None:

    names = ("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))
    choice("trainer.accelerator", value, names)
    if value in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            fail("trainer.accelerator", value, "no CUDA GPU is available on this machine; use cpu or auto")


def _run_dir_key() -> str:
    try:
        if HydraConfig.initialized():
            return "hydra.sweep.dir" if HydraConfig.get().mode == RunMode.MULTIRUN else "hydra.run.dir"
    except Exception:  # noqa: BLE001 - no Hydra here: the config's own key
        pass
    return "paths.output_dir"


# ---- Hydra's own directories ------------------------------------------------------------------------
class OutputDirCheck(Callback):
    """A Hydra callback (`hydra.callbacks.output_dir_check._target_=genexp.validate.OutputDirCheck`):
    before Hydra creates the run (or sweep) directory, refuse one that cannot be created or written
    with the one-line `genexp: error: hydra.run.dir=...: ...` and exit code 2 (Hydra's own failure
    there is a traceback, after nothing useful)."""

    def _check(self, config, key: str) -> None:

        if not HydraConfig.initialized():  # ${hydra:...} in the dir's name needs it; run_job sets it again
            HydraConfig.instance().set_config(config)
        path = _get(config, key, None)
        if path is None:
            return
        try:
            writable_dir(key, path)
        except GenexpError as e:
            print(f"genexp: error: {e}", file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config, **kwargs) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs) -> None:
        self._check(config, "hydra.sweep.dir")
