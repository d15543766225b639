"""A loaded checkpoint (genexp.ckpt.load_checkpoint) against a model, refused with one line.

- `check_compatible(model, checkpoint)`: every key and shape of the checkpoint's state_dict against
  the model's, before Lightning's multi-line `load_state_dict` error could. Buffers a model sizes from
  its data (the RBM's PCD chains) are named in the class attribute `resizable_buffers` (fnmatch
  patterns); a buffer the fresh model holds empty (0 elements) is a placeholder and may take any shape.
- `build_model(path, checkpoint, base)`: the model a loaded checkpoint holds, rebuilt from its
  hyper-parameters and checked (genexp.sample, genexp.evaluate).
"""

from __future__ import annotations

import fnmatch
import inspect
import os

import torch

from genexp import GenexpError
from genexp.ckpt import _detail, _resolve_class


def _few(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _hparam_hint(model, checkpoint: dict) -> str:
    """` (model.n_hidden=64; the checkpoint's 500)` for the hyper-parameters that differ, or ``."""
    saved = checkpoint.get("hyper_parameters") or {}
    ours = dict(getattr(model, "hparams", {}) or {})
    diff = [k for k in ours if k in saved and _plain(ours[k]) != _plain(saved[k])]
    if not diff:
        return ""
    return " (" + "; ".join(f"model.{k}={_val(ours[k])}, the checkpoint's {_val(saved[k])}" for k in diff[:3]) + ")"


def _val(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def _resizable(model, key: str, own: torch.Tensor, buffers: set[str]) -> bool:
    patterns = getattr(type(model), "resizable_buffers", ()) or ()
    if any(fnmatch.fnmatchcase(key, pat) for pat in patterns):
        return True
    return key in buffers and own.numel() == 0  # an unsized placeholder, sized by data or by loading


def check_compatible(model, checkpoint: dict, path: str | os.PathLike | None = None) -> None:
    """Refuse a checkpoint whose state_dict does not fit `model`, with one GenexpError line naming the
    first mismatched key and both shapes, or the missing / unexpected keys. Keys matching the model
    class's `resizable_buffers` (fnmatch patterns, e.g. "rbms.*.persistent_chain") and buffers the model
    holds empty may differ in shape."""
    where = f"{path}: " if path is not None else ""
    saved = checkpoint.get("state_dict")
    if not isinstance(saved, dict):
        raise GenexpError(f"{where}not a Lightning checkpoint (no state_dict)")
    own = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    for key, value in saved.items():
        if key in own and isinstance(value, torch.Tensor) and tuple(value.shape) != tuple(own[key].shape):
            if _resizable(model, key, own[key], buffers):
                continue
            raise GenexpError(
                f"{where}checkpoint {key} has shape {list(value.shape)} but the model"
                f"{_hparam_hint(model, checkpoint)} has {list(own[key].shape)}"
            )
    strict = getattr(model, "strict_loading", True)
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    if strict and (missing or unexpected):
        parts = ([f"missing keys {_few(missing)}"] if missing else []) + (
            [f"unexpected keys {_few(unexpected)}"] if unexpected else []
        )
        hint = _hparam_hint(model, checkpoint)
        raise GenexpError(f"{where}checkpoint does not fit {type(model).__name__}{hint}: " + "; ".join(parts))


def build_model(path: str | os.PathLike, checkpoint: dict, base: type, device: str = "cpu"):
    """The model a checkpoint (from `load_checkpoint`) holds: its `genexp_class`, which must be a
    subclass of `base`, rebuilt from the checkpoint's hyper-parameters, checked key by key and shape by
    shape (`check_compatible`), loaded, in eval mode on `device`."""
    stamped = checkpoint.get("genexp_class")
    if not stamped:
        raise GenexpError(f"{path}: no genexp_class in the checkpoint: not written by a genexp model")
    if not stamped.startswith("genexp."):  # import only genexp's own modules on a file's say-so
        raise GenexpError(f"{path}: genexp_class {stamped!r} is not a genexp model")
    cls = _resolve_class(stamped)
    if cls is None:
        raise GenexpError(f"{path}: holds a {stamped}, which this version of genexp does not have")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise GenexpError(f"{path} holds a {cls.__name__}, not a {base.__name__}")
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        hparams = {k: v for k, v in hparams.items() if k in params}
    try:
        model = cls(**hparams)
    except GenexpError as e:
        raise GenexpError(f"{path}: cannot rebuild {cls.__name__} from its hyper-parameters: {e}") from None
    except Exception as e:
        raise GenexpError(f"{path}: cannot rebuild {cls.__name__} from its hyper-parameters ({_detail(e)})") from None
    check_compatible(model, checkpoint, path)
    try:
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(checkpoint["state_dict"], strict=getattr(model, "strict_loading", True))
    except Exception as e:
        raise GenexpError(f"{path}: cannot load the weights into {cls.__name__} ({_detail(e)})") from None
    try:
        return model.to(torch.device(device)).eval()
    except Exception as e:  # "cuda" without a GPU, a misspelt device
        raise GenexpError(f"device={device}: cannot move {cls.__name__} there ({_detail(e)})") from None
