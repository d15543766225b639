"""Image datasets as LightningDataModules: in-memory tensors served by index (no worker processes).

`ImageDataModule` holds everything that does not depend on where the images come from (splits,
binarization, labelled subset, one-hot labels, device placement, DDP sharding); a subclass only says
how to get the arrays (`load_arrays`). Batches are `(x, y)`: x float [B, 1, 28, 28] in [0, 1]
(binarized if asked), y int64 labels or one-hot float [B, n_classes] when `one_hot=True`.
"""

from __future__ import annotations

import math

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from genexp import GenexpError
from genexp.data.info import DataInfo
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


class ImageDataModule(pl.LightningDataModule):
    """The splits of a labelled image set, served by index.

    A subclass sets `name`, `class_names` and `train_pool` (the size of the official training set,
    which is split into train/val here; set it before calling `super().__init__`, which validates
    against it) and implements `load_arrays`.
    """

    name: str = "images"
    class_names: tuple[str, ...] = tuple(str(c) for c in range(10))
    train_pool: int = 0

    def __init__(
        self,
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
        seed: int = 0,
    ):
        super().__init__()
        pool, k = self.train_pool, len(self.class_names)
        if binarize not in BINARIZE:
            raise GenexpError(f"data.binarize={binarize!r} is not one of {', '.join(BINARIZE)}")
        if not 0 <= val_size < pool:
            raise GenexpError(f"data.val_size={val_size} must be in [0, {pool})")
        if labelled is not None and not (k <= labelled <= pool - val_size and labelled % k == 0):
            raise GenexpError(f"data.labelled={labelled} must be a multiple of {k} between {k} and {pool - val_size}")
        if batch_size < 1:
            raise GenexpError(f"data.batch_size={batch_size} must be >= 1")
        # called here, it still records the subclass's arguments too (Lightning walks the __init__ chain)
        self.save_hyperparameters()
        self.labelled_x = self.labelled_y = None
        self._splits = self._raw = self._info = None

    def load_arrays(self) -> dict[str, np.ndarray]:
        """uint8 arrays `train_images` [train_pool, H, W], `train_labels`, `test_images`, `test_labels`."""
        raise NotImplementedError(f"{type(self).__name__} must implement load_arrays()")

    # ---- building the splits -------------------------------------------------------------------
    def _split_perm(self) -> torch.Tensor:
        """The seeded permutation of the training pool: its first val_size indices are the val split."""
        return torch.randperm(self.train_pool, generator=torch.Generator().manual_seed(self.hparams.split_seed))

    def _binarize_static(self, images_u8: torch.Tensor, seed: int) -> torch.Tensor:
        """Binary uint8 images in {0, 255}, so that the /255 in BatchLoader gives {0, 1}."""
        p = images_u8.float() / 255.0
        if self.hparams.binarize == "threshold":
            b = p > 0.5
        else:  # static: Bernoulli(p) drawn once with a fixed seed
            b = torch.bernoulli(p, generator=torch.Generator().manual_seed(seed)).bool()
        return b.to(torch.uint8) * 255

    def setup(self, stage: str | None = None):
        if self._splits is not None:
            return
        arrays = self.load_arrays()
        # copies: the arrays may be read-only views of file bytes, which torch will not wrap
        x = torch.from_numpy(arrays["train_images"].copy()).unsqueeze(1)  # [pool, 1, H, W] uint8
        y = torch.from_numpy(arrays["train_labels"].astype("int64"))
        x_test = torch.from_numpy(arrays["test_images"].copy()).unsqueeze(1)
        y_test = torch.from_numpy(arrays["test_labels"].astype("int64"))
        if len(x) != self.train_pool or len(y) != len(x) or len(y_test) != len(x_test):
            raise GenexpError(f"{self.name}: load_arrays gave {len(x)} training images, expected {self.train_pool}")
        perm, n_val = self._split_perm(), self.hparams.val_size
        splits = {
            "train": (x[perm[n_val:]], y[perm[n_val:]]),
            "val": (x[perm[:n_val]], y[perm[:n_val]]),
            "test": (x_test, y_test),
        }
        # grey levels before binarization: the same tensors when nothing replaces them, so no copy
        raw_x = {k: v[0] for k, v in splits.items()}
        train_x = raw_x["train"]
        self._info = DataInfo(
            name=self.name,
            shape=tuple(train_x.shape[1:]),
            n_classes=len(self.class_names),
            class_names=tuple(self.class_names),
            mean_pixel=float(train_x.sum(dtype=torch.int64)) / (255.0 * max(train_x.numel(), 1)),  # no float copy
            binary=self.hparams.binarize != "none",
        )
        if self.hparams.binarize in ("static", "threshold"):
            for i, name in enumerate(splits):
                xs, ys = splits[name]
                splits[name] = (self._binarize_static(xs, self.hparams.binarize_seed + i), ys)
        if self.hparams.labelled is not None:
            self.labelled_x, self.labelled_y = self._labelled_subset(*splits["train"])
        if self.hparams.one_hot:
            splits = {k: (v[0], F.one_hot(v[1], len(self.class_names)).float()) for k, v in splits.items()}
        # raw copies stay on the CPU: their user binarizes them with a CPU generator
        self._raw = {k: (raw_x[k], v[1]) for k, v in splits.items()}
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
        k = len(self.class_names)
        per_class = self.hparams.labelled // k
        g = torch.Generator().manual_seed(self.hparams.labelled_seed)
        idx = torch.cat(
            [
                torch.nonzero(y == c).flatten()[torch.randperm(int((y == c).sum()), generator=g)[:per_class]]
                for c in range(k)
            ]
        )
        return x[idx].float() / 255.0, y[idx]

    def _require_setup(self):
        if self._splits is None:
            raise GenexpError(f"{type(self).__name__}: call setup() before asking for its data")

    @property
    def info(self) -> DataInfo:
        self._require_setup()
        return self._info

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

    def split_tensors(self, split: str, raw: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split as float images in [0, 1] and labels, for metrics.

        raw=False: the images as stored for serving: static/threshold-binarized if configured, grey
        levels otherwise (dynamic binarization happens per batch, in the loader), on the device.
        raw=True: the grey levels before any binarization, on the CPU, e.g. for a log-likelihood
        evaluator that binarizes the test set itself with a fixed seed whatever data.binarize says.
        """
        self._require_setup()
        x, y = (self._raw if raw else self._splits)[split]
        return x.float() / 255.0, y


class MNISTDataModule(ImageDataModule):
    """The official MNIST IDX files (found, or downloaded and verified, under `root`)."""

    name = "mnist"
    train_pool = 60000

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
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            val_size=val_size,
            split_seed=split_seed,
            binarize=binarize,
            binarize_seed=binarize_seed,
            labelled=labelled,
            labelled_seed=labelled_seed,
            one_hot=one_hot,
            on_device=on_device,
            seed=seed,
        )
        self.root = resolve_root(root)

    def prepare_data(self):
        load_mnist(self.root, download_missing=self.hparams.download, mirrors=self.hparams.mirrors)

    def load_arrays(self) -> dict[str, np.ndarray]:
        return load_mnist(self.root, download_missing=self.hparams.download, mirrors=self.hparams.mirrors)
