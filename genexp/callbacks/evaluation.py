"""Evaluation of any model through its contracts, switched on per model family in conf/eval/:
sample quality on a shipped feature network, log-likelihood on the fixed binarized set, the
free-energy gap, the PCA baseline of an autoencoder; a sequence model's log-likelihood per time step
and frame-level accuracy."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytorch_lightning as pl
import torch

from genexp.callbacks.pictures import eval_mode, image_data
from genexp.metrics import likelihood
from genexp.metrics.features import feature_net_info, load_feature_net
from genexp.metrics.pca import pca_recon_sq_error
from genexp.metrics.sample_quality import classify, code_information, generate, nearest_neighbour_check, sample_quality
from genexp.metrics.sequence import frame_counts
from genexp.models.base import GenerativeModule
from genexp.record import write_json

log = logging.getLogger(__name__)


def _log(pl_module, metrics: dict[str, float], prefix: str) -> None:
    for k, v in metrics.items():
        pl_module.log(f"{prefix}/{k}", float(v), rank_zero_only=True)


class SampleQuality(pl.Callback):
    """Score `n_samples` samples (balanced labels, seeded) against the real split on the features of
    the shipped network `feature_net`: `fid_<feature_net>`, cond_acc (conditional models), class
    fractions and modes covered, k-NN precision/recall; at test end against the test split, and (when
    `val_samples` > 0) at each training epoch's end against the val split, so a GAN has a validation metric
    (`val/fid`: that FID whatever the dataset's network; conf/eval/generative.yaml takes `feature_net`
    from the data config).
    `nn_samples` > 0 adds the nearest-training-neighbour check (are samples copies?)."""

    def __init__(
        self,
        n_samples: int = 10000,
        val_samples: int = 0,
        nn_samples: int = 0,
        batch_size: int = 500,
        seed: int = 0,
        feature_net: str = "mnist_cnn",
    ):
        self.n_samples, self.val_samples, self.nn_samples = n_samples, val_samples, nn_samples
        self.batch_size, self.seed, self.feature_net = batch_size, seed, feature_net
        self._real: dict[str, torch.Tensor] = {}
        if feature_net is not None:  # null: the data have no feature network (piano rolls): nothing scored
            feature_net_info(feature_net)  # an unknown name fails before training

    def _active(self, trainer, pl_module) -> bool:
        return isinstance(pl_module, GenerativeModule) and self.feature_net is not None and image_data(trainer)

    def provenance(self) -> dict:
        if self.feature_net is None:
            return {}
        info = feature_net_info(self.feature_net)
        return {"feature_net": {"name": self.feature_net, "sha256": info["sha256"], "test_acc": info["test_acc"]}}

    def _score(self, trainer, pl_module, split: str, n: int) -> dict[str, float]:
        net = load_feature_net(self.feature_net, pl_module.device)
        if split not in self._real:  # the real features of a split never change: once per run
            x, y = trainer.datamodule.split_tensors(split)
            y = y.argmax(1) if y.ndim == 2 else y
            self._real[split] = (classify(net, x[:n])[0], y[:n].cpu())
        with eval_mode(pl_module):
            fake, labels = generate(pl_module, n, self.batch_size, self.seed, progress=False)
        f_fake, logits = classify(net, fake)
        conditional = labels if pl_module.is_conditional else None
        f_real, y_real = self._real[split]
        metrics = sample_quality(f_real, f_fake, logits.argmax(1), conditional, y_real=y_real)
        metrics[f"fid_{self.feature_net}"] = metrics.pop("fid")
        if split == "test" and self.nn_samples > 0:
            dm = trainer.datamodule
            metrics |= nearest_neighbour_check(
                fake[: self.nn_samples].cpu(),
                dm.split_tensors("train")[0],
                dm.split_tensors("test")[0][: self.nn_samples],
            )
        return metrics

    def on_train_epoch_end(self, trainer, pl_module):
        # at the end of each training epoch rather than of validation: a GAN has no validation_step,
        # and Lightning skips the validation loop (and its hooks) for such a model
        if not self._active(trainer, pl_module) or self.val_samples <= 0:
            return
        metrics = self._score(trainer, pl_module, "val", self.val_samples) if trainer.is_global_zero else None
        # the same monitored value on every rank: a checkpoint callback that ranks on rank 0 only would
        # make the ranks' collective calls differ (a DDP deadlock)
        metrics = trainer.strategy.broadcast(metrics, src=0)
        # val/fid: the same number under a name that does not depend on the dataset, the GANs' val_metric
        for k, v in {**metrics, "fid": metrics[f"fid_{self.feature_net}"]}.items():
            pl_module.log(f"val/{k}", float(v))

    def on_test_epoch_end(self, trainer, pl_module):
        if self._active(trainer, pl_module) and self.n_samples > 0 and trainer.is_global_zero:
            _log(pl_module, self._score(trainer, pl_module, "test", self.n_samples), "test")


class CodePurity(pl.Callback):
    """For a model with a categorical latent code (`code_posterior(x)` -> q(c | x) [B, K], InfoGAN): each
    image gets its most probable code, and each code value is mapped to the digit most of the first
    `n_train` training images with that code carry (majority vote), and a split labelled through that map.
    At each training epoch's end the val split: `val/code_error` and `val/code_mi` (I(x; c) of q on the val
    images, which uses no label: a choice between runs may look at it); at test end the test split:
    `test/code_error` (Chen et al. 2016 report 5% on MNIST), `test/code_mi`, `test/code_purity` (the map's
    accuracy on those training images), `test/codes_used` and `test/digits_coded` (digits some code maps to:
    10 when the code separates them, 9 when two digits share their codes). `n_eval`: the first images
    of the scored split only (None: all of it; debug=smoke scores a few)."""

    def __init__(self, n_train: int = 10000, batch_size: int = 1000, n_eval: int | None = None):
        self.n_train, self.batch_size, self.n_eval = n_train, batch_size, n_eval

    @torch.no_grad()
    def _posterior(self, pl_module, x: torch.Tensor) -> torch.Tensor:
        with eval_mode(pl_module):
            return torch.cat([pl_module.code_posterior(b.to(pl_module.device)).cpu() for b in x.split(self.batch_size)])

    def score(self, pl_module, dm, split: str) -> dict[str, float]:
        (x_tr, y_tr), (x_ev, y_ev) = dm.split_tensors("train"), dm.split_tensors(split)
        y_tr, y_ev = (y.argmax(1) if y.ndim == 2 else y for y in (y_tr.cpu(), y_ev.cpu()))
        x_ev, y_ev = x_ev[: self.n_eval], y_ev[: self.n_eval]
        q_ev = self._posterior(pl_module, x_ev)
        c_tr, c_ev = self._posterior(pl_module, x_tr[: self.n_train]).argmax(1), q_ev.argmax(1)
        counts = torch.zeros(q_ev.shape[1], int(y_tr.max()) + 1, dtype=torch.long)
        counts.index_put_((c_tr, y_tr[: self.n_train]), torch.ones_like(c_tr), accumulate=True)
        to_digit = counts.argmax(1)  # a code no training image got maps to 0 (and counts as wrong)
        return {
            "code_error": float((to_digit[c_ev] != y_ev).float().mean()),
            "code_mi": code_information(q_ev),
            "code_purity": float(counts.max(1).values.sum() / len(c_tr)),
            "codes_used": int((counts.sum(1) > 0).sum()),
            "digits_coded": int(to_digit[counts.sum(1) > 0].unique().numel()),  # < 10: some digits share codes
        }

    def on_train_epoch_end(self, trainer, pl_module):
        # a GAN has no validation_step (Lightning then skips the validation hooks): scored here, on rank 0,
        # and broadcast so that every rank logs the same value
        dm = trainer.datamodule
        if not hasattr(pl_module, "code_posterior") or dm is None or not dm.hparams.get("val_size"):
            return
        metrics = self.score(pl_module, dm, "val") if trainer.is_global_zero else None
        metrics = trainer.strategy.broadcast(metrics, src=0)
        for key in ("code_error", "code_mi"):
            pl_module.log(f"val/{key}", metrics[key])

    def on_test_epoch_end(self, trainer, pl_module):
        if not hasattr(pl_module, "code_posterior") or not trainer.is_global_zero or trainer.datamodule is None:
            return
        _log(pl_module, self.score(pl_module, trainer.datamodule, "test"), "test")


class LogLikelihood(pl.Callback):
    """At test end, the mean log-likelihood (nats) of every model that has `log_likelihood`, on the
    fixed binarized version of each split in `splits` (genexp.metrics.likelihood: the grey-level
    images binarized with one documented seed, whatever data.binarize was), first `n` images (null:
    all). `options` go to the model's estimator (AIS chains and temperatures, IWAE samples, ...).
    Logs `<split>/loglik` (and the model's extras) and writes likelihood.json in the run dir."""

    def __init__(self, splits=("test",), n: int | None = None, binarize: str = "stochastic", options=None):
        self.splits, self.n, self.binarize, self.options = list(splits), n, binarize, dict(options or {})
        likelihood.binarized(torch.zeros(1), binarize)  # an unknown binarization fails before training

    def on_test_epoch_end(self, trainer, pl_module):
        if not hasattr(pl_module, "log_likelihood") or not trainer.is_global_zero or trainer.datamodule is None:
            return
        results = {}
        for split in self.splits:
            x = trainer.datamodule.split_tensors(split, raw=True)[0][: self.n]
            if not len(x):
                log.warning("LogLikelihood: split %r is empty, not scored", split)
                continue
            with eval_mode(pl_module):
                r = likelihood.score(pl_module, x, self.binarize, self.options)
            key = likelihood.key(split, self.binarize)
            pl_module.log(key, r["mean"], rank_zero_only=True)
            _log(pl_module, r["info"], split)
            log.info(
                "%s = %.3f nats (+- %.3f, %s, %d images, %s binarization)",
                key,
                r["mean"],
                r["sem"],
                r["kind"],
                r["n"],
                self.binarize,
            )
            results[key] = {**r, "options": self.options}
        path = Path(trainer.default_root_dir) / "likelihood.json"  # several variants may share the file
        write_json({**(json.loads(path.read_text()) if path.is_file() else {}), **results}, path)


class SequenceLikelihood(pl.Callback):
    """Sequence models at test end, on each split in `splits` (first `n` pieces; null: all): the mean
    log-likelihood per time step, sum over pieces of `log_likelihood(x, lengths, **options)` divided by
    their number of frames (`<split>/loglik_step`, nats; Boulanger-Lewandowski et al. 2012 report this),
    and the frame-level accuracy of `predict_frames` thresholded at 0.5 (`<split>/frame_acc`, TP / (TP +
    FP + FN) over all frames, Bay et al. 2009). Writes both, with the estimator and its extras, to
    likelihood.json in the run dir."""

    def __init__(self, splits=("test",), n: int | None = None, threshold: float = 0.5, options=None):
        self.splits, self.n, self.threshold, self.options = list(splits), n, threshold, dict(options or {})

    @torch.no_grad()
    def on_test_epoch_end(self, trainer, pl_module):
        if not hasattr(pl_module, "predict_frames") or not trainer.is_global_zero or trainer.datamodule is None:
            return
        results = {}
        for split in self.splits:
            x, lengths = (t[: self.n] for t in trainer.datamodule.split_tensors(split, raw=True))
            if not len(x):
                continue
            x, lengths = x.to(pl_module.device), lengths.to(pl_module.device)
            with eval_mode(pl_module):
                ll = pl_module.log_likelihood(x, lengths, **self.options).double().cpu()
                pred = pl_module.predict_frames(x, lengths) > self.threshold
            tp, fp, fn = frame_counts(pred, x, lengths)
            frames = int(lengths.sum())
            r = {
                "loglik_step": float(ll.sum() / frames),
                "frame_acc": tp / max(tp + fp + fn, 1),
                "pieces": len(x),
                "frames": frames,
                "kind": pl_module.likelihood_kind,
                "info": pl_module.likelihood_info() if hasattr(pl_module, "likelihood_info") else {},
                "options": self.options,
                "prediction": f"predict_frames > {self.threshold}",
            }
            for k in ("loglik_step", "frame_acc"):
                pl_module.log(f"{split}/{k}", r[k], rank_zero_only=True)
            _log(pl_module, r["info"], split)
            log.info(
                "%s/loglik_step = %.3f nats (%s, %d pieces, %d frames); %s/frame_acc = %.4f",
                split, r["loglik_step"], r["kind"], r["pieces"], frames, split, r["frame_acc"],
            )  # fmt: skip
            results[f"{split}/loglik_step"] = r
        path = Path(trainer.default_root_dir) / "likelihood.json"
        write_json({**(json.loads(path.read_text()) if path.is_file() else {}), **results}, path)


class FrameAccuracy(pl.Callback):
    """`val/frame_acc` of a sequence model (its validation metric): TP / (TP + FP + FN) over every valid
    frame of the val batches (Bay et al. 2009), counted from the next-frame prediction `frames` that its
    validation_step returns, thresholded; the counts summed over DDP ranks."""

    def __init__(self, threshold: float = 0.5):
        self.threshold, self.counts = threshold, torch.zeros(3, dtype=torch.float64)

    def on_validation_epoch_start(self, trainer, pl_module):
        self.counts = torch.zeros(3, dtype=torch.float64)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        x, lengths = batch
        p = outputs["frames"]
        counts = frame_counts(p > self.threshold, x[:, : p.shape[1]] > 0.5, lengths)
        self.counts += torch.tensor(counts, dtype=torch.float64)

    def on_validation_epoch_end(self, trainer, pl_module):
        counts = self.counts.to(pl_module.device)
        if trainer.world_size > 1:
            counts = trainer.strategy.reduce(counts, reduce_op="sum")
        tp, fp, fn = counts.tolist()
        pl_module.log("val/frame_acc", tp / max(tp + fp + fn, 1.0), prog_bar=True)


class FreeEnergyGap(pl.Callback):
    """Overfitting monitor for energy models (Hinton 2010, "A practical guide", sec. 6): mean F(val)
    - mean F(train) on `n` images of each, at every validation end (`free_energy`)."""

    def __init__(self, n: int = 1000):
        self.n = n

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer, pl_module):
        dm = trainer.datamodule
        if dm is None or trainer.sanity_checking or self.n <= 0:
            return
        train, val = (dm.split_tensors(s)[0][: self.n].to(pl_module.device) for s in ("train", "val"))
        if len(val):
            gap = pl_module.free_energy(val).mean() - pl_module.free_energy(train).mean()
            pl_module.log("val/free_energy_gap", gap, sync_dist=trainer.world_size > 1)


class PCABaseline(pl.Callback):
    """At test end, the squared reconstruction error of PCA with as many components as the model's
    `code_size`, fitted on the same training images (Hinton & Salakhutdinov 2006, Fig. 2)."""

    def on_test_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero or trainer.datamodule is None:
            return
        dm = trainer.datamodule
        err = pca_recon_sq_error(dm.split_tensors("train")[0], dm.split_tensors("test")[0], pl_module.code_size)
        pl_module.log("test/pca_recon_sq_error", err, rank_zero_only=True)
