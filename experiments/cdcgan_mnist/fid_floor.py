"""The floor of test/fid_mnist_cnn: 10,000 held-out real training images (the datamodule's val split,
never trained on) scored against the test set exactly as SampleQuality scores 10,000 samples (same
features of the shipped feature network `mnist_cnn`, same `frechet_distance`, real = the test set). A
generator matching the data distribution perfectly would score about this, not 0 (finite-sample noise
and train/test shift).

    OMP_NUM_THREADS=1 nice .venv/bin/python experiments/cdcgan_mnist/fid_floor.py   # -> fid_floor.json (--out FILE)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from genexp.data import MNISTDataModule
from genexp.metrics import features
from genexp.metrics.features import load_feature_net
from genexp.metrics.sample_quality import classify, frechet_distance, knn_precision_recall, nearest_neighbour_check
from genexp.record import write_json

HERE = Path(__file__).resolve().parent
log = logging.getLogger("fid_floor")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "fid_floor.json")
    args = parser.parse_args()
    root = os.environ.get("GENEXP_DATA_DIR")
    dm = MNISTDataModule(root=root)  # the default split: 50k train / 10k val / 10k test, split_seed 0
    dm.setup()
    train, val, test = (dm.split_tensors(s)[0] for s in ("train", "val", "test"))
    clf = load_feature_net("mnist_cnn")  # SampleQuality's default feature_net: fid_mnist_cnn
    f_test, _ = classify(clf, test[:10000])
    f_val, _ = classify(clf, val[:10000])
    precision, recall = knn_precision_recall(f_test, f_val)
    nn = nearest_neighbour_check(val[:1000], train, test[:1000])  # held-out reals: what "not copies" looks like
    out = {
        "fid_mnist_cnn_floor": frechet_distance(f_test, f_val),
        "precision": precision,
        "recall": recall,
        **{f"val_{k}": v for k, v in nn.items()},
        "n_real": len(f_val),
        "n_test": len(f_test),
        "feature_net": {"name": "mnist_cnn", "sha256": features.SHA256["mnist_cnn"]},
    }
    write_json(out, args.out)
    log.info("%s", json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
