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
from genexp.metrics.sample_quality import real_data_floor
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
    # SampleQuality's feature network on MNIST: fid_mnist_cnn
    net = {"name": "mnist_cnn", "sha256": features.SHA256["mnist_cnn"]}
    out = {**real_data_floor(dm, "mnist_cnn"), "feature_net": net}
    write_json(out, args.out)
    log.info("%s", json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
