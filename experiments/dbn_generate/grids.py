"""Sample grids from a DBN checkpoint: Gibbs sampling in the top RBM, then the down pass.

    python experiments/dbn_generate/grids.py outputs/dbn_generate/run/checkpoints/last.ckpt --out DIR

Writes samples_<down>.png for a mean-field (probabilities) and a stochastic (binary states) down pass.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from genexp import viz
from genexp.models.dbn import DBN

log = logging.getLogger("dbn_grids")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    model = DBN.load_from_checkpoint(args.checkpoint, map_location="cpu").eval()
    model.hparams.sample_steps = args.steps
    for down in ("mean", "sample"):
        model.hparams.sample_down = down
        images = model.sample(args.n, generator=torch.Generator().manual_seed(args.seed))
        path = viz.save_png(viz.grid(images, nrow=10, scale=2), args.out / f"samples_{down}.png")
        log.info("wrote %s (%d Gibbs steps, %s down pass)", path, args.steps, down)


if __name__ == "__main__":
    main()
