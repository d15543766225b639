"""Speed of genexp's RBM against a plain PyTorch loop and scikit-learn's BernoulliRBM.

One process, same data (the 50k training split, grey levels as probabilities), same thread count.
For each setting -- CD-1 and PCD-1 at batch 100, PCD-15 at batch 20 -- it trains a fresh 784-500 RBM
for `--fraction` of an epoch with

  genexp   `genexp.models.rbm.RBM` built from conf/model/rbm.yaml as `python -m genexp model=rbm` builds it
           (with the settings below: constant lr, no momentum, no weight decay), through a Lightning
           Trainer (logger off, no validation, no checkpointing, no evaluation callbacks); the clock
           runs from the first training batch to the end of the last, so it includes Lightning's
           per-step overhead and the data loader.
  plain    the same updates in a bare loop: free-energy cost with detached negatives, autograd, SGD.
  sklearn  `sklearn.neural_network.BernoulliRBM` (PCD-1 only), `partial_fit` per batch, float32.

and reports images/s (median over `--repeats` interleaved measurements: the machine is shared and
noisy) and the test reconstruction cross-entropy of the trained models (nats/image, mean-field
v -> p(h|v) -> p(v|h); mean over the repeats, which differ in seed). Writes results.md next to this
file and prints it.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/rbm_speed/bench.py --threads 1 --repeats 3
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from threadpoolctl import threadpool_limits

from genexp.data import MNISTDataModule
from genexp.models.rbm import RBM
from genexp.nn.rbm import RBMCore

HERE = Path(__file__).resolve().parent
CONF = HERE.parents[1] / "conf"
SETTINGS = [("CD-1", 1, False, 100), ("PCD-1", 1, True, 100), ("PCD-15", 15, True, 20)]
LR = 0.1
# what the plain loop and sklearn do, set over conf/model/rbm.yaml's values (the bench's settings since it was written)
FIXED = {"n_visible": 784, "n_hidden": 500, "lr": LR, "momentum": 0.0, "weight_decay": 0.0, "lr_schedule": "constant"}


def _value(v) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def build_rbm(**values) -> RBM:
    """The RBM as `python -m genexp model=rbm model.key=value ...` builds it (conf/model/rbm.yaml)."""
    overrides = ["model=rbm"] + [f"model.{k}={_value(v)}" for k, v in {**FIXED, **values}.items()]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return hydra.utils.instantiate(cfg.model, _convert_="all")


def recon_xent(W: torch.Tensor, hbias: torch.Tensor, vbias: torch.Tensor, v: torch.Tensor) -> float:
    """Mean over images of sum_i BCE(v_i, p(v_i | p(h | v))), float64."""
    W, hbias, vbias, v = W.double(), hbias.double(), vbias.double(), v.double()
    pre_v = torch.sigmoid(v @ W + hbias) @ W.T + vbias
    return float(F.binary_cross_entropy_with_logits(pre_v, v, reduction="none").sum(1).mean())


# ---- genexp through Lightning ------------------------------------------------------------------
class _Clock(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.t1 = time.perf_counter()


def run_genexp(dm, k, persistent, batch, n_batches, seed, tmp):
    dm.hparams.batch_size = batch
    torch.manual_seed(seed)
    model = build_rbm(k=k, persistent=persistent, seed=seed)
    clock = _Clock()
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=n_batches,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        num_sanity_val_steps=0,
        default_root_dir=tmp,
        callbacks=[clock],
    )
    trainer.fit(model, datamodule=dm)
    rbm = model.rbm
    return clock.t1 - clock.t0, (rbm.W.detach(), rbm.hbias.detach(), rbm.vbias.detach())


# ---- the same updates in a plain loop ---------------------------------------------------------------
def run_plain(x_train, k, persistent, batch, n_batches, seed):
    torch.manual_seed(seed)
    init = RBMCore(784, 500, generator=torch.Generator().manual_seed(seed))  # genexp's initial weights for this seed
    W = init.W.detach().clone().requires_grad_(True)
    hbias = torch.zeros(500, requires_grad=True)
    vbias = torch.zeros(784, requires_grad=True)
    opt = torch.optim.SGD([{"params": [W]}, {"params": [hbias, vbias]}], lr=LR)

    def free_energy(v):
        return -(v @ vbias) - F.softplus(v @ W + hbias).sum(1)

    chain = torch.zeros(batch, 500)
    perm = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    for b in range(n_batches):
        v0 = x_train[perm[b * batch : (b + 1) * batch]].float().div_(255.0)
        with torch.no_grad():
            h = chain if persistent else torch.bernoulli(torch.sigmoid(v0 @ W + hbias))
            for _ in range(k):
                v = torch.bernoulli(torch.sigmoid(h @ W.T + vbias))
                h = torch.bernoulli(torch.sigmoid(v @ W + hbias))
            chain = h
        cost = free_energy(v0).mean() - free_energy(v).mean()
        opt.zero_grad(set_to_none=True)
        cost.backward()
        opt.step()
    return time.perf_counter() - t0, (W.detach(), hbias.detach(), vbias.detach())


# ---- scikit-learn ---------------------------------------------------------------------------------
def run_sklearn(x_train, batch, n_batches, seed):
    from sklearn.neural_network import BernoulliRBM

    rbm = BernoulliRBM(n_components=500, learning_rate=LR, batch_size=batch, n_iter=1, random_state=seed)
    perm = np.random.default_rng(seed).permutation(len(x_train))
    x = x_train.numpy()
    t0 = time.perf_counter()
    for b in range(n_batches):
        rbm.partial_fit(x[perm[b * batch : (b + 1) * batch]].astype(np.float32) / np.float32(255.0))
    dt = time.perf_counter() - t0
    params = (
        torch.from_numpy(rbm.components_.T.copy()),
        torch.from_numpy(rbm.intercept_hidden_.copy()),
        torch.from_numpy(rbm.intercept_visible_.copy()),
    )
    return dt, params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of the 50k-image epoch timed")
    p.add_argument("--data-root", default=os.environ.get("GENEXP_DATA_DIR"))
    p.add_argument("--out", default=str(HERE / "results.md"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    dm = MNISTDataModule(root=args.data_root, batch_size=100, binarize="none", val_size=10000)
    dm.setup()
    x_train = dm._splits["train"][0].reshape(-1, 784)  # uint8, the datamodule's 50k training split
    x_test = dm.split_tensors("test")[0].reshape(-1, 784)
    tmp = tempfile.mkdtemp(prefix="rbm_bench_")  # the Trainer's root dir (nothing is written there)
    times: dict[tuple[str, str], list[float]] = {}
    recon: dict[tuple[str, str], list[float]] = {}
    with threadpool_limits(limits=args.threads):
        for rep in range(args.repeats):
            for name, k, persistent, batch in SETTINGS:
                n_batches = max(1, int(args.fraction * len(x_train) // batch))
                runs = {
                    "genexp": partial(run_genexp, dm, k, persistent, batch, n_batches, rep, tmp),
                    "plain": partial(run_plain, x_train, k, persistent, batch, n_batches, rep),
                }
                if name == "PCD-1":  # BernoulliRBM implements PCD-1 only
                    runs["sklearn"] = partial(run_sklearn, x_train, batch, n_batches, rep)
                order = list(runs) if rep % 2 == 0 else list(runs)[::-1]  # alternate who goes first
                for impl in order:
                    dt, params = runs[impl]()
                    times.setdefault((name, impl), []).append(n_batches * batch / dt)
                    recon.setdefault((name, impl), []).append(recon_xent(*params, x_test))
                    print(
                        f"rep {rep} {name:7s} {impl:8s} {n_batches * batch / dt:9.0f} img/s  "
                        f"recon {recon[(name, impl)][-1]:.2f}",
                        flush=True,
                    )
    lines = [
        f"# RBM 784-500 training speed ({args.fraction:g} epoch of 50k images per measurement, "
        f"median of {args.repeats} interleaved repeats)",
        "",
        f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}, "
        f"lr {LR}, grey-level input. Test recon = mean cross-entropy (nats/image) of the 10k test images "
        "after one mean-field up-down pass: mean (min - max) over the repeats, each repeat with its own seed "
        "(initial weights, Gibbs noise; same seed for the three implementations).",
        "",
        "| setting | implementation | images/s (median) | min - max | vs plain | test recon xent (mean, min - max) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, *_ in SETTINGS:
        base = statistics.median(times[(name, "plain")])
        for impl in ("genexp", "plain", "sklearn"):
            if (name, impl) not in times:
                continue
            t = times[(name, impl)]
            med = statistics.median(t)
            r = recon[(name, impl)]
            lines.append(
                f"| {name} | {impl} | {med:.0f} | {min(t):.0f} - {max(t):.0f} | {med / base:.3f}x | "
                f"{statistics.mean(r):.2f} ({min(r):.2f} - {max(r):.2f}) |"
            )
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    assert all(math.isfinite(v) for r in recon.values() for v in r)


if __name__ == "__main__":
    main()
