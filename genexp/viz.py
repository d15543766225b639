"""Pictures a person would rather look at than read: image grids and filter mosaics (numpy + Pillow)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger


def grid(images: torch.Tensor | np.ndarray, nrow: int, pad: int = 2, scale: int = 1) -> np.ndarray:
    """[N, 1, H, W] (or [N, H, W]) values in [0, 1] -> uint8 [rows*(H+pad)+pad, nrow*(W+pad)+pad]."""
    x = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images, float)
    x = x.reshape(len(x), *x.shape[-2:])  # [N, H, W]
    n, h, w = x.shape
    rows = -(-n // nrow)
    out = np.ones((rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float64)
    for i in range(n):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = x[i]
    out = (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
    return np.kron(out, np.ones((scale, scale), dtype=np.uint8)) if scale > 1 else out


def captioned_grid(images: torch.Tensor, captions: list[str], nrow: int, scale: int = 3) -> np.ndarray:
    """`grid` with a line of text under every tile (e.g. "7 as 1"): Pillow's built-in bitmap font."""
    tiles = grid(images, nrow=nrow, pad=0, scale=scale)
    h, w = (d * scale for d in images.shape[-2:])
    band, pad = 12, 2
    rows = -(-len(images) // nrow)
    canvas = Image.new("L", (nrow * (w + pad) + pad, rows * (h + band + pad) + pad), 255)
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(captions):
        r, c = divmod(i, nrow)
        x0, y0 = pad + c * (w + pad), pad + r * (h + band + pad)
        canvas.paste(Image.fromarray(tiles[r * h : (r + 1) * h, c * w : (c + 1) * w]), (x0, y0))
        draw.text((x0 + 1, y0 + h), text, fill=0)
    return np.asarray(canvas)


def tile_filters(weights: torch.Tensor, shape=(28, 28), nrow: int | None = None) -> np.ndarray:
    """Each column of W [n_visible, n_hidden] as a tile, each scaled to [0, 1] on its own (the
    deeplearning.net `tile_raster_images` convention)."""
    w = weights.detach().float().cpu().T  # [n_hidden, n_visible]
    lo, hi = w.min(1, keepdim=True).values, w.max(1, keepdim=True).values
    w = (w - lo) / (hi - lo + 1e-8)
    nrow = nrow or int(np.ceil(np.sqrt(len(w))))
    return grid(w.reshape(-1, *shape), nrow=nrow, pad=1)


def save_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write atomically: a reader never sees half a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def log_image(trainer, key: str, image: np.ndarray, step: int | None = None) -> None:
    """Send a uint8 image (H, W) to whichever image-capable loggers the run has."""
    for lg in trainer.loggers:
        if isinstance(lg, WandbLogger):
            lg.log_image(key=key, images=[image], step=step)
        elif isinstance(lg, TensorBoardLogger):
            lg.experiment.add_image(key, image[None], global_step=step or 0)


def picture(trainer, image: np.ndarray, name: str, key: str) -> Path:
    """Save `samples/<name>` in the run dir (rank 0 calls this) and send it to the loggers."""
    path = save_png(image, Path(trainer.default_root_dir) / "samples" / name)
    log_image(trainer, key, image, step=trainer.global_step)
    return path
