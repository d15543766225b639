"""Write samples of any generative checkpoint to an .npz file, for evaluation outside genexp.

    python -m genexp.sample <checkpoint.ckpt> n=10000 out=samples.npz [seed=0] [batch_size=500]
                            [device=cpu] [digit=3]

The `.npz` holds `images` float32 [n, 1, 28, 28] in [0, 1] and `labels` int64 [n] (the digit asked
of a conditional model, balanced 0..9 unless `digit=` is given; -1 for an unconditional one). The
model class comes from the checkpoint's `genexp_class` (every GenerativeModule writes it); the file is
read with torch.load(weights_only=True) and checked key by key against the model. The .npz is written
atomically (a reader sees no file or a whole one); an unwritable `out=` is refused before sampling. Any
problem is one line `genexp.sample: error: ...`, exit code 2.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from genexp import GenexpError
from genexp.ckpt import atomic_write, build_model, load_checkpoint
from genexp.models.base import GenerativeModule

log = logging.getLogger(__name__)
USAGE = "usage: python -m genexp.sample CHECKPOINT n=N out=FILE.npz [seed=0] [batch_size=500] [device=cpu] [digit=D]"
OPTIONS = {"n": int, "out": str, "seed": int, "batch_size": int, "device": str, "digit": int}


def load_model(ckpt_path: str | os.PathLike, device: str = "cpu") -> GenerativeModule:
    """The generative model stored in a Lightning checkpoint, in eval mode on `device`. Read with
    `torch.load(weights_only=True)`; the class comes from the checkpoint's `genexp_class`; its keys and
    shapes are checked against the rebuilt model. Any problem is one GenexpError line."""
    checkpoint = load_checkpoint(ckpt_path)
    return build_model(ckpt_path, checkpoint, GenerativeModule, device)


def writable_out(out: str | os.PathLike) -> Path:
    """`out` as a path a file can be written to, checked before any sampling: one GenexpError line if
    its directory cannot be made or written, or `out` is a directory."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise GenexpError(f"out={out} is a directory; give a file name, e.g. out={out / 'samples.npz'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as e:
        raise GenexpError(f"out={out}: cannot write in {out.parent} ({e.strerror or e})") from None
    return out


@torch.no_grad()
def export_samples(
    model: GenerativeModule,
    n: int,
    out: str | os.PathLike,
    seed: int = 0,
    batch_size: int = 500,
    digit: int | None = None,
) -> Path:
    """Draw n samples (balanced labels, or all `digit`) with a seeded generator and save them as .npz."""
    conditional = getattr(model, "is_conditional", False)
    labels = torch.full((n,), digit) if digit is not None else torch.arange(n) % 10
    labels = labels.to(model.device)
    g = torch.Generator(device=model.device).manual_seed(seed)
    images = torch.cat(
        [
            model.sample(len(lab), labels=lab if conditional else None, generator=g).float().clamp(0, 1)
            for lab in labels.split(batch_size)
        ]
    )  # [n, 1, 28, 28]
    out = writable_out(out)
    arrays = {
        "images": images.cpu().numpy().astype(np.float32),
        "labels": (labels if conditional else torch.full_like(labels, -1)).cpu().numpy().astype(np.int64),
    }
    try:  # a file object: np.savez would otherwise append ".npz" to the temp name
        atomic_write(out, lambda f: np.savez(f, **arrays))
    except OSError as e:  # a full disk: the temp file is gone, an older `out` untouched
        raise GenexpError(f"out={out}: cannot write ({e.strerror or e})") from None
    return out


def parse_args(argv: list[str]) -> tuple[str, dict]:
    if not argv or argv[0] in ("-h", "--help") or "=" in argv[0]:
        raise GenexpError(USAGE)
    opts: dict = {"n": None, "out": None, "seed": 0, "batch_size": 500, "device": "cpu", "digit": None}
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep or key not in OPTIONS:
            raise GenexpError(f"unknown argument {arg!r}; valid: {', '.join(k + '=' for k in OPTIONS)}")
        try:
            opts[key] = OPTIONS[key](value)
        except ValueError:
            raise GenexpError(f"{key}={value!r} must be {OPTIONS[key].__name__}") from None
    if opts["n"] is None or opts["out"] is None or opts["n"] < 1:
        raise GenexpError(f"n= (>= 1) and out= are required; {USAGE}")
    if opts["digit"] is not None and not 0 <= opts["digit"] <= 9:
        raise GenexpError(f"digit={opts['digit']} must be in 0..9")
    return argv[0], opts


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        ckpt, opts = parse_args(sys.argv[1:] if argv is None else argv)
        n, out = opts.pop("n"), writable_out(opts.pop("out"))  # refused before anything is loaded or drawn
        model = load_model(ckpt, opts.pop("device"))
        path = export_samples(model, n, out, **opts)
    except GenexpError as e:
        print(f"genexp.sample: error: {e}", file=sys.stderr)
        sys.exit(2)
    log.info("wrote %d samples of %s to %s", n, type(model).__name__, path)


if __name__ == "__main__":
    main()
