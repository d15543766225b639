"""The mean log-likelihood of a checkpoint's model on the fixed binarized test (or val) split.

    genexp loglik CHECKPOINT [--split test|val] [--n N] [--binarize stochastic|threshold]
                  [--ais-chains 100] [--ais-betas 14500] [--seed 0] [--out FILE] [--data-root DIR]
    python -m genexp.loglik CHECKPOINT ...                                (the same command)

The score is `genexp.metrics.likelihood.score`, the function the LogLikelihood callback uses at the end
of every run: the grey-level split binarized once with the fixed seed (or thresholded at 0.5 with
`--binarize threshold`), the first --n images (default: all). The data are the checkpoint's run's
(`data` of RUN_DIR/.hydra/config.yaml, `data.root` replaced by --data-root when given); a checkpoint
outside a run dir is scored on MNIST under --data-root (else $GENEXP_DATA_DIR, else ./data). The
estimator's options go to the model as it names them (the RBM: AIS chains, temperatures and seed;
exact log Z when its smaller layer has <= 20 units). One result line is printed and the result is
written as JSON (default RUN_DIR/loglik_<split>.json, atomically). A number that is not finite is
printed as `n/a` with its reason. Bad input is one line `genexp loglik: error: ...`, exit code 2; a
non-finite estimate exits 1.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import math
import sys

import hydra
from omegaconf import OmegaConf

from genexp import GenexpError
from genexp.ckpt import load_checkpoint, local_checkpoint_path
from genexp.ckpt_fit import build_model
from genexp.cliutil import Parser, error_name, positive_int, refuse_key_value
from genexp.data import MNISTDataModule
from genexp.metrics import likelihood
from genexp.models.base import GenexpModule
from genexp.record import write_json
from genexp.sample import run_dir, writable_out

log = logging.getLogger(__name__)
PROG = "python -m genexp.loglik"
NOTES = {  # why a number of a model's likelihood_info() may not be finite
    "log_z_lo": "log(Z - 3 sigma) of AIS, undefined when 3 sigma exceeds Z: use more --ais-chains / --ais-betas",
}


def parser(prog: str = PROG):

    def betas(text: str) -> int:
        value = positive_int(text)
        if value < 2:
            raise argparse.ArgumentTypeError(f"{value} must be >= 2")
        return value

    p = Parser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("ckpt", metavar="CHECKPOINT", help="a checkpoint of a likelihood model (RUN_DIR/checkpoints/*.ckpt)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="the split scored (default test)")
    p.add_argument("--n", type=positive_int, default=None, help="score the first N images (default: all)")
    p.add_argument(
        "--binarize",
        choices=("stochastic", "threshold"),
        default="stochastic",
        help="stochastic: Bernoulli(grey) with the fixed seed (the default, comparable with papers); threshold: > 0.5",
    )
    p.add_argument("--ais-chains", type=positive_int, default=100, help="AIS chains (default 100)")
    p.add_argument("--ais-betas", type=betas, default=14500, help="AIS inverse temperatures (default 14500)")
    p.add_argument("--seed", type=int, default=0, help="seed of the estimator, e.g. AIS (default 0)")
    p.add_argument("--out", metavar="FILE", help="the JSON to write (default RUN_DIR/loglik_<split>.json)")
    p.add_argument("--data-root", metavar="DIR", help="where the MNIST files are (replaces the run's data.root)")
    return p


def _unwrap(e: BaseException) -> GenexpError | None:
    for err in (e, e.__cause__):
        if isinstance(err, GenexpError):
            return err
    return None


def datamodule(ckpt: str, data_root: str | None):
    """The checkpoint's run's datamodule (set up), or MNIST under data_root outside a run dir."""

    cfg_path = run_dir(ckpt) / ".hydra" / "config.yaml"
    try:
        if cfg_path.is_file():
            cfg = OmegaConf.load(cfg_path)
            if OmegaConf.select(cfg, "data._target_") is None:
                raise GenexpError(f"{cfg_path} has no data section")
            if data_root is not None:
                cfg.data.root = data_root
            dm = hydra.utils.instantiate(cfg.data, _convert_="all")
        else:
            dm = MNISTDataModule(root=data_root)
        dm.setup("test")
    except Exception as e:
        err = _unwrap(e)
        if err is not None:
            raise GenexpError(f"data: {err}") from None
        raise GenexpError(f"data of {cfg_path if cfg_path.is_file() else 'MNIST'}: {type(e).__name__}: {e}") from None
    return dm


def _fmt(name: str, value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} n/a ({value}: {NOTES.get(name, 'not finite')})"
    return f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}"


def main(argv: list[str] | None = None, prog: str = PROG) -> int:

    argv = sys.argv[1:] if argv is None else argv
    refuse_key_value(prog, argv, "--split test --n 1000")
    args = parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    name = error_name(prog)
    try:
        local_checkpoint_path(args.ckpt)  # a missing checkpoint is named before any folder is made for --out
        variant = "" if args.binarize == "stochastic" else f"_{args.binarize}"
        out = writable_out(args.out if args.out else run_dir(args.ckpt) / f"loglik_{args.split}{variant}.json")
        model = build_model(args.ckpt, load_checkpoint(args.ckpt), GenexpModule)
        cls = type(model).__name__
        if not hasattr(model, "log_likelihood"):
            raise GenexpError(
                f"{cls} has no log_likelihood: {args.ckpt} holds a model with no likelihood to score "
                f"(`genexp evaluate {args.ckpt}` scores it through its run's callbacks)"
            )
        if "sequence" in getattr(model, "data_kinds", ()):
            raise GenexpError(
                f"{cls} is a sequence model: its log-likelihood per time step is scored at the end of its run "
                "(test/loglik_step in metrics.json and likelihood.json; `genexp evaluate` reruns it); "
                "genexp loglik scores image models"
            )
        params = inspect.signature(model.log_likelihood).parameters
        wanted = {"ais_chains": args.ais_chains, "ais_betas": args.ais_betas, "seed": args.seed}
        options = {k: v for k, v in wanted.items() if k in params}
        x = datamodule(args.ckpt, args.data_root).split_tensors(args.split, raw=True)[0][: args.n]
        if not len(x):
            raise GenexpError(f"the {args.split} split is empty: nothing to score")
        key = likelihood.key(args.split, args.binarize)
        record = {"ckpt": str(args.ckpt), "model": cls, "key": key, "split": args.split, "options": options}
        try:
            r = likelihood.score(model, x, args.binarize, options)
        except GenexpError as e:
            if "non-finite" not in str(e):
                raise
            write_json({**record, "mean": None, "n": len(x), "reason": str(e)}, out)
            print(f"{key} = n/a ({e}; {len(x)} images) -> {out}")
            return 1
        info = r["info"]
        notes = {
            k: NOTES.get(k, "not finite") for k, v in info.items() if isinstance(v, float) and not math.isfinite(v)
        }
        write_json({**record, **r, "notes": notes}, out)
    except GenexpError as e:
        print(f"{name}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    extras = "; ".join(_fmt(k, v) for k, v in info.items())
    print(
        f"{key} = {r['mean']:.4f} nats (+- {r['sem']:.4f}, {r['kind']}, {r['n']} images, {args.binarize} "
        f"binarization, {cls}{'; ' + extras if extras else ''}) -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
