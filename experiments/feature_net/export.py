"""Ship a trained classifier run as a feature network of the metrics: its weights (float32 state_dict
of genexp.nn.cnn.SmallCNN) and the recipe record, into genexp/metrics/weights/.

    python experiments/feature_net/export.py RUN_DIR --name mnist_cnn --command "python -m genexp ..."

Then pin the printed sha256 in genexp/metrics/features.py (SHA256): the metrics refuse any other file.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path

import hydra
import torch
import yaml

from genexp.nn.cnn import SmallCNN
from genexp.record import write_json

WEIGHTS = Path(__file__).resolve().parents[2] / "genexp" / "metrics" / "weights"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--command", required=True, help="the command that trained the run (recorded)")
    p.add_argument("--git-commit", default=None, help="commit of the code that trained it (recorded)")
    p.add_argument("--ckpt", default="best", help="best (highest val/acc: chosen on validation) or last")
    args = p.parse_args()
    cfg = yaml.safe_load((args.run_dir / ".hydra" / "config.yaml").read_text())
    metrics = json.loads((args.run_dir / "metrics.json").read_text())
    ckpt = torch.load(args.run_dir / "checkpoints" / f"{args.ckpt}.ckpt", map_location="cpu", weights_only=True)
    state = {k.removeprefix("net."): v.float() for k, v in ckpt["state_dict"].items()}
    arch = {k: cfg["model"][k] for k in ("channels", "n_features", "dropout")}
    net = SmallCNN(**arch)
    net.load_state_dict(state)  # strict: the file holds exactly this architecture
    net.eval()
    dm = hydra.utils.instantiate({**cfg["data"], "seed": cfg["seed"]}, _convert_="all")
    dm.setup()
    acc = {}
    with torch.no_grad():  # measured here, on exactly the weights shipped
        for split in ("val", "test"):
            x, y = dm.split_tensors(split)
            acc[split] = float(torch.cat([net(b).argmax(1) for b in x.split(1000)]).eq(y).float().mean())
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    path = WEIGHTS / f"{args.name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    data = cfg["data"]
    record = {
        "arch": arch,
        "recipe": {
            "command": args.command,
            "git_commit": args.git_commit or metrics.get("provenance", {}).get("git_commit"),
            "seed": cfg["seed"],
            "model": {k: v for k, v in cfg["model"].items() if k != "_target_"},
            "epochs_trained": metrics["epochs"],
            "checkpoint": f"{args.ckpt}.ckpt (epoch {ckpt['epoch'] + 1}, step {ckpt['global_step']})",
            "batch_size": data["batch_size"],
            "wall_time_s": metrics["wall_time_s"],
            "versions": metrics["versions"],
        },
        "data": {
            "dataset": data.get("dataset", data["_target_"].rsplit(".", 1)[-1]),
            "train": f"official training set minus a val split of {data['val_size']} (split_seed {data['split_seed']})",
            "test": "official test set",
        },
        "test_acc": acc["test"],
        "val_acc": acc["val"],
        "sha256": digest,
    }
    write_json(record, WEIGHTS / f"{args.name}.json")
    print(f"{path}: {path.stat().st_size} bytes, sha256 {digest}, test acc {record['test_acc']:.4f}")


if __name__ == "__main__":
    main()
