"""Sample grids from a DBN checkpoint (any form: DBN, DBNClassifier, DeepAutoencoder): Gibbs sampling
in the top RBM, then the down pass.

    python experiments/dbn_generate/grids.py outputs/dbn_generate/run/checkpoints/last.ckpt --out DIR

Writes samples_<down>.png for a mean-field (probabilities) and a stochastic (binary states) down pass.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from genexp import GenexpError, viz
from genexp.models.dbn import DBN
from genexp.sample import load_model

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
    model = load_model(args.checkpoint)  # eval mode, on the CPU
    if not isinstance(model, DBN):
        raise GenexpError(f"{args.checkpoint} holds a {type(model).__name__}, not a DBN")
    model.hparams.sample_steps = args.steps
    for down in ("mean", "sample"):
        model.hparams.sample_down = down
        images = model.sample(args.n, generator=torch.Generator().manual_seed(args.seed))
        path = viz.save_png(viz.grid(images, nrow=10, scale=2), args.out / f"samples_{down}.png")
        log.info("wrote %s (%d Gibbs steps, %s down pass)", path, args.steps, down)


if __name__ == "__main__":
    main()
