"""MNIST as a LightningDataModule: in-memory tensors served by index (no worker processes).

Batches are `(x, y)`: x float [B, 1, 28, 28] in [0, 1] (binarized if asked), y int64 labels or
one-hot float [B, 10] when `one_hot=True`.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from genexp import GenexpError
from genexp.data.mnist import MIRRORS, load_mnist, resolve_root

BINARIZE = ("none", "static", "dynamic", "threshold")


class BatchLoader:
    """Shuffled mini-batches by index over tensors that already sit on their device.

    Shuffling is a function of (seed, epoch) so every rank draws the same permutation and takes its
    own slice `perm[rank::world_size]`: the DDP sharding a DistributedSampler would do, without copies.
    """

    def __init__(
        self, x, y, batch_size, shuffle, drop_last, seed=0, rank=0, world_size=1, dynamic: torch.Generator | None = None
    ):
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size, self.dynamic = seed, rank, world_size, dynamic
        self.epoch = 0

    def _indices(self) -> torch.Tensor:
        n = len(self.x)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            idx = torch.randperm(n, generator=g)
        else:
            idx = torch.arange(n)
        per_rank = n // self.world_size  # equal shard sizes keep DDP ranks in lock-step
        return idx[self.rank :: self.world_size][:per_rank]

    def __len__(self) -> int:
        per_rank = len(self.x) // self.world_size
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)

    def __iter__(self):
        idx = self._indices().to(self.x.device)
        self.epoch += 1
        for b in range(len(self)):
            sel = idx[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.x[sel].float().div_(255.0)
            if self.dynamic is not None:  # resample binary pixels every time an image is served
                x = torch.bernoulli(x, generator=self.dynamic)
            yield x, self.y[sel]


class MNISTDataModule(pl.LightningDataModule):
    def __init__(
        self,
        root: str | None = None,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 10000,
        split_seed: int = 0,
        binarize: str = "none",
        binarize_seed: int = 0,
        labelled: int | None = None,
        labelled_seed: int = 0,
        one_hot: bool = False,
        on_device: bool = False,
        download: bool = True,
        mirrors: list[str] | tuple[str, ...] = MIRRORS,
        seed: int = 0,
    ):
        super().__init__()
        if binarize not in BINARIZE:
            raise GenexpError(f"data.binarize={binarize!r} is not one of {', '.join(BINARIZE)}")
        if not 0 <= val_size < 60000:
            raise GenexpError(f"data.val_size={val_size} must be in [0, 60000)")
        if labelled is not None and not (10 <= labelled <= 60000 - val_size and labelled % 10 == 0):
            raise GenexpError(f"data.labelled={labelled} must be a multiple of 10 between 10 and {60000 - val_size}")
        if batch_size < 1:
            raise GenexpError(f"data.batch_size={batch_size} must be >= 1")
        self.save_hyperparameters()
        self.root = resolve_root(root)
        self.labelled_x = self.labelled_y = None

    # ---- building the splits -------------------------------------------------------------------
    def prepare_data(self):
        load_mnist(self.root, download_missing=self.hparams.download, mirrors=self.hparams.mirrors)

    def _binarize_static(self, images_u8: torch.Tensor, seed: int) -> torch.Tensor:
        """Binary uint8 images in {0, 255}, so that the /255 in BatchLoader gives {0, 1}."""
        p = images_u8.float() / 255.0
        if self.hparams.binarize == "threshold":
            b = p > 0.5
        else:  # static: Bernoulli(p) drawn once with a fixed seed
            b = torch.bernoulli(p, generator=torch.Generator().manual_seed(seed)).bool()
        return b.to(torch.uint8) * 255

    def setup(self, stage: str | None = None):
        if getattr(self, "_splits", None) is not None:
            return
        arrays = load_mnist(self.root, download_missing=self.hparams.download, mirrors=self.hparams.mirrors)
        x = torch.from_numpy(arrays["train_images"].copy()).unsqueeze(1)  # [60000, 1, 28, 28] uint8
        y = torch.from_numpy(arrays["train_labels"].astype("int64"))
        x_test = torch.from_numpy(arrays["test_images"].copy()).unsqueeze(1)
        y_test = torch.from_numpy(arrays["test_labels"].astype("int64"))
        # deterministic train/val split of the official 60k
        perm = torch.randperm(60000, generator=torch.Generator().manual_seed(self.hparams.split_seed))
        n_val = self.hparams.val_size
        splits = {
            "train": (x[perm[n_val:]], y[perm[n_val:]]),
            "val": (x[perm[:n_val]], y[perm[:n_val]]),
            "test": (x_test, y_test),
        }
        if self.hparams.binarize in ("static", "threshold"):
            for i, name in enumerate(splits):
                xs, ys = splits[name]
                splits[name] = (self._binarize_static(xs, self.hparams.binarize_seed + i), ys)
        if self.hparams.labelled is not None:
            self.labelled_x, self.labelled_y = self._labelled_subset(*splits["train"])
        if self.hparams.one_hot:
            splits = {k: (v[0], F.one_hot(v[1], 10).float()) for k, v in splits.items()}
        device = torch.device("cpu")
        if self.hparams.on_device and self.trainer is not None:
            device = self.trainer.strategy.root_device
            splits = {k: (v[0].to(device), v[1].to(device)) for k, v in splits.items()}
        self._splits = splits
        # one stream for dynamic binarization, shared by all loaders so every pass draws new pixels
        rank = self.trainer.global_rank if self.trainer is not None else 0
        self._dynamic = (
            torch.Generator(device=device).manual_seed(self.hparams.binarize_seed * 7919 + rank)
            if self.hparams.binarize == "dynamic"
            else None
        )

    def _labelled_subset(self, x, y):
        """A class-balanced subset of `labelled` training examples, chosen with labelled_seed."""
        per_class = self.hparams.labelled // 10
        g = torch.Generator().manual_seed(self.hparams.labelled_seed)
        idx = torch.cat(
            [
                torch.nonzero(y == c).flatten()[torch.randperm(int((y == c).sum()), generator=g)[:per_class]]
                for c in range(10)
            ]
        )
        return x[idx].float() / 255.0, y[idx]

    # ---- loaders -------------------------------------------------------------------------------
    def _loader(self, split: str, train: bool) -> BatchLoader:
        x, y = self._splits[split]
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        return BatchLoader(
            x,
            y,
            self.hparams.batch_size if train else self.hparams.eval_batch_size,
            shuffle=train,
            drop_last=train,
            seed=self.hparams.seed,
            rank=rank,
            world_size=world,
            dynamic=self._dynamic,
        )

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("val", train=False) if self.hparams.val_size else []

    def test_dataloader(self):
        return self._loader("test", train=False)

    def split_tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split as float images in [0, 1] (binarized as configured) and labels, for metrics."""
        x, y = self._splits[split]
        return x.float() / 255.0, y
