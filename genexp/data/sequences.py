"""Piano-roll sequences as datamodules: Bach chorales (music21's corpus, or a published JSB-format pickle)
and tiny synthetic ones for the fast tests.

Batches are `(x, lengths)`: x float [B, T_max, 88] in {0, 1}, each piece followed by empty frames up to
the split's longest, and lengths int64 [B] (DataInfo kind "sequence", shape (T_max, 88)). With
`frames: true` the frames of all pieces are the rows instead, x [B, 88] and y zeros (kind "vector"): a
model of single frames (model=rbm model.n_visible=88) trains and is scored on the same frames.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from genexp import GenexpError
from genexp.ckpt import atomic_write
from genexp.data import piano
from genexp.data.datamodule import TensorDataModule
from genexp.data.info import DataInfo
from genexp.validate import fail, flag, number

log = logging.getLogger(__name__)

CACHE = "bach_chorales_v1.npz"  # the encoded corpus; v1: piano.py's encoding (quarter notes, ties merged)
ENV = "GENEXP_BACH_DIR"
DEFAULT_DIR = "data/bach_chorales"


class SequenceDataModule(TensorDataModule):
    """Pieces (uint8 rolls [T, 88]) in train/val/test, from `load_pieces`; see the module docstring."""

    name = "sequences"
    noun = "pieces"

    def __init__(self, batch_size: int, eval_batch_size: int, frames: bool, on_device: bool, seed: int):
        super().__init__()
        number("data.batch_size", batch_size, 1, integer=True)
        number("data.eval_batch_size", eval_batch_size, 1, integer=True)
        flag("data.frames", frames)
        flag("data.on_device", on_device)
        self.noun = "frames" if frames else "pieces"
        self.save_hyperparameters()

    def load_pieces(self) -> dict[str, list[np.ndarray]]:
        """{"train", "val", "test"} -> lists of uint8 rolls [T, 88]."""
        raise NotImplementedError(f"{type(self).__name__} must implement load_pieces()")

    def setup(self, stage: str | None = None):
        world = self.trainer.world_size if self.trainer is not None else 1
        if self._splits is None:
            pieces = self.load_pieces()
            t_max = max(len(r) for rolls in pieces.values() for r in rolls)
            splits = {k: self._tensors(rolls, t_max) for k, rolls in pieces.items()}
            train = np.concatenate(pieces["train"])
            kind, shape = ("vector", (piano.N_KEYS,)) if self.hparams.frames else ("sequence", (t_max, piano.N_KEYS))
            self._info = DataInfo(
                name=self.name,
                shape=shape,
                n_classes=0,
                class_names=(),
                mean_pixel=float(train.mean()),  # the fraction of keys on, over the training frames
                binary=True,
                feature_net=None,
                kind=kind,
            )
            self._raw = splits  # binary already: nothing to binarize (the CPU copies)
            if self.hparams.on_device and self.trainer is not None:
                device = self.trainer.strategy.root_device
                splits = {k: (x.to(device), y.to(device)) for k, (x, y) in splits.items()}
            self._splits = splits
            log.info(
                "%s: %s pieces (train/val/test), %d training frames, longest %d",
                self.name,
                "/".join(str(len(pieces[k])) for k in ("train", "val", "test")),
                len(train),
                t_max,
            )
        self._check_batch_size(self.hparams.batch_size, len(self._splits["train"][0]), world)

    def _tensors(self, rolls: list[np.ndarray], t_max: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.hparams.frames:  # every frame a row
            x = torch.from_numpy(np.concatenate(rolls) if rolls else np.zeros((0, piano.N_KEYS), np.uint8))
            return x.float(), torch.zeros(len(x), dtype=torch.int64)
        x = torch.zeros(len(rolls), t_max, piano.N_KEYS)  # [N, T_max, 88], empty after each piece's end
        for i, r in enumerate(rolls):
            x[i, : len(r)] = torch.from_numpy(r).float()
        return x, torch.tensor([len(r) for r in rolls], dtype=torch.int64)


def split_by_piece(n: int, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Indices of a seeded permutation of n pieces: the first round(n * test_fraction) are the test split,
    the next round(n * val_fraction) the val split, the rest train."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    return {"test": perm[:n_test], "val": perm[n_test : n_test + n_val], "train": perm[n_test + n_val :]}


def resolve_root(root: str | os.PathLike | None) -> Path:
    """The cache's folder: data.root, else $GENEXP_BACH_DIR, else ./data/bach_chorales."""
    root = root or os.environ.get(ENV) or DEFAULT_DIR
    return Path(root).expanduser().resolve()


