"""Datasets as LightningDataModules: in-memory tensors served by index (no worker processes).

`TensorDataModule` holds what any in-memory data needs (loaders, DDP sharding, the resumable position
and random streams); `ImageDataModule` holds everything that does not depend on where the images come from (splits,
binarization, labelled subset, one-hot labels, device placement, DDP sharding); a subclass only says
how to get the arrays (`load_arrays`). Batches are `(x, y)`: x float [B, 1, 28, 28] in [0, 1]
(binarized if asked), y int64 labels or one-hot float [B, n_classes] when `one_hot=True`.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from genexp import GenexpError
from genexp.data.info import DataInfo
from genexp.data.loader import BatchLoader
from genexp.data.mnist import load_mnist, resolve_root, spec_of
from genexp.validate import number

BINARIZE = ("none", "static", "dynamic", "threshold")


class TensorDataModule(pl.LightningDataModule):
    """Splits held in memory as tensors `(x, y)`, served by index (`BatchLoader`), resumable mid-epoch.

    What does not depend on the kind of data: the loaders, the DDP sharding, the position in the epoch
    and the random streams a checkpoint keeps, `split_tensors` and `info`. A subclass fills, in `setup`,
    `self._splits` ({"train", "val", "test"} -> (x, y)), `self._raw` (the same before any binarization),
    `self._info` (a DataInfo) and optionally `self._streams` (dynamic binarization), and sets
    hparams `batch_size`, `eval_batch_size` and `seed` (its constructor's arguments).
    """

    noun = "images"  # what a row of x is, in messages

    def __init__(self) -> None:
        super().__init__()
        self._splits = self._raw = self._info = None
        self._streams: dict[str, torch.Generator] = {}  # the random streams this datamodule owns, by split
        self._pending_streams: dict | None = None
        self._train_loader: BatchLoader | None = None  # the latest, whose position a checkpoint keeps
        self._pending_position: dict | None = None

    def _check_batch_size(self, batch_size: int, n_train: int, world_size: int) -> None:
        """A training batch must fit in a rank's shard of the train split (batches drop the remainder)."""
        per_rank = n_train // world_size
        if batch_size > per_rank:
            ranks = f"; {n_train} over {world_size} ranks" if world_size > 1 else ""
            raise GenexpError(
                f"data.batch_size={batch_size} is larger than the {per_rank} training {self.noun} (per rank): "
                f"must be an integer in [1, {per_rank}]{ranks}"
            )

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
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return BatchLoader(
            x,
            y,
            self.hparams.batch_size if train else self.hparams.eval_batch_size,
            shuffle=train,
            drop_last=train,
            seed=self.hparams.seed,
            rank=rank,
            world_size=world,
            dynamic=self._streams.get(split),
            # the permutation of the trainer's epoch (also right after a resume or a loader reload)
            epoch_fn=(lambda: trainer.current_epoch) if train and trainer is not None else None,
            gather=self._gather if world > 1 else None,
            # a sanity check's batches draw from a copy of the stream: they change nothing that follows
            isolate=(lambda: trainer.sanity_checking) if trainer is not None else None,
            # batches of this epoch whose training step finished (where Lightning resumes)
            trained_fn=(lambda: trainer.fit_loop.epoch_loop.batch_progress.current.processed)
            if train and trainer is not None
            else None,
        )

    # ---- resuming ------------------------------------------------------------------------------------
    # Lightning stores the datamodule's state_dict in every checkpoint and gives it back on every resume,
    # before the train loader exists. It also saves the train loader's own state (BatchLoader is
    # _Stateful), but loads it only when the fit loop is "restarting" (not from an epoch-end checkpoint:
    # FitLoop.restarting) and only into a loader made after the loops were restored (not when
    # configure_optimizers asked for trainer.estimated_stepping_batches, which makes the loader
    # earlier). So the position in the epoch travels here too, and is handed to the next train loader.
    def state_dict(self) -> dict:
        """{"train_position": {"epoch", "served"} of the current train loader (the same on every rank),
        "dynamic": {split: uint8 [world_size, L]}: every rank's state of every random stream}. Under DDP
        every rank must call it (it gathers): Lightning does, in `trainer.save_checkpoint`."""
        state = {}
        if self._train_loader is not None:
            state["train_position"] = self._train_loader.position()
        if self._streams:
            world = self.trainer.world_size if self.trainer is not None else 1
            states = {split: g.get_state() for split, g in self._streams.items()}
            state["dynamic"] = {k: self._gather(v) if world > 1 else v[None] for k, v in states.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        """Each random stream goes on from this rank's saved state (made by `setup` if it has not run yet);
        the next train loader starts where the saved one stood."""
        if "train_position" in state:
            self._pending_position = state["train_position"]
        if self._pending_position is not None and self._train_loader is not None:
            self._train_loader.load_state_dict({**self._pending_position, "dynamic": None})
            self._pending_position = None
        if not self._streams:
            self._pending_streams = state if state.get("dynamic") else None
            return
        self._pending_streams = None
        rank = self.trainer.global_rank if self.trainer is not None else 0
        for split, states in (state.get("dynamic") or {}).items():
            if split in self._streams:
                self._streams[split].set_state(states[rank % len(states)].cpu().clone())

    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        """[world_size, *t.shape] on the CPU: every rank's `t` (on the strategy's device: NCCL needs CUDA)."""
        strategy = self.trainer.strategy
        return strategy.all_gather(t.to(strategy.root_device)).cpu()

    def train_dataloader(self):
        self._train_loader = self._loader("train", train=True)
        if self._pending_position is not None:  # resuming: continue the saved epoch
            self._train_loader.load_state_dict({**self._pending_position, "dynamic": None})
            self._pending_position = None
        return self._train_loader

    def val_dataloader(self):
        return self._loader("val", train=False) if len(self._splits["val"][0]) else []

    def test_dataloader(self):
        return self._loader("test", train=False)

    def split_tensors(self, split: str, raw: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split (x, y) as served (raw=False, on the device) or before any binarization (raw=True,
        on the CPU)."""
        self._require_setup()
        return self._raw[split] if raw else self._splits[split]


class ImageDataModule(TensorDataModule):
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
        feature_net: str = "mnist_cnn",
        seed: int = 0,
    ):
        """feature_net: the shipped feature network of this dataset (genexp.metrics.features) that the
        sample metrics use (conf/eval/generative.yaml reads it as ${data.feature_net})."""
        super().__init__()
        pool, k = self.train_pool, len(self.class_names)
        if binarize not in BINARIZE:
            raise GenexpError(f"data.binarize={binarize!r} is not one of {', '.join(BINARIZE)}")
        if not 0 <= val_size < pool:
            raise GenexpError(f"data.val_size={val_size} must be in [0, {pool})")
        if labelled is not None and not (k <= labelled <= pool - val_size and labelled % k == 0):
            raise GenexpError(f"data.labelled={labelled} must be a multiple of {k} between {k} and {pool - val_size}")
        number("data.batch_size", batch_size, 1, integer=True)
        number("data.eval_batch_size", eval_batch_size, 1, integer=True)
        self._check_batch_size(batch_size, pool - val_size, world_size=1)  # again per rank at setup
        # called here, it still records the subclass's arguments too (Lightning walks the __init__ chain)
        self.save_hyperparameters()
        self.labelled_x = self.labelled_y = None

    def load_arrays(self) -> dict[str, np.ndarray]:
        """uint8 arrays `train_images` [train_pool, H, W], `train_labels`, `test_images`, `test_labels`."""
        raise NotImplementedError(f"{type(self).__name__} must implement load_arrays()")

    # ---- building the splits -------------------------------------------------------------------
    def _split_perm(self) -> torch.Tensor:
        """The seeded permutation of the training pool: its first val_size indices are the val split."""
        return torch.randperm(self.train_pool, generator=torch.Generator().manual_seed(self.hparams.split_seed))

    def _binarize_static(self, images_u8: torch.Tensor, seed: int) -> torch.Tensor:
        """Binary uint8 images in {0, 255}, so that the /255 of setup gives {0, 1}."""
        p = images_u8.float() / 255.0
        if self.hparams.binarize == "threshold":
            b = p > 0.5
        else:  # static: Bernoulli(p) drawn once with a fixed seed
            b = torch.bernoulli(p, generator=torch.Generator().manual_seed(seed)).bool()
        return b.to(torch.uint8) * 255

    def setup(self, stage: str | None = None):
        world = self.trainer.world_size if self.trainer is not None else 1
        self._check_batch_size(self.hparams.batch_size, self.train_pool - self.hparams.val_size, world)
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
            feature_net=self.hparams.feature_net,
        )
        if self.hparams.binarize in ("static", "threshold"):
            for i, name in enumerate(splits):
                xs, ys = splits[name]
                splits[name] = (self._binarize_static(xs, self.hparams.binarize_seed + i), ys)
        if self.hparams.labelled is not None:
            self.labelled_x, self.labelled_y = self._labelled_subset(*splits["train"])
        # served as float in [0, 1], converted once here (4x the bytes of uint8: 190 MB for MNIST) rather
        # than per batch, which cost 5% of an RBM update on a CPU
        splits = {k: (v[0].float().div_(255.0), v[1]) for k, v in splits.items()}
        if self.hparams.one_hot:
            splits = {k: (v[0], F.one_hot(v[1], len(self.class_names)).float()) for k, v in splits.items()}
        # raw copies stay on the CPU: their user binarizes them with a CPU generator
        self._raw = {k: (raw_x[k], v[1]) for k, v in splits.items()}
        device = torch.device("cpu")
        if self.hparams.on_device and self.trainer is not None:
            device = self.trainer.strategy.root_device
            splits = {k: (v[0].to(device), v[1].to(device)) for k, v in splits.items()}
        self._splits = splits
        # dynamic binarization: one stream per split and rank, each going on across passes (every pass
        # draws new pixels). Only training batches draw from the train stream, so how often validation
        # runs (or a resume that skips one, or a sanity check) never changes the training data.
        rank = self.trainer.global_rank if self.trainer is not None else 0
        if self.hparams.binarize == "dynamic":
            seed = self.hparams.binarize_seed * 7919 + rank
            self._streams = {
                split: torch.Generator(device=device).manual_seed(seed + 104729 * i)
                for i, split in enumerate(("train", "val", "test"))
            }
        if self._pending_streams is not None:  # a checkpoint's states, loaded before setup
            self.load_state_dict({"dynamic": self._pending_streams["dynamic"]})

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

    def split_tensors(self, split: str, raw: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split as float images in [0, 1] and labels, for metrics.

        raw=False: the images as stored for serving: static/threshold-binarized if configured, grey
        levels otherwise (dynamic binarization happens per batch, in the loader), on the device.
        raw=True: the grey levels before any binarization, on the CPU, e.g. for a log-likelihood
        evaluator that binarizes the test set itself with a fixed seed whatever data.binarize says.
        """
        self._require_setup()
        if raw:
            x, y = self._raw[split]
            return x.float() / 255.0, y
        return self._splits[split]


class MNISTDataModule(ImageDataModule):
    """A dataset in the official MNIST IDX layout (`dataset`: mnist | fashion_mnist, genexp.data.mnist),
    found, or downloaded and verified, where `resolve_root` finds it."""

    train_pool = 60000

    def __init__(
        self,
        root: str | None = None,
        download: bool = True,
        mirrors: list[str] | tuple[str, ...] | None = None,
        dataset: str = "mnist",
        class_names: list[str] | None = None,
        **common,
    ):
        """`mirrors`: null for the dataset's official ones; `class_names`: null for 0..9 (shown in pictures);
        `common`: ImageDataModule's arguments (batch_size, binarize, val_size, feature_net, ...)."""
        spec = spec_of(dataset)  # an unknown dataset fails here, in one line
        self.name = dataset
        if class_names is not None:
            self.class_names = tuple(str(c) for c in class_names)
            if len(self.class_names) != 10:
                raise GenexpError(f"data.class_names has {len(self.class_names)} names: {spec.title} has 10 classes")
        super().__init__(**common)
        self.root = resolve_root(root, spec)

    def prepare_data(self):
        self.load_arrays()

    def load_arrays(self) -> dict[str, np.ndarray]:
        hp = self.hparams
        return load_mnist(self.root, download_missing=hp.download, mirrors=hp.mirrors, dataset=hp.dataset)
