"""PixelCNN sampling speed (issue 12): samples/s of the cached ancestral sampler (`PixelCNN.sample`: each
layer computes only the new pixel's output from its cached inputs) against the textbook sampler (a full
forward pass per pixel, `sample_naive`), on the trained network of experiments/pixelcnn_mnist, one torch
thread, this CPU. The two are also checked to draw the same images from the same generator.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/pixelcnn_mnist/sampling.py   # -> sampling.md, sampling.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from genexp.ckpt import load_checkpoint  # noqa
from genexp.ckpt_fit import build_model  # noqa: E402
from genexp.models.pixelcnn import PixelCNN  # noqa: E402
from genexp.record import git_state, write_atomic, write_json  # noqa: E402


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, default=ROOT / "outputs/studies/pixelcnn_mnist/checkpoints/last.ckpt")
    p.add_argument("--out", type=Path, default=HERE, help="folder of sampling.md and sampling.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    ckpt = args.ckpt
    model = build_model(ckpt, load_checkpoint(ckpt), PixelCNN).eval()
    hp = model.hparams
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    same = torch.equal(model.sample_binary(10, generator=g()), model.sample_naive(10, generator=g())[0])
    rows = [
        ("cached (`sample`)", 100, rate(lambda n: model.sample(n, generator=g()), 100)),
        ("cached (`sample`)", 1000, rate(lambda n: model.sample(n, generator=g()), 1000)),
        ("forward pass per pixel (`sample_naive`)", 10, rate(lambda n: model.sample_naive(n, generator=g()), 10)),
    ]
    lines = [
        "# PixelCNN sampling speed",
        "",
        f"Written by `experiments/pixelcnn_mnist/sampling.py` (git {git_state()['git_commit'][:10]}; "
        f"{platform.machine()}, one torch thread): the network of `experiment=pixelcnn_mnist` (h = {hp.h}, "
        f"{hp.n_blocks} residual blocks), 784 sequential steps per batch. Same images from the same "
        f"generator, cached and naive: **{same}**.",
        "",
        "| sampler | batch | samples/s |",
        "|---|---:|---:|",
        *[f"| {name} | {batch} | **{r:.1f}** |" for name, batch, r in rows],
        "",
        f"10,000 samples (the test-end sample metrics) take about {10000 / rows[1][2] / 60:.1f} min cached, "
        f"{10000 / rows[2][2] / 3600:.1f} h with a forward pass per pixel.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_atomic(args.out / "sampling.md", text)
    keys = ("sampler", "batch", "samples_per_s")
    record = {"same_images": same, "rows": [dict(zip(keys, r, strict=True)) for r in rows]}
    write_json(record, args.out / "sampling.json")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
