"""Pictures of any model through its contracts: sample grids (`sample`), filter mosaics (`filters`),
Markov chains (`gibbs_chain`), reconstructions (`reconstruct`), a classifier's mistakes; piano rolls
and MIDI files of sequence samples. The image pictures act on image data only (`image_data`)."""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path

import pytorch_lightning as pl
import torch

from genexp import viz
from genexp.data import piano
from genexp.models.base import GenerativeModule

log = logging.getLogger(__name__)


@contextlib.contextmanager
def eval_mode(pl_module):
    """The module in eval mode (BatchNorm, dropout) inside, its previous mode restored afterwards."""
    was_training = pl_module.training
    pl_module.eval()
    try:
        yield
    finally:
        pl_module.train(was_training)


def image_data(trainer) -> bool:
    """Whether the run's data are images (DataInfo.kind), or unknown (no datamodule): the pictures of
    images are drawn only then (e.g. an RBM on the frames of piano rolls gets none)."""
    info = getattr(trainer.datamodule, "info", None) if trainer.datamodule is not None else None
    return info is None or info.kind == "image"


class SampleGrid(pl.Callback):
    """Every `every_n_epochs`, a grid of `sample()` with fixed noise: one row per class for conditional
    models. The noise is fixed by a generator seed and the labels by the layout, both kept in the
    checkpoint (`state_dict`), so grids stay comparable across resume."""

    def __init__(self, every_n_epochs: int = 1, per_class: int = 10, seed: int = 1234):
        self.every_n_epochs, self.per_class, self.seed = every_n_epochs, per_class, seed

    def state_dict(self):
        return {"seed": self.seed, "per_class": self.per_class}

    def load_state_dict(self, state):
        self.seed, self.per_class = state["seed"], state["per_class"]

    @torch.no_grad()
    def grid(self, pl_module: GenerativeModule):
        labels = torch.arange(10, device=pl_module.device).repeat_interleave(self.per_class)
        g = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        with eval_mode(pl_module):
            images = pl_module.sample(len(labels), labels=labels, generator=g)
        return viz.grid(images, nrow=self.per_class, scale=2)

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        if not isinstance(pl_module, GenerativeModule) or self.every_n_epochs <= 0 or not image_data(trainer):
            return
        if epoch % self.every_n_epochs and epoch != trainer.max_epochs:
            return
        image = self.grid(pl_module)  # every rank samples (cheap); rank 0 writes
        if trainer.is_global_zero:
            viz.picture(trainer, image, f"epoch_{epoch:03d}.png", "samples")


class FilterMosaic(pl.Callback):
    """The model's first-layer filters (`filters()` -> [n_pixels, n_units]) as square tiles, every
    `every_n_epochs` and at the last epoch (the deeplearning.net tutorial's filter pictures)."""

    def __init__(self, every_n_epochs: int = 1):
        self.every_n_epochs = every_n_epochs

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        if not trainer.is_global_zero or self.every_n_epochs <= 0 or not image_data(trainer):
            return
        if epoch % self.every_n_epochs and epoch != trainer.max_epochs:  # the final filters always
            return
        w = pl_module.filters()
        side = math.isqrt(w.shape[0])
        if side * side == w.shape[0]:
            viz.picture(trainer, viz.tile_filters(w, (side, side)), f"filters_epoch_{epoch:03d}.png", "filters")


class MarkovChains(pl.Callback):
    """At the end of training: `n_chains` chains started at consecutive test images, one row every
    `steps_between` Gibbs steps (`gibbs_chain`; the chapter's negative-particle figure)."""

    def __init__(self, n_chains: int = 20, n_rows: int = 10, steps_between: int = 1000, seed: int = 0):
        self.n_chains, self.n_rows, self.steps_between, self.seed = n_chains, n_rows, steps_between, seed

    def on_train_end(self, trainer, pl_module):
        if not trainer.is_global_zero or self.n_chains <= 0 or trainer.datamodule is None or not image_data(trainer):
            return
        x = trainer.datamodule.split_tensors("test")[0][: self.n_chains].to(pl_module.device)
        g = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        with torch.no_grad(), eval_mode(pl_module):
            rows = pl_module.gibbs_chain(x, self.n_rows, self.steps_between, g)  # [rows, C, ...]
        viz.picture(
            trainer, viz.grid(rows.reshape(-1, *x.shape[1:]), nrow=len(x), pad=1), "negative_particles.png", "chains"
        )
        log.info("Markov chains: %d chains, %d rows %d Gibbs steps apart", len(x), self.n_rows, self.steps_between)


