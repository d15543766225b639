"""Samples next to their nearest training images (pixel L2): the picture behind test/nn_ratio.

OMP_NUM_THREADS=1 nice .venv/bin/python experiments/cdcgan_mnist/neighbours.py outputs/cdcgan_cpu5/checkpoints/last.ckpt
-> neighbours.png (or --out FILE): row 1 samples of digits 0..9 (twice), row 2 the nearest of the 50,000
training images.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import torch

from genexp import viz
from genexp.data import MNISTDataModule
from genexp.sample import load_model

HERE = Path(__file__).resolve().parent


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a generative model's checkpoint (genexp.sample.load_model)")
    parser.add_argument("--out", type=Path, default=HERE / "neighbours.png")
    args = parser.parse_args()
    dm = MNISTDataModule(root=os.environ.get("GENEXP_DATA_DIR"))
    dm.setup()
    train = dm.split_tensors("train")[0]  # [50000, 1, 28, 28]
    model = load_model(args.checkpoint)
    fake = model.sample(20, labels=torch.arange(20) % 10, generator=torch.Generator().manual_seed(7))
    nearest = torch.cdist(fake.flatten(1), train.flatten(1)).argmin(1)  # [20]
    image = viz.grid(torch.cat([fake, train[nearest]]), nrow=20, scale=2)
    logging.info("wrote %s", viz.save_png(image, args.out))


if __name__ == "__main__":
    main()
