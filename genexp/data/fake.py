"""Tiny synthetic 28x28 "digits" for the fast test tier: no files, built in milliseconds.

Class c is a fixed stroke pattern (ring, bars, diagonals, box, L, 7, stacked rings, triangle) drawn
from a distance field, so strokes have soft grey edges like MNIST's anti-aliased pen. Each image
gets its own shift of up to 2 px each way, a stroke intensity in [0.7, 1] and Gaussian pixel
noise, so the classes are learnable but not identical copies.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from genexp import GenexpError
from genexp.data.datamodule import ImageDataModule

SIZE, PAD = 28, 2  # image side; maximum shift (templates are drawn on a padded canvas)

# (kind, params) in image coordinates (row, col), 0..27: "seg" (r0, c0, r1, c1), "ring" (r, c, radius)
PATTERNS = {
    "ring": [("ring", (13.5, 13.5, 8.0))],
    "vbar": [("seg", (4, 13.5, 23, 13.5))],
    "hbar": [("seg", (13.5, 4, 13.5, 23))],
    "diag": [("seg", (6, 6, 21, 21))],
    "anti": [("seg", (6, 21, 21, 6))],
    "box": [("seg", (5, 5, 5, 15)), ("seg", (15, 5, 15, 15)), ("seg", (5, 5, 15, 5)), ("seg", (5, 15, 15, 15))],
    "ell": [("seg", (5, 8, 22, 8)), ("seg", (22, 8, 22, 20))],
    "seven": [("seg", (6, 7, 6, 20)), ("seg", (6, 20, 22, 11))],
    "eight": [("ring", (8.5, 13.5, 4.5)), ("ring", (18.5, 13.5, 4.5))],
    "triangle": [("seg", (6, 13.5, 21, 5)), ("seg", (21, 5, 21, 22)), ("seg", (21, 22, 6, 13.5))],
}


@lru_cache(maxsize=1)
def templates() -> np.ndarray:
    """[n_classes, SIZE + 2 PAD, SIZE + 2 PAD] float32 in [0, 1]: one clean pattern per class."""
    side = SIZE + 2 * PAD
    r, c = np.meshgrid(np.arange(side) - PAD, np.arange(side) - PAD, indexing="ij")
    out = np.zeros((len(PATTERNS), side, side), np.float32)
    for k, parts in enumerate(PATTERNS.values()):
        d = np.full((side, side), np.inf)
        for kind, p in parts:
            if kind == "ring":
                d = np.minimum(d, np.abs(np.hypot(r - p[0], c - p[1]) - p[2]))
            else:  # distance to the segment from (r0, c0) to (r1, c1)
                a, b = np.array(p[:2]), np.array(p[2:])
                t = np.clip(((r - a[0]) * (b[0] - a[0]) + (c - a[1]) * (b[1] - a[1])) / np.sum((b - a) ** 2), 0, 1)
                d = np.minimum(d, np.hypot(r - a[0] - t * (b[0] - a[0]), c - a[1] - t * (b[1] - a[1])))
        out[k] = np.clip(2.0 - d, 0.0, 1.0)  # full ink within 1 px of the centre line, fading to 0 at 2 px
    return out


def render(labels: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """uint8 images [N, 28, 28] of the given classes, each shifted, scaled and noised at random."""
    n = len(labels)
    dy, dx = rng.integers(0, 2 * PAD + 1, size=(2, n))
    rows = (dy[:, None] + np.arange(SIZE))[:, :, None]
    cols = (dx[:, None] + np.arange(SIZE))[:, None, :]
    x = templates()[labels[:, None, None], rows, cols]  # [N, 28, 28]: each its own window of the canvas
    x = x * rng.uniform(0.7, 1.0, size=(n, 1, 1)) + noise * rng.standard_normal(x.shape)
    return np.rint(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


class FakeDataModule(ImageDataModule):
    """n_train/n_val/n_test synthetic images with balanced labels, all determined by split_seed.

    `root` is accepted and ignored so that `${data.root}` interpolations elsewhere in the config
    (e.g. callbacks/default.yaml) still resolve when `data=fake`.
    """

    name = "fake"
    class_names = tuple(PATTERNS)

    def __init__(
        self,
        n_train: int = 320,
        n_val: int = 80,
        n_test: int = 80,
        pixel_noise: float = 0.1,
        root: str | None = None,
        **common,
    ):
        """`common`: ImageDataModule's arguments except val_size (= n_val); `root` is accepted and
        ignored, so configs that pass data.root (callbacks, experiments) compose with data=fake."""
        for key, value, low in (("n_train", n_train, 1), ("n_val", n_val, 0), ("n_test", n_test, 1)):
            if value < low:
                raise GenexpError(f"data.{key}={value} must be >= {low}")
        if pixel_noise < 0:
            raise GenexpError(f"data.pixel_noise={pixel_noise} must be >= 0")
        self.train_pool = n_train + n_val  # before super().__init__, which validates against it
        common = {"batch_size": 16, "eval_batch_size": 40, **common}  # tiny data, tiny batches
        super().__init__(val_size=n_val, **common)

    def load_arrays(self) -> dict[str, np.ndarray]:
        hp, k = self.hparams, len(self.class_names)
        # labels placed through the same permutation the base class splits with, so that train, val
        # and test each cycle through 0..k-1 in order: balanced, and balanced in any prefix too
        perm = self._split_perm().numpy()
        pool_labels = np.empty(self.train_pool, np.uint8)
        pool_labels[perm[: hp.n_val]] = np.arange(hp.n_val) % k
        pool_labels[perm[hp.n_val :]] = np.arange(hp.n_train) % k
        test_labels = (np.arange(hp.n_test) % k).astype(np.uint8)
        rng = np.random.default_rng(hp.split_seed)
        return {
            "train_images": render(pool_labels, rng, hp.pixel_noise),
            "train_labels": pool_labels,
            "test_images": render(test_labels, rng, hp.pixel_noise),
            "test_labels": test_labels,
        }
