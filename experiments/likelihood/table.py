"""One table of test log-likelihoods across model families (issue 12): every model that has
`log_likelihood` is scored by `genexp.metrics.likelihood.score` (the function the LogLikelihood callback
and `genexp loglik` use) on the **same** binarized test set: the official 10k test digits, Bernoulli(grey)
drawn once with the fixed seed (its sha256 is printed, the same in every row), in nats, with the
published anchors beside it. Anchors are split by how the model was trained (dynamic binarization:
resampled every epoch; static: one fixed binary copy), which moves results by about 2 nats.

    python experiments/likelihood/table.py [--n N] [--only NAME ...]

Checkpoints are the last checkpoints (the tested weights) of the studies' runs under outputs/studies
(made by their run.sh); a row whose checkpoint is missing says so. A run's own test-end score (its
likelihood.json, written by the LogLikelihood callback with the same function) is taken when it is of
the same binarized images (by sha256) with the same estimator options; --rescore scores every checkpoint
again. Writes experiments/likelihood/results.md and results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from genexp.ckpt import load_checkpoint  # noqa
from genexp.ckpt_fit import build_model  # noqa: E402
from genexp.loglik import datamodule  # noqa: E402
from genexp.metrics import likelihood  # noqa: E402
from genexp.models.base import GenexpModule  # noqa: E402
from genexp.record import write_atomic, write_json  # noqa: E402

# name, family, study run dir (under outputs/studies), estimator options, training binarization,
# anchors (static, dynamic): the published numbers, by how their models were trained
ROWS = [
    ("rbm_loglik", "RBM 784-500, PCD (experiment=rbm_best)", "rbm_loglik", {}, "dynamic",
     "-86.34 (RBM CD-25, Salakhutdinov & Murray 2008); -88.33 (NADE, Larochelle & Murray 2011)", "-"),
    ("vae_mnist", "VAE 784-500-500-50, ELBO-trained (experiment=vae_mnist)", "vae_mnist", {"k": 5000}, "dynamic",
     "-", "-86.76 (VAE, 1 layer, Burda et al. 2015); -84.78 (IWAE k=50, 1 layer); -82.90 (IWAE, 2 layers)"),
    ("vae_iwae", "VAE as above, IWAE-trained with k = 5 (experiment=vae_iwae)", "vae_iwae", {"k": 5000}, "dynamic",
     "-", "-85.54 (IWAE k=5, 1 layer, Burda et al. 2015); -84.78 (IWAE k=50, 1 layer)"),
    ("pixelcnn", "PixelCNN, 64 maps, 8 residual blocks, 1 h of CPU training (experiment=pixelcnn_mnist)",
     "pixelcnn_mnist", {}, "dynamic",
     "-81.30 (PixelCNN, van den Oord et al. 2016)", "-"),
    ("pixelcnn_large", "PixelCNN, 128 maps, 12 residual blocks, 17 epochs on a lent H200 (experiment=pixelcnn_large)",
     "pixelcnn_large", {}, "dynamic",
     "-81.30 (PixelCNN, van den Oord et al. 2016)", "-"),
    ("dbn", "DBN (model=dbn)", None, {}, "-", "-", "-"),
]  # fmt: skip
NOTES = {
    "dbn": "no likelihood bound implemented for the DBN (its AIS-based bound is not built)",
}


def score_row(study: str, options: dict, n: int | None, rescore: bool) -> dict:
    run = ROOT / "outputs" / "studies" / study
    ckpt = run / "checkpoints" / "last.ckpt"  # the final weights: what the run tested
    saved = run / "likelihood.json"
    if not ckpt.is_file():
        # a run whose checkpoint stayed on a lent GPU machine: its test-end score (the same function) when
        # it scored the whole set with these options; its sha256 is checked against the other rows' below
        r = json.loads(saved.read_text()).get("test/loglik", {}) if saved.is_file() else {}
        if r and n is None and all(r.get("options", {}).get(k) == v for k, v in options.items()):
            return {"status": "scored at the run's test end (checkpoint not kept)", **r}
        return {"status": f"no checkpoint: run experiments/{study}/run.sh"}
    model = build_model(ckpt, load_checkpoint(ckpt), GenexpModule)
    x = datamodule(str(ckpt), None).split_tensors("test", raw=True)[0][:n]
    # the run's own test-end score (LogLikelihood: the same function) when it is of the same images
    # (sha256 of the binarized set) and the same estimator options
    if not rescore and saved.is_file():
        r = json.loads(saved.read_text()).get("test/loglik", {})
        same = r.get("sha256") == likelihood.digest(likelihood.binarized(x)) and r.get("n") == len(x)
        if same and all(r.get("options", {}).get(k) == v for k, v in options.items()):
            return {"status": "scored at the run's test end", "ckpt": str(ckpt.relative_to(ROOT)), **r}
    start = time.time()
    r = likelihood.score(model, x, "stochastic", options)
    return {"status": "scored", "ckpt": str(ckpt.relative_to(ROOT)), "seconds": round(time.time() - start, 1), **r}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=None, help="score the first N test images (default: all 10k)")
    p.add_argument("--only", nargs="*", help="rows to score (default: all)")
    p.add_argument("--rescore", action="store_true", help="score again even where the run's test-end score fits")
    args = p.parse_args(argv)
    results = {}
    for name, label, study, options, train_bin, _static, _dynamic in ROWS:
        if args.only and name not in args.only:
            continue
        r = score_row(study, options, args.n, args.rescore) if study else {"status": NOTES[name]}
        if name in NOTES and r["status"] != "scored":
            r["status"] = NOTES[name]
        results[name] = {"label": label, "training binarization": train_bin, **r}
        print(f"{name}: {r.get('mean', r['status'])}", flush=True)
    digests = {r["sha256"] for r in results.values() if "sha256" in r}
    lines = [
        "# Test log-likelihood across model families (nats, higher is better)",
        "",
        "All rows scored by `experiments/likelihood/table.py` on one binarized test set: the official 10k",
        "test digits, Bernoulli(grey) drawn once with the fixed seed of `genexp.metrics.likelihood`"
        + (
            f" (sha256 `{sorted(digests)[0][:16]}`, the same in every scored row)."
            if len(digests) == 1
            else f". **The scored rows are of {len(digests)} different binarized sets: not comparable.**"
        ),
        "",
        "| model | estimator | test log-lik. (nats) | trained on | anchors, static binarization | anchors, dynamic |",
        "|---|---|---:|---|---|---|",
    ]
    for name, label, *_rest, static, dynamic in ROWS:
        r = results.get(name)
        if r is None:
            continue
        value = f"**{r['mean']:.2f}** ± {r['sem']:.2f} (n={r['n']})" if "mean" in r else r["status"]
        kinds = {"ais": "AIS (log Z estimate)", "bound": "IWAE bound, k = 5000", "exact": "exact"}
        kind = kinds.get(r.get("kind"), "-")
        lines.append(f"| {label} | {kind} | {value} | {r['training binarization']} | {static} | {dynamic} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_atomic(HERE / "results.md", text)
    write_json(results, HERE / "results.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
