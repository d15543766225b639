"""Write samples of any generative checkpoint to an .npz file, for evaluation outside genexp.

    genexp sample CHECKPOINT --n 10000 [--out FILE.npz] [--seed 0] [--batch-size 500] [--device cpu] [--digit D]
    python -m genexp.sample CHECKPOINT --n 10000 ...                      (the same command)

The `.npz` holds `images` float32 [n, *sample shape] in [0, 1] (digits [n, 1, 28, 28]; a sequence model's
piano rolls [n, T, 88]) and `labels` int64 [n] (the digit asked
of a conditional model, balanced 0..9 unless `--digit` is given; -1 for an unconditional one). The
default --out is `samples_<n>.npz` in the checkpoint's run dir (RUN_DIR/checkpoints/x.ckpt -> RUN_DIR),
else beside the checkpoint; never the current directory. The model class comes from the checkpoint's
`genexp_class` (every GenerativeModule writes it); the file is read with torch.load(weights_only=True)
and checked key by key against the model. The .npz is written atomically (a reader sees no file or a
whole one); an unwritable --out is refused before sampling. Any problem is one line
`genexp sample: error: ...`, exit code 2.
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
from genexp.ckpt import atomic_write, load_checkpoint, local_checkpoint_path
from genexp.ckpt_fit import build_model
from genexp.cliutil import Parser, error_name, positive_int, refuse_key_value
from genexp.models.base import GenerativeModule

log = logging.getLogger(__name__)


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
        raise GenexpError(f"--out {out} is a directory; give a file name, e.g. --out {out / 'samples.npz'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as e:
        raise GenexpError(f"--out {out}: cannot write in {out.parent} ({e.strerror or e})") from None
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
        raise GenexpError(f"--out {out}: cannot write ({e.strerror or e})") from None
    return out


def run_dir(ckpt: str | os.PathLike) -> Path:
    """The run dir a checkpoint belongs to: RUN_DIR for RUN_DIR/checkpoints/x.ckpt when RUN_DIR holds
    `.hydra/`, else the checkpoint's own folder (where default outputs go; never the current directory)."""
    path = Path(ckpt).expanduser().resolve()
    parent = path.parent.parent
    return parent if (parent / ".hydra").is_dir() else path.parent


def parser(prog: str = "python -m genexp.sample"):

    p = Parser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("ckpt", metavar="CHECKPOINT", help="a checkpoint of a generative model (RUN_DIR/checkpoints/*.ckpt)")
    p.add_argument("--n", type=positive_int, required=True, help="how many samples (>= 1)")
    p.add_argument("--out", metavar="FILE", help="the .npz to write (default: RUN_DIR/samples_<n>.npz)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling generator (default 0)")
    p.add_argument("--batch-size", type=positive_int, default=500, help="samples drawn at a time (default 500)")
    p.add_argument("--device", default="cpu", help="torch device to sample on (default cpu)")
    p.add_argument("--digit", type=int, choices=range(10), metavar="D", help="all samples of digit D (0..9)")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m genexp.sample") -> None:

    argv = sys.argv[1:] if argv is None else argv
    refuse_key_value(prog, argv, "--n 10000 --out FILE.npz")
    args = parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        local_checkpoint_path(args.ckpt)  # a missing checkpoint is named before any folder is made for --out
        out = args.out if args.out is not None else run_dir(args.ckpt) / f"samples_{args.n}.npz"
        out = writable_out(out)  # refused before anything is loaded or drawn
        model = load_model(args.ckpt, args.device)
        path = export_samples(model, args.n, out, seed=args.seed, batch_size=args.batch_size, digit=args.digit)
    except GenexpError as e:
        print(f"{error_name(prog)}: error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2)
    log.info("wrote %d samples of %s to %s", args.n, type(model).__name__, path)


if __name__ == "__main__":
    main()
