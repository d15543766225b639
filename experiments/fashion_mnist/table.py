"""Fashion-MNIST beside MNIST (issue 13): each model's short preset (its defaults) on `data=fashion_mnist`
(the multirun of experiments/fashion_mnist/run.sh, under outputs/studies/fashion_mnist) against the same
preset on MNIST (`experiments/defaults/results.json`), with the real-data floor of each FID: 10k held-out
real images scored against the test set by the same feature network (`real_data_floor`; MNIST's from
experiments/cdcgan_mnist/fid_floor.json), and the picture of the Fashion samples.

    python experiments/fashion_mnist/table.py        # -> experiments/fashion_mnist/table.md, table.json
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import hydra
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from genexp.metrics.features import feature_net_info  # noqa: E402
from genexp.metrics.sample_quality import real_data_floor  # noqa: E402
from genexp.record import write_atomic, write_json  # noqa: E402

STUDIES = [ROOT / "outputs" / "studies" / s for s in ("fashion_mnist", "fashion_mnist_more")]
# model, metric key (Fashion; MNIST), label, format: what issue 13 compares
ROWS = [
    ("rbm", "test/loglik", "test/loglik", "log-likelihood, AIS, fixed binarized test set (nats)", ".2f"),
    ("rbm", "test/fid_fashion_cnn", "test/fid_mnist_cnn", "FID of samples (dataset's feature net)", ".1f"),
    ("dbn_classifier", "test/error", "test/error", "DBN classifier test error", ".2%"),
    ("dbn_autoencoder", "test/recon_sq_error", "test/recon_sq_error", "deep autoencoder squared error / image", ".2f"),
    ("dbn_autoencoder", "test/pca_recon_sq_error", "test/pca_recon_sq_error", "PCA, same code size", ".2f"),
    ("cdcgan", "test/cond_acc", "test/cond_acc", "cond_acc (dataset's feature net)", ".3f"),
    ("cdcgan", "test/fid_fashion_cnn", "test/fid_mnist_cnn", "FID (dataset's feature net)", ".1f"),
    # the models built after these (fashion_mnist_more: 10 minutes of training each)
    ("stackgan", "test/cond_acc", "test/cond_acc", "cond_acc", ".3f"),
    ("stackgan", "test/fid_fashion_cnn", "test/fid_mnist_cnn", "FID", ".1f"),
    ("infogan", "test/code_error", "test/code_error", "test error of the categorical code (majority map)", ".1%"),
    ("infogan", "test/fid_fashion_cnn", "test/fid_mnist_cnn", "FID", ".1f"),
    ("ssgan", "test/error", "test/error", "semi-supervised GAN test error, 100 labels", ".2%"),
    ("vae", "test/loglik", "test/loglik", "IWAE bound, k = 5000, first 1000 test images (nats)", ".2f"),
    ("pixelcnn", "test/loglik", "test/loglik", "exact log-likelihood (nats)", ".2f"),
    ("pixelcnn", "test/fid_fashion_cnn", "test/fid_mnist_cnn", "FID", ".1f"),
]


def fashion_runs() -> dict[str, dict]:
    """model -> {metrics, wall_time_s, dir} of the multirun's jobs."""
    out = {}
    for m in sorted(p for runs in STUDIES for p in runs.glob("*/metrics.json")):
        record = json.loads(m.read_text())
        model = yaml.safe_load((m.parent / ".hydra" / "overrides.yaml").read_text())
        name = next(o.split("=", 1)[1] for o in model if o.startswith("model="))
        out[name] = {"metrics": record, "dir": m.parent}
    return out


def fashion_floor() -> dict:
    from tests.conftest import compose_config  # the data config exactly as a run composes it

    dm = hydra.utils.instantiate(compose_config("data=fashion_mnist").data, _convert_="all")
    dm.setup()
    return real_data_floor(dm, dm.info.feature_net)


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    runs = fashion_runs()
    mnist = json.loads((ROOT / "experiments" / "defaults" / "results.json").read_text())
    floors = {
        "fashion_mnist": fashion_floor()["fid_fashion_cnn_floor"],
        "mnist": json.loads((ROOT / "experiments/cdcgan_mnist/fid_floor.json").read_text())["fid_mnist_cnn_floor"],
    }
    net = feature_net_info("fashion_cnn")
    lines = [
        "| `model=` (its defaults) | metric | Fashion-MNIST | MNIST | wall time, Fashion |",
        "|---|---|---:|---:|---:|",
    ]
    record = {"floors": floors, "rows": []}
    for model, key_f, key_m, label, spec in ROWS:
        run = runs.get(model)
        value_f = run["metrics"].get(key_f) if run else None
        status = run["metrics"].get("status") if run else "not run"
        value_m = mnist.get(model, {}).get("metrics", {}).get(key_m)
        if "fid" in key_f:
            label += f"; real-data floor {floors['fashion_mnist']:.2f} / {floors['mnist']:.2f}"
        wall = f"{run['metrics']['wall_time_s'] / 60:.1f} min" if run and run["metrics"].get("wall_time_s") else "-"
        cell = fmt(value_f, spec) if status == "finished" else f"{status}"
        lines.append(f"| `{model}` | {label} | **{cell}** | {fmt(value_m, spec)} | {wall} |")
        row = {"model": model, "metric": key_f, "fashion_mnist": value_f, "mnist": value_m, "status": status}
        record["rows"].append(row)
    head = [
        "# Fashion-MNIST beside MNIST: the short presets",
        "",
        "Written by `experiments/fashion_mnist/table.py` from the multiruns of `experiments/fashion_mnist/run.sh`",
        "(`python -m genexp -m model=rbm,dbn_classifier,dbn_autoencoder,cdcgan data=fashion_mnist`, then the",
        "later models `model=stackgan,infogan,ssgan,vae,pixelcnn` capped at 10 minutes of training each; one torch",
        "thread per job, two at a time on 2 cores) and the same presets on MNIST (`experiments/defaults`).",
        f"FIDs and cond_acc use each dataset's shipped feature network: `fashion_cnn` (test accuracy "
        f"{net['test_acc']:.2%}) on Fashion-MNIST, `mnist_cnn` on MNIST, so the two columns' FIDs are on",
        'different scales; the floor is 10k held-out real images against the test set. MNIST "-": not',
        "recorded by the default runs. Wall times are upper bounds (other jobs shared the cores).",
        "",
    ]
    text = "\n".join(head + lines) + "\n"
    print(text)
    write_atomic(HERE / "table.md", text)
    write_json(record, HERE / "table.json")
    samples = sorted((runs.get("cdcgan", {}).get("dir", STUDIES[0]) / "samples").glob("epoch_*.png"))
    if samples:
        shutil.copy(samples[-1], HERE / "cdcgan_samples.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