class BachChoralesDataModule(SequenceDataModule):
    """music21's four-part Bach chorales (about 360; genexp.data.piano) encoded once into
    `<root>/bach_chorales_v1.npz` (atomic write) and split by piece with `split_seed`; or, with `path`, a
    published JSB-format pickle with its own train/valid/test split."""

    name = "bach_chorales"

    def __init__(
        self,
        root: str | None = None,
        path: str | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        feature_net: str | None = None,
        batch_size: int = 8,
        eval_batch_size: int = 64,
        frames: bool = False,
        on_device: bool = False,
        seed: int = 0,
    ):
        """`feature_net`: accepted (and must be null) so that configs reading ${data.feature_net} compose:
        no feature network scores piano rolls."""
        number("data.val_fraction", val_fraction, 0, 1, high_open=True)
        number("data.test_fraction", test_fraction, 0, 1, low_open=True, high_open=True)
        if val_fraction + test_fraction >= 1:
            fail("data.val_fraction", val_fraction, f"must be < 1 - data.test_fraction ({test_fraction})")
        number("data.split_seed", split_seed, 0, integer=True)
        if feature_net is not None:
            fail("data.feature_net", feature_net, "must be null (no feature network scores piano rolls)")
        super().__init__(batch_size, eval_batch_size, frames, on_device, seed)
        self.root = resolve_root(root)
        if path is not None and not Path(path).expanduser().is_file():
            raise GenexpError(f"data.path={path!r}: no such file (a JSB-format pickle, or null for music21's corpus)")

    @property
    def cache(self) -> Path:
        return self.root / CACHE

    def prepare_data(self):
        """Build the cache if missing, or read the pickle (a bad one is refused before anything is written)."""
        if self.hparams.path is not None:
            self._pickled = piano.read_pickle(self.hparams.path)
        elif not self.cache.is_file():
            build_cache(self.cache)

    def load_pieces(self) -> dict[str, list[np.ndarray]]:
        hp = self.hparams
        if hp.path is not None:
            pieces = getattr(self, "_pickled", None) or piano.read_pickle(hp.path)
            return {"train": pieces["train"], "val": pieces["valid"], "test": pieces["test"]}
        if not self.cache.is_file():
            build_cache(self.cache)
        _, rolls = read_cache(self.cache)
        idx = split_by_piece(len(rolls), hp.val_fraction, hp.test_fraction, hp.split_seed)
        return {k: [rolls[i] for i in sorted(v)] for k, v in idx.items()}


def build_cache(path: Path) -> Path:
    """Encode music21's Bach chorales and write them to `path` (npz: rolls [sum T, 88] uint8, lengths,
    names), atomically: a reader sees no file or a whole one."""
    log.info("bach_chorales: encoding music21's Bach chorales into %s (once; a few minutes)", path)
    names, rolls = piano.bach_corpus()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "rolls": np.concatenate(rolls),
            "lengths": np.array([len(r) for r in rolls]),
            "names": np.array(names),
        }
        atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
    except OSError as e:
        raise GenexpError(
            f"data.root={str(path.parent)!r}: cannot write the cache {path.name} ({e.strerror or e})"
        ) from None
    log.info("bach_chorales: %d chorales, %d frames", len(rolls), sum(len(r) for r in rolls))
    return path


def read_cache(path: Path) -> tuple[list[str], list[np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as f:
            rolls, lengths, names = f["rolls"], f["lengths"], [str(n) for n in f["names"]]
    except Exception as e:  # noqa: BLE001 - unreadable or truncated: one line
        raise GenexpError(f"{path}: unreadable cache ({type(e).__name__}: {e}); delete it to rebuild it") from None
    ok = (
        rolls.ndim == 2
        and rolls.shape[1] == piano.N_KEYS
        and len(lengths) == len(names)
        and lengths.sum() == len(rolls)
    )
    if not ok or not len(lengths) or (lengths <= 0).any():
        raise GenexpError(
            f"{path}: inconsistent cache (shapes {rolls.shape}, {len(lengths)} lengths); delete it to rebuild it"
        )
    return names, np.split(rolls.astype(np.uint8), np.cumsum(lengths)[:-1])


class FakeSequenceDataModule(SequenceDataModule):
    """Tiny synthetic "chorales" for the fast tier, all determined by split_seed: each piece walks a fixed
    cycle of four triads (I-IV-V-vi of C major, in the middle register), holding each chord 1 or 2 frames,
    with a soprano note on top that follows the chord; lengths in [min_length, max_length]."""

    name = "fake_sequences"
    CHORDS = ((48, 60, 64, 67), (53, 60, 65, 69), (55, 59, 62, 67), (57, 60, 64, 69))

    def __init__(
        self,
        n_train: int = 24,
        n_val: int = 6,
        n_test: int = 6,
        min_length: int = 8,
        max_length: int = 16,
        split_seed: int = 0,
        root: str | None = None,
        feature_net: str | None = None,
        batch_size: int = 4,
        eval_batch_size: int = 8,
        frames: bool = False,
        on_device: bool = False,
        seed: int = 0,
    ):
        """`root` and `feature_net` are accepted and ignored, so configs that read them compose."""
        for key, value, low in (("n_train", n_train, 1), ("n_val", n_val, 0), ("n_test", n_test, 1)):
            number(f"data.{key}", value, low, integer=True)
        number("data.min_length", min_length, 1, integer=True)
        number("data.max_length", max_length, min_length, integer=True, hint="at least data.min_length")
        super().__init__(batch_size, eval_batch_size, frames, on_device, seed)

    def load_pieces(self) -> dict[str, list[np.ndarray]]:
        hp = self.hparams
        rng = np.random.default_rng(hp.split_seed)
        sizes = {"train": hp.n_train, "val": hp.n_val, "test": hp.n_test}
        return {k: [self._piece(rng) for _ in range(n)] for k, n in sizes.items()}

    def _piece(self, rng: np.random.Generator) -> np.ndarray:
        length = int(rng.integers(self.hparams.min_length, self.hparams.max_length + 1))
        roll = np.zeros((length, piano.N_KEYS), np.uint8)
        chord, t = int(rng.integers(len(self.CHORDS))), 0
        while t < length:
            hold = int(rng.integers(1, 3))
            notes = self.CHORDS[chord] + (self.CHORDS[chord][1] + 12 + int(rng.integers(0, 2)) * 4,)
            roll[t : t + hold, [n - piano.LOWEST for n in notes]] = 1
            chord, t = (chord + 1) % len(self.CHORDS), t + hold
        return roll