class Reconstructions(pl.Callback):
    """At test end: the first `n` test images and the model's `reconstruct()` of them (the layout of
    Hinton & Salakhutdinov 2006, Fig. 2A)."""

    def __init__(self, n: int = 10):
        self.n = n

    def on_test_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero or trainer.datamodule is None or not image_data(trainer):
            return
        x = trainer.datamodule.split_tensors("test")[0][: self.n].to(pl_module.device)
        with torch.no_grad(), eval_mode(pl_module):
            recon = pl_module.reconstruct(x)
        viz.picture(
            trainer, viz.grid(torch.cat([x, recon]), nrow=len(x), scale=2), "reconstructions.png", "reconstructions"
        )


class ClassifierErrors(pl.Callback):
    """At test end: the first `n` misclassified test images of a classifier (`classify(x)` -> logits), each
    captioned "true as predicted". Stops scanning the test split once it has `n`."""

    def __init__(self, n: int = 100):
        self.n = n

    def on_test_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero or trainer.datamodule is None:
            return
        info = trainer.datamodule.info
        x, y = (t.cpu() for t in trainer.datamodule.split_tensors("test"))  # on the GPU with data.on_device
        y = y.argmax(1) if y.ndim == 2 else y
        wrong, truth, guess, found = [], [], [], 0
        with torch.no_grad(), eval_mode(pl_module):
            for xb, yb in zip(x.split(250), y.split(250), strict=True):
                pred = pl_module.classify(xb.to(pl_module.device)).argmax(1).cpu()
                miss = pred != yb
                wrong.append(xb[miss]), truth.append(yb[miss]), guess.append(pred[miss])
                found += int(miss.sum())
                if found >= self.n:
                    break
        wrong, truth, guess = (torch.cat(t)[: self.n] for t in (wrong, truth, guess))
        if len(wrong):
            names = info.class_names
            captions = [f"{names[t]} as {names[p]}" for t, p in zip(truth.tolist(), guess.tolist(), strict=True)]
            image = viz.captioned_grid(wrong.reshape(len(wrong), *info.shape), captions, nrow=10)
            viz.picture(trainer, image, "test_errors.png", "test/errors")


def _last_or_every(trainer, every_n_epochs: int) -> int | None:
    """The 1-based epoch if a picture is due at this epoch end (every n, and always the last), else None."""
    epoch = trainer.current_epoch + 1
    if every_n_epochs <= 0 or (epoch % every_n_epochs and epoch != trainer.max_epochs):
        return None
    return epoch


class StagePairs(pl.Callback):
    """A stacked GAN's stage-I (14x14, shown at 28x28) and stage-II images of the same noise and label
    side by side (`sample_stages`), one row per class, every `every_n_epochs` and at the last epoch."""

    def __init__(self, every_n_epochs: int = 1, per_class: int = 6, seed: int = 1234):
        self.every_n_epochs, self.per_class, self.seed = every_n_epochs, per_class, seed

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = _last_or_every(trainer, self.every_n_epochs)
        if epoch is None or not trainer.is_global_zero or not hasattr(pl_module, "sample_stages"):
            return
        labels = torch.arange(10, device=pl_module.device).repeat_interleave(self.per_class)
        g = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        with torch.no_grad(), eval_mode(pl_module):
            coarse, fine = pl_module.sample_stages(len(labels), labels, g)
        coarse = torch.nn.functional.interpolate(coarse, size=fine.shape[-2:], mode="nearest")
        pairs = torch.stack([coarse, fine], 1).reshape(-1, *fine.shape[1:])  # s1, s2, s1, s2, ...
        viz.picture(
            trainer, viz.grid(pairs, nrow=2 * self.per_class, scale=2), f"stages_epoch_{epoch:03d}.png", "stages"
        )


