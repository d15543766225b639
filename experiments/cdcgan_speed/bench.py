"""Training speed of `model=cdcgan` run the way genexp runs it (a Lightning Trainer, manual optimization)
against a plain PyTorch loop with the same networks, batch size, data and d_steps, in one process.

    nice .venv/bin/python experiments/cdcgan_speed/bench.py [--repeats 5] [--batches 20] [--device cpu]

Steps are generator steps (= batches; each is d_steps + 1 optimizer steps). On a shared machine whose
load drifts, `--mode paired` (default) runs one plain step after each genexp batch, in lock-step, so
both see the same moment's load; `--mode blocks` runs each loop's batches in turn, alternating the
order per repeat. The table reports each repeat's ratio and the median. Writes results.md (+ .json).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from genexp.data import MNISTDataModule
from genexp.models.cdcgan import CDCGAN, Discriminator, Generator, discriminator_loss, generator_loss, init_weights

HERE = Path(__file__).resolve().parent
CONF = HERE.parents[1] / "conf"
log = logging.getLogger("bench")


def build_cdcgan(**values) -> CDCGAN:
    """The model as `python -m genexp model=cdcgan model.key=value ...` builds it (conf/model/cdcgan.yaml:
    Adam(2e-4, 0.5, 0.999), uniform noise, non-saturating G loss, no EMA, as in the plain loop)."""
    overrides = ["model=cdcgan"] + [f"model.{k}={v}" for k, v in values.items()]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return hydra.utils.instantiate(cfg.model, _convert_="all")


class Stopwatch(pl.Callback):
    """Wall time of batches [warmup, warmup + n): from the start of one to the start of the next,
    so the trainer's own per-batch work (hooks, logging, data fetch) is inside the measurement."""

    def __init__(self, warmup: int, n: int):
        self.warmup, self.n, self.t0, self.t1 = warmup, n, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx in (self.warmup, self.warmup + self.n):
            _sync(pl_module.device)
            if batch_idx == self.warmup:
                self.t0 = time.perf_counter()
            else:
                self.t1 = time.perf_counter()


