"""Issue 10: can a label-free number pick the InfoGAN run whose categorical code separates the digits?

For every InfoGAN checkpoint on MNIST under outputs/studies (last.ckpt of each run), CodePurity scores
the val split (val/code_mi: I(x; c) of Q's posterior on the 10k val images, no label used; and
val/code_error) and the test split (test/code_error, the issue's number). The script prints the table,
the rank correlation of val/code_mi with test/code_error, and, within each study, the run that the
highest val/code_mi picks against the study's mean; it writes experiments/infogan_select/results.md.

    python experiments/infogan_select/analyse.py [CKPT ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

import hydra  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from genexp.callbacks import CodePurity  # noqa: E402
from genexp.ckpt import load_checkpoint  # noqa
from genexp.ckpt_fit import build_model  # noqa: E402
from genexp.models.base import GenexpModule  # noqa: E402
from genexp.record import write_atomic  # noqa: E402


def rebuild(ckpt: Path):
    """The checkpoint's model. A checkpoint written before an option existed lacks its key: it gets the
    option's default of conf/model/infogan.yaml (lambda_cont: 1, what the code did before the option)."""
    checkpoint = load_checkpoint(ckpt)
    defaults = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/model/infogan.yaml"))
    hparams = checkpoint.setdefault("hyper_parameters", {})
    for k, v in defaults.items():
        if k not in ("defaults", "_target_"):
            hparams.setdefault(k, v)
    return build_model(ckpt, checkpoint, GenexpModule)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpts", nargs="*", type=Path)
    args = parser.parse_args()
    ckpts = args.ckpts or sorted((ROOT / "outputs/studies").glob("*/*infogan*/checkpoints/last.ckpt"))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = []
    for ckpt in ckpts:
        run = ckpt.resolve().parent.parent
        cfg = OmegaConf.load(run / ".hydra/config.yaml")
        if cfg.data.get("feature_net", "mnist_cnn") != "mnist_cnn":
            continue  # Fashion-MNIST runs: not this question
        try:
            model = rebuild(ckpt)
        except Exception as e:  # noqa: BLE001 (an old checkpoint this code cannot rebuild: said, skipped)
            print(f"skipped {ckpt}: {' '.join(str(e).split())[:160]}")
            continue
        dm = hydra.utils.instantiate(cfg.data, _convert_="all")
        dm.prepare_data()
        dm.setup("fit")
        dm.setup("test")
        purity = CodePurity()
        val, test = purity.score(model, dm, "val"), purity.score(model, dm, "test")
        rows.append((run.parent.name, run.name, val["code_mi"], val["code_error"], test["code_error"]))
        print(
            f"{run.parent.name}/{run.name}: val code_mi {val['code_mi']:.4f}, test code_error {test['code_error']:.4f}"
        )
    if len(rows) < 3:
        print("fewer than 3 InfoGAN runs on MNIST: nothing to correlate")
        return 1
    rho = float(spearmanr([r[2] for r in rows], [r[4] for r in rows]).statistic)
    lines = [
        "# InfoGAN: the label-free val/code_mi against the test error of the categorical code",
        "",
        "last.ckpt of every InfoGAN run on MNIST under outputs/studies",
        "(`python experiments/infogan_select/analyse.py`).",
        "`val/code_mi` = H(mean q) - mean H(q) of Q's posterior q(c | x) on the 10k val images (ln 10 = 2.3026 at",
        "most; no label used); the code errors map each code to its majority digit on 10k training images.",
        "",
        "| study | run | val/code_mi (nats) | val/code_error | test/code_error |",
        "|---|---|---:|---:|---:|",
        *(f"| {s} | {r} | {mi:.4f} | {ve:.4f} | {te:.4f} |" for s, r, mi, ve, te in rows),
        "",
        f"Spearman rank correlation of val/code_mi with test/code_error over {len(rows)} runs: **{rho:+.2f}**.",
        "",
        "Within each study (same recipe, different seeds), the run with the highest val/code_mi:",
        "",
        "| study | runs | its test/code_error | the study's mean test/code_error | best run's |",
        "|---|---:|---:|---:|---:|",
    ]
    for study in sorted({r[0] for r in rows}):
        runs = [r for r in rows if r[0] == study]
        if len(runs) < 2:
            continue
        pick = max(runs, key=lambda r: r[2])
        mean = sum(r[4] for r in runs) / len(runs)
        lines.append(f"| {study} | {len(runs)} | {pick[4]:.4f} | {mean:.4f} | {min(r[4] for r in runs):.4f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_atomic(HERE / "results.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