class CodeTraversal(pl.Callback):
    """InfoGAN's figure: for each continuous code, one row per categorical value, the code swept over
    `values` with the other continuous codes at 0 and one fixed noise vector (`generate_with_codes`)."""

    def __init__(
        self, every_n_epochs: int = 1, values: tuple[float, ...] = (-2, -1, -0.5, 0, 0.5, 1, 2), seed: int = 0
    ):
        self.every_n_epochs, self.values, self.seed = every_n_epochs, list(values), seed

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = _last_or_every(trainer, self.every_n_epochs)
        if epoch is None or not trainer.is_global_zero or not hasattr(pl_module, "generate_with_codes"):
            return
        h, dev = pl_module.hparams, pl_module.device
        cols = len(self.values)
        c_cat = torch.arange(h.n_cat, device=dev).repeat_interleave(cols)
        z = pl_module.sample_noise(1, torch.Generator(device=dev).manual_seed(self.seed)).expand(len(c_cat), -1)
        for j in range(max(h.n_cont, 1)):
            c_cont = torch.zeros(len(c_cat), h.n_cont, device=dev)
            if h.n_cont:
                c_cont[:, j] = torch.tensor(self.values, device=dev).repeat(h.n_cat)
            with eval_mode(pl_module):
                images = pl_module.generate_with_codes(z, c_cat, c_cont)
            viz.picture(trainer, viz.grid(images, nrow=cols, scale=2), f"codes_cont{j}_epoch_{epoch:03d}.png", "codes")


def piano_roll_image(rolls: torch.Tensor, key_px: int = 3, frame_px: int = 6, gap: int = 4) -> tuple:
    """Rolls [n, T, 88] in [0, 1] as one uint8 picture: each roll a band of rows (one per key, `key_px`
    pixels high, the highest key on top), time left to right (`frame_px` pixels a frame), notes black on
    white, the C of every octave a faint line; bands separated by `gap` grey rows. Returns (image, the
    lowest and highest MIDI note shown): the bands are cropped to the keys any roll uses."""
    x = rolls.detach().float().cpu().clamp(0, 1)
    used = torch.nonzero(x.amax((0, 1)) > 0).flatten()
    lo, hi = (int(used.min()) - 2, int(used.max()) + 3) if len(used) else (0, x.shape[-1])
    lo, hi = max(lo, 0), min(hi, x.shape[-1])
    bands = []
    for roll in x:
        band = 1.0 - roll[:, lo:hi].T.flip(0)  # [keys, T]: high keys on top, ink = 0
        c_rows = [hi - 1 - k for k in range(lo, hi) if (k + piano.LOWEST) % 12 == 0]  # the Cs
        band[c_rows] = torch.minimum(band[c_rows], torch.tensor(0.85))
        bands += [band, torch.full((gap, band.shape[1]), 0.6)]
    image = (torch.cat(bands[:-1]).numpy() * 255).round().astype("uint8")
    return image.repeat(key_px, 0).repeat(frame_px, 1), (lo + piano.LOWEST, hi - 1 + piano.LOWEST)


class PianoRolls(pl.Callback):
    """Sequence models: every `every_n_epochs` (and at the last epoch) the piano rolls of `n` samples with
    fixed noise (`samples/piano_rolls_epoch_<e>.png`, sent to the loggers); at the end of training the
    first `midi` of them as MIDI files (`samples/sample_<i>.mid`, a quarter note per frame at `bpm`)."""

    def __init__(self, every_n_epochs: int = 1, n: int = 4, midi: int = 2, bpm: float = 80.0, seed: int = 1234):
        self.every_n_epochs, self.n, self.midi, self.bpm, self.seed = every_n_epochs, n, midi, bpm, seed

    @torch.no_grad()
    def rolls(self, pl_module) -> torch.Tensor:
        g = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        with eval_mode(pl_module):
            return pl_module.sample(self.n, generator=g)

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = _last_or_every(trainer, self.every_n_epochs)
        if epoch is None or not trainer.is_global_zero or not isinstance(pl_module, GenerativeModule):
            return
        image, _ = piano_roll_image(self.rolls(pl_module))
        viz.picture(trainer, image, f"piano_rolls_epoch_{epoch:03d}.png", "piano_rolls")

    def on_train_end(self, trainer, pl_module):
        if not trainer.is_global_zero or self.midi <= 0 or not isinstance(pl_module, GenerativeModule):
            return
        rolls = self.rolls(pl_module)[: self.midi].cpu().numpy()
        folder = Path(trainer.default_root_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        for i, roll in enumerate(rolls):
            piano.write_midi(roll, folder / f"sample_{i}.mid", bpm=self.bpm)
        log.info("MIDI: %d samples written to %s", len(rolls), folder)
