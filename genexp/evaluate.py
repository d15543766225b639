"""Score a trained checkpoint again through the evaluation layer, with the config of the run that made it.

    genexp evaluate RUN_DIR/checkpoints/last.ckpt [--out scores.json] [override ...]
    python -m genexp.evaluate RUN_DIR/checkpoints/last.ckpt ...            (the same command)

Overrides are Hydra-style keys of the run's config, e.g. `eval_size.n_samples=2000` or
`data.root=/path/to/mnist`. The model's evaluation callbacks (sample quality on the shipped feature
network, log-likelihood on the fixed binarized set, ...) run in `trainer.test`; nothing trains. The
scores are printed as JSON and written to --out (default: `evaluation.json` beside the run's
metrics.json), atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from genexp import GenexpError
from genexp.ckpt import check_class, load_checkpoint
from genexp.ckpt_fit import build_model
from genexp.models.base import GenexpModule
from genexp.record import write_json

log = logging.getLogger(__name__)
SKIP = ("Checkpoint", "TQDMProgressBar", "SampleGrid", "FilterMosaic")  # nothing to save, nothing trains


def evaluate(ckpt: Path, overrides: list[str], out_dir: Path) -> dict[str, float]:
    checkpoint = load_checkpoint(ckpt)  # a bad file is named first, whatever surrounds it
    run_dir = Path(ckpt).resolve().parent.parent
    cfg_path = run_dir / ".hydra" / "config.yaml"
    if not cfg_path.is_file():
        raise GenexpError(f"{cfg_path} not found: evaluate needs the run dir the checkpoint was saved in")
    try:
        cfg = OmegaConf.load(cfg_path)
        cfg.paths.output_dir = str(out_dir)
        cfg.merge_with(OmegaConf.from_dotlist(overrides))
    except Exception as e:
        raise GenexpError(f"{cfg_path} with overrides {overrides}: {' '.join(str(e).split())}") from None
    target = OmegaConf.select(cfg, "model._target_")
    if target:  # the run's own model class: a checkpoint copied into another run's dir is refused
        check_class(checkpoint, target, ckpt)
    pl.seed_everything(cfg.seed, verbose=False)
    # any genexp model: the run's own callbacks decide what is scored (a classifier has no sample())
    model = build_model(ckpt, checkpoint, GenexpModule)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    callbacks = [
        hydra.utils.instantiate(c, _convert_="all")
        for c in cfg.callbacks.values()
        if c and not c._target_.endswith(SKIP)
    ]
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=callbacks,
        default_root_dir=str(out_dir),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(model, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if isinstance(v, torch.Tensor) and v.numel() == 1}


def main(argv: list[str] | None = None, prog: str = "python -m genexp.evaluate") -> int:
    """The command line; `prog` names it in its messages (`genexp evaluate` from genexp.cli)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", type=Path, help="a checkpoint inside a genexp run dir (RUN_DIR/checkpoints/*.ckpt)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the run's config")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the scores")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            scores = evaluate(args.ckpt, args.overrides, Path(tmp))
        out = args.out or args.ckpt.resolve().parent.parent / "evaluation.json"
        write_json({"ckpt": str(args.ckpt), "overrides": args.overrides, **scores}, out)
    except GenexpError as e:
        print(f"{prog.removeprefix('python -m ')}: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(scores, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
