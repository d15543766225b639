"""Checkpoint files: written atomically, read only as plain data, refused with one line.

- `AtomicCheckpointIO`: the Trainer's CheckpointIO plugin (conf/trainer/default.yaml). Every file the
  Trainer writes goes to a uniquely named temp file in the target's own directory, is fsynced and then
  `os.replace`d over the target: a reader (or a resume after a kill) sees the previous file or the
  new one, never half of one. Lightning's default writes through an fsspec transaction whose temp file
  lives in $TMPDIR; when the run dir is on another filesystem the final step is a copy, and a kill
  during it left a 0-byte last.ckpt. Its `load_checkpoint` (what `trainer.fit(ckpt_path=...)` calls)
  goes through `load_checkpoint` below.
- `load_checkpoint(path, expected_cls)`: a local file, `torch.load(weights_only=True)` on the CPU; a
  URL, a missing, empty, truncated or foreign file, a pickle that needs code to load, a file that is
  not a Lightning checkpoint or holds another model class: one `GenexpError` line naming the path.
- `resolve_ckpt_path(ckpt_path, run_dir)`: the config's `ckpt_path` (`null`, `last` or a file) as a path.

A checkpoint against a model (`check_compatible`, `build_model`): genexp.ckpt_fit.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import uuid
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from genexp import GenexpError

log = logging.getLogger(__name__)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


# ---- writing ---------------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(f)` on `.{name}.{pid}.{uuid}.tmp` beside `path`, flush + fsync it, `os.replace` it onto
    `path` and fsync the directory. On any error (or a KeyboardInterrupt) the temp file is removed and
    an existing `path` is untouched. The directory must exist."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (network, FUSE) refuse fsync on a directory
    finally:
        os.close(fd)


def _remove_stale_temps(path: Path) -> None:
    """Temp files of `path` left by a process that no longer runs (a kill -9 mid-write)."""
    for tmp in path.parent.glob(f".{_glob_escape(path.name)}.*.tmp"):
        m = re.fullmatch(rf"\.{re.escape(path.name)}\.(\d+)\.[0-9a-f]{{32}}\.tmp", tmp.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                tmp.unlink()
        except (PermissionError, OverflowError, OSError):
            pass  # alive (another user's process) or unknowable: leave it


def _glob_escape(name: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", name)


class AtomicCheckpointIO(TorchCheckpointIO):
    """`torch.save` to a temp file in the checkpoint's directory, fsync, `os.replace`, fsync the directory.

    Remote paths (`s3://...`) fall back to Lightning's fsspec writer. Loading (a resume) goes through
    `genexp.ckpt.load_checkpoint`: local files only, `weights_only=True`, one-line errors."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or (_URL.match(str(path)) and not str(path).startswith("file://")):
            return super().save_checkpoint(checkpoint, path, storage_options=storage_options)
        path = Path(str(path).removeprefix("file://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path)
        atomic_write(path, lambda f: torch.save(checkpoint, f))
        log.debug("saved checkpoint %s", path)

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        # map_location: always the CPU (Lightning moves model and optimizer states onto the device itself);
        # weights_only: always True, whatever the caller asked
        return load_checkpoint(path)


# ---- reading ---------------------------------------------------------------------------------------
def _class_path(cls: type | str) -> str:
    return cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"


def _resolve_class(target: type | str) -> type | None:
    """The class a dotted path names (importing its module), or None."""
    if isinstance(target, type):
        return target
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except Exception:
        return None
    return cls if isinstance(cls, type) else None


def _same_class(stamped: str, expected: type | str) -> bool:
    if stamped == _class_path(expected):
        return True
    cls = _resolve_class(expected)  # expected may name a re-export (genexp.models.RBM)
    return cls is not None and stamped == _class_path(cls)


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _detail(e: BaseException) -> str:
    """The gist of a torch.load error on one line (torch's own messages run to paragraphs)."""
    text = str(e)
    m = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    if m:
        text = m.group(1)
    text = " ".join(text.split())
    for marker in (". This is an internal", ". If you", ". Please", ". Check"):
        text = text.split(marker)[0]
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _check_zip(path: Path) -> None:
    """A torch zip checkpoint whose central directory, entries and CRCs are whole, so that the C++
    reader only ever sees a well-formed archive."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except Exception as e:  # BadZipFile, EOFError, and on hostile input struct.error, OverflowError, ...
        raise GenexpError(f"corrupted or truncated checkpoint {path} ({_detail(e)})") from None
    if bad is not None:
        raise GenexpError(f"corrupted or truncated checkpoint {path} (member {bad!r} fails its CRC check)")


def local_checkpoint_path(path: str | os.PathLike) -> Path:
    """`path` as an existing local file, or one GenexpError line saying why not."""
    s = os.fspath(path)
    if isinstance(s, bytes):
        s = os.fsdecode(s)
    if s.startswith("file://"):
        s = s.removeprefix("file://")
    elif _URL.match(s):
        raise GenexpError(
            f"{s}: only local checkpoint files are accepted (Lightning would load a URL with "
            "torch.load(weights_only=False), which runs code from the file); download it and pass the path"
        )
    p = Path(s).expanduser()
    if not p.exists():
        raise GenexpError(f"checkpoint {p} does not exist")
    if p.is_dir():
        raise GenexpError(f"checkpoint {p} is a directory, not a checkpoint file")
    if not p.is_file():
        raise GenexpError(f"checkpoint {p} is not a regular file")
    if not os.access(p, os.R_OK):
        raise GenexpError(f"checkpoint {p} is not readable (permission denied)")
    return p


def load_checkpoint(path: str | os.PathLike, expected_cls: type | str | None = None) -> dict:
    """The checkpoint dict of a local Lightning checkpoint, read with `torch.load(weights_only=True,
    map_location="cpu")`. Every problem is one GenexpError line naming the path: a URL, a missing file,
    a directory, an empty / truncated / foreign file, a pickle that needs code to load, no `state_dict`,
    or (with `expected_cls`, a class or dotted path) a `genexp_class` of another model."""
    p = local_checkpoint_path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise GenexpError(f"cannot read checkpoint {p} ({e.strerror or e})") from None
    if size == 0:
        raise GenexpError(f"corrupted or truncated checkpoint {p} (the file is empty: 0 bytes)")
    if head[:2] == b"PK":
        _check_zip(p)
    elif head[:1] != b"\x80":  # torch writes a zip archive, or (legacy) a pickle of protocol >= 2
        raise GenexpError(f"corrupted or truncated checkpoint {p} (not a torch file: neither a zip nor a pickle)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4" on foreign pickles
            checkpoint = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        m = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if m:
            raise GenexpError(
                f"checkpoint {p} needs code execution to load (it pickles {m.group(1)}); genexp reads checkpoints "
                "with torch.load(weights_only=True) only"
            ) from None
        raise GenexpError(f"corrupted or truncated checkpoint {p} ({_detail(e)})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise GenexpError(f"{p} is not a Lightning checkpoint (no state_dict)")
    sd = checkpoint["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise GenexpError(f"{p} is not a Lightning checkpoint (its state_dict is not a dict of tensors)")
    stamped = checkpoint.get("genexp_class")
    if stamped is not None and not (isinstance(stamped, str) and _DOTTED.fullmatch(stamped)):
        raise GenexpError(f"{p} is not a genexp checkpoint (its genexp_class is not a class name)")
    check_class(checkpoint, expected_cls, p)
    return checkpoint


def check_class(checkpoint: dict, expected_cls: type | str | None, path: str | os.PathLike) -> None:
    """Refuse a checkpoint whose `genexp_class` is not `expected_cls` (a class or a dotted path; None:
    anything). A checkpoint without `genexp_class` (a plain Lightning one) passes."""
    stamped = checkpoint.get("genexp_class")
    if expected_cls is not None and isinstance(stamped, str) and not _same_class(stamped, expected_cls):
        raise GenexpError(
            f"checkpoint {path} holds a {_short(stamped)}, expected {_short(_class_path(expected_cls))} "
            f"({stamped} vs {_class_path(expected_cls)})"
        )


# ---- resuming ----------------------------------------------------------------------------------------
def auto_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """What `ckpt_path=auto` resumes from: the run dir's last.ckpt, or None (start fresh)."""
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    return path if path.is_file() else None


def requeue_aware(ckpt_path):
    """`ckpt_path` as set, except that a requeued SLURM job (SLURM_RESTART_COUNT > 0) with none set
    resumes its own run: "auto"."""
    if ckpt_path in (None, "None", "null") and int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0:
        return "auto"
    return None if ckpt_path in ("None", "null") else ckpt_path


def resolve_ckpt_path(ckpt_path: str | os.PathLike | None, run_dir: str | os.PathLike) -> str | None:
    """The config's `ckpt_path` as a local file path: None stays None; "last" is
    RUN_DIR/checkpoints/last.ckpt (which must exist); "auto" is that file if it exists, else None (start
    fresh: what a requeued job wants); anything else an existing local file. A requeued SLURM job
    (SLURM_RESTART_COUNT > 0) with no ckpt_path is "auto": the same command continues its own run."""
    ckpt_path = requeue_aware(ckpt_path)
    if ckpt_path is None:
        return None
    if str(ckpt_path) == "auto":
        path = auto_checkpoint(run_dir)
        return str(path) if path else None
    if str(ckpt_path) == "last":
        path = Path(run_dir) / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise GenexpError(
                f"ckpt_path=last: {path} does not exist (resume in the run dir that wrote it: hydra.run.dir=RUN_DIR)"
            )
        return str(path)
    try:
        return str(local_checkpoint_path(ckpt_path))
    except GenexpError as e:
        raise GenexpError(f"ckpt_path={ckpt_path}: {e}") from None