def genexp_steps_per_s(args, dm: MNISTDataModule) -> float:
    model = build_cdcgan(d_steps=args.d_steps, **args.widths)
    watch = Stopwatch(args.warmup, args.batches)
    trainer = pl.Trainer(
        accelerator=args.device, devices=1, max_epochs=1, limit_train_batches=args.warmup + args.batches + 1,
        limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[watch],
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    return args.batches / (watch.t1 - watch.t0)


def plain_step_fn(args, x_u8: torch.Tensor, y: torch.Tensor):
    """One training step of the loop a PyTorch user would write for the same model and schedule:
    returns `step(i)`, which trains on batch i."""
    device = torch.device("cuda" if args.device == "gpu" else args.device)
    nz, b = args.widths["nz"], args.batch_size
    G = Generator(nz, args.widths["ngf"], args.widths["ngfc"]).to(device)
    D = Discriminator(args.widths["ndf"], args.widths["ndfc"]).to(device)
    init_weights(G), init_weights(D)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x_u8, y = x_u8.to(device), y.to(device)
    perm = torch.randperm(len(x_u8), device=device)

    def step(i: int) -> None:
        idx = perm[(i * b) % (len(perm) - b) :][:b]
        x = x_u8[idx].float().div_(255.0)  # [B, 1, 28, 28]
        yb = torch.nn.functional.one_hot(y[idx], 10).float()  # [B, 10]
        fake = G(torch.rand(b, nz, device=device), yb).detach()
        for _ in range(args.d_steps):
            d_cost = discriminator_loss(D(x, yb), D(fake, yb))
            opt_d.zero_grad(set_to_none=True)
            d_cost.backward()
            opt_d.step()
        D.requires_grad_(False)
        g_cost = generator_loss(D(G(torch.rand(b, nz, device=device), yb), yb))
        opt_g.zero_grad(set_to_none=True)
        g_cost.backward()
        opt_g.step()
        D.requires_grad_(True)

    return step, device


def plain_steps_per_s(args, x_u8: torch.Tensor, y: torch.Tensor) -> float:
    step, device = plain_step_fn(args, x_u8, y)
    t0 = None
    for i in range(args.warmup + args.batches):
        if i == args.warmup:
            _sync(device)
            t0 = time.perf_counter()
        step(i)
    _sync(device)
    return args.batches / (time.perf_counter() - t0)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Paired(pl.Callback):
    """Lock-step comparison, robust to a machine whose load drifts: after each genexp batch, one plain
    step runs (and is timed) in the same process; a genexp batch's time is the gap between two batch
    starts minus the plain step inside it. Both loops thus see the same moment's load."""

    def __init__(self, plain_step, warmup: int):
        self.plain_step, self.warmup = plain_step, warmup
        self.genexp, self.plain, self.t_start, self.t_plain = [], [], None, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        _sync(pl_module.device)
        now = time.perf_counter()
        if self.t_start is not None and batch_idx > self.warmup:
            self.genexp.append(now - self.t_start - self.t_plain)
        self.t_start = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        _sync(pl_module.device)
        t0 = time.perf_counter()
        self.plain_step(batch_idx)
        _sync(pl_module.device)
        self.t_plain = time.perf_counter() - t0
        if batch_idx >= self.warmup:
            self.plain.append(self.t_plain)


def paired_steps_per_s(args, dm: MNISTDataModule, x_u8: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    step, _ = plain_step_fn(args, x_u8, y)
    paired = Paired(step, args.warmup)
    model = build_cdcgan(d_steps=args.d_steps, **args.widths)
    trainer = pl.Trainer(
        accelerator=args.device, devices=1, max_epochs=1, limit_train_batches=args.warmup + args.batches + 1,
        limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[paired],
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    n = min(len(paired.genexp), len(paired.plain))
    return n / sum(paired.genexp[:n]), n / sum(paired.plain[:n])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batches", type=int, default=20, help="timed batches per loop and repeat")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--d-steps", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--widths", default="64,64,1024,1024", help="ngf,ndf,ngfc,ndfc (default: the chapter's)")
    p.add_argument(
        "--mode",
        default="paired",
        choices=["paired", "blocks"],
        help="paired: one plain step after each genexp batch, in lock-step (robust to drifting "
        "load); blocks: each loop runs its batches in turn, alternating order per repeat",
    )
    p.add_argument("--out", default=str(HERE / "results.md"))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ngf, ndf, ngfc, ndfc = (int(v) for v in args.widths.split(","))
    args.widths = dict(nz=100, ngf=ngf, ndf=ndf, ngfc=ngfc, ndfc=ndfc)

    root = os.environ.get("GENEXP_DATA_DIR")
    dm = MNISTDataModule(root=root, batch_size=args.batch_size, val_size=10000)
    dm.setup()
    x_u8, y = dm._splits["train"]  # the same uint8 tensors the datamodule serves
    rows = []
    for r in range(args.repeats):
        torch.manual_seed(r)
        if args.mode == "paired":
            order = ("paired",)
            speeds = dict(zip(("genexp", "plain"), paired_steps_per_s(args, dm, x_u8, y), strict=True))
        else:
            order = ("genexp", "plain") if r % 2 == 0 else ("plain", "genexp")
            speeds = {}
            for name in order:
                run = genexp_steps_per_s if name == "genexp" else None
                speeds[name] = run(args, dm) if run else plain_steps_per_s(args, x_u8, y)
        rows.append({"repeat": r, "order": "/".join(order), **speeds, "ratio": speeds["genexp"] / speeds["plain"]})
        log.info("repeat %d (%s): genexp %.3f  plain %.3f steps/s  ratio %.3f", r, rows[-1]["order"],
                 speeds["genexp"], speeds["plain"], rows[-1]["ratio"])  # fmt: skip

    med = {k: statistics.median(row[k] for row in rows) for k in ("genexp", "plain", "ratio")}
    env = (f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
           f", pytorch_lightning {pl.__version__}, device {args.device}")  # fmt: skip
    lines = [
        f"# cdcgan training speed: genexp (Lightning Trainer) vs plain PyTorch loop ({args.device})",
        "",
        f"batch {args.batch_size}, d_steps {args.d_steps}, widths {args.widths}, {args.batches} timed batches per "
        f"loop per repeat after {args.warmup} warm-up, {args.repeats} repeats, mode {args.mode}; {env}.",
        "Steps = generator steps (batches) per second; each is d_steps + 1 optimizer steps.",
        "",
        "| repeat | order | genexp steps/s | plain steps/s | genexp / plain |",
        "|---:|---|---:|---:|---:|",
        *[f"| {r['repeat']} | {r['order']} | {r['genexp']:.3f} | {r['plain']:.3f} | {r['ratio']:.3f} |" for r in rows],
        f"| median | | {med['genexp']:.3f} | {med['plain']:.3f} | **{med['ratio']:.3f}** |",
        "",
        f"Target: genexp >= 0.95x the plain loop: {'met' if med['ratio'] >= 0.95 else 'NOT met'}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "median": med, "env": env}, indent=2))


if __name__ == "__main__":
    main()
