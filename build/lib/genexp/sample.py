"""Write samples of any generative checkpoint to an .npz file, for evaluation outside genexp.

    python -m genexp.sample <checkpoint.ckpt> n=10000 out=samples.npz [seed=0] [batch_size=500]
                            [device=cpu] [digit=3]

The `.npz` holds `images` float32 [n, 1, 28, 28] in [0, 1] and `labels` int64 [n] (the digit asked
of a conditional model, balanced 0..9 unless `digit=` is given; -1 for an unconditional one). The
model class comes from the checkpoint's `genexp_class` (every GenerativeModule writes it). The file is
written atomically: a reader sees no file or a whole one.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
import numpy as np
import torch

from genexp import GenexpError
from genexp.models.base import GenerativeModule

log = logging.getLogger(__name__)
USAGE = "usage: python -m genexp.sample CHECKPOINT n=N out=FILE.npz [seed=0] [batch_size=500] [device=cpu] [digit=D]"
OPTIONS = {"n": int, "out": str, "seed": int, "batch_size": int, "device": str, "digit": int}


def model_class_path(ckpt_path: Path, checkpoint: dict) -> str:
    """Dotted path of the model class, stamped by GenerativeModule.on_save_checkpoint."""
    if checkpoint.get("genexp_class"):
        return checkpoint["genexp_class"]
    raise GenexpError(f"{ckpt_path}: no genexp_class in the checkpoint: not written by a genexp generative model")


def load_model(ckpt_path: str | os.PathLike, device: str = "cpu") -> GenerativeModule:
    """The generative model stored in a Lightning checkpoint, in eval mode on `device`."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise GenexpError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu")
    except Exception as e:  # a truncated or foreign file
        raise GenexpError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise GenexpError(f"{path} is not a Lightning checkpoint (no state_dict)")
    cls = hydra.utils.get_class(model_class_path(path, checkpoint))
    if not issubclass(cls, GenerativeModule):
        raise GenexpError(f"{path} holds a {cls.__name__}, not a generative model (GenerativeModule)")
    return cls.load_from_checkpoint(path, map_location=device).eval()


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
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "wb") as f:  # a file object: np.savez would otherwise append ".npz" to the temp name
        np.savez(
            f,
            images=images.cpu().numpy().astype(np.float32),
            labels=(labels if conditional else torch.full_like(labels, -1)).cpu().numpy().astype(np.int64),
        )
    os.replace(tmp, out)
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
        model = load_model(ckpt, opts.pop("device"))
        n, out = opts.pop("n"), opts.pop("out")
        path = export_samples(model, n, out, **opts)
    except GenexpError as e:
        print(f"genexp.sample: error: {e}", file=sys.stderr)
        sys.exit(2)
    log.info("wrote %d samples of %s to %s", n, type(model).__name__, path)


if __name__ == "__main__":
    main()
