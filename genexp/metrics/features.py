"""The shipped feature networks of the sample metrics: weights trained once by the project
(`experiments/feature_net/`), committed under genexp/metrics/weights/ and pinned here by sha256, so
every machine computes `fid_mnist_cnn` with the same network. Nothing is trained or downloaded on use.

Each `<name>.pt` is a float32 state_dict of `genexp.nn.cnn.SmallCNN` (loaded with weights_only=True);
`<name>.json` beside it records the architecture, recipe, seed, data and test accuracy.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from genexp import GenexpError
from genexp.nn.cnn import SmallCNN

WEIGHTS = Path(__file__).resolve().parent / "weights"
# sha256 of each shipped weights file: a different file (edited, truncated, re-trained) is refused
SHA256 = {
    "mnist_cnn": "616289be10d9fe08d378726c48d3a2380b326a2d3c3599736350586455be2e01",
    "fashion_cnn": "af76f5fbd378476ab968324401b860e5827c789158f357de98f1be1d8782a0f6",  # data=fashion_mnist
}
_LOADED: dict[tuple[str, str], SmallCNN] = {}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def feature_net_info(name: str) -> dict:
    """The recipe record of a shipped feature network (architecture, data, seed, test accuracy)."""
    if name not in SHA256:
        raise GenexpError(f"feature_net={name!r} is not a shipped feature network; valid: {', '.join(SHA256)}")
    return {"name": name, "sha256": SHA256[name], **json.loads((WEIGHTS / f"{name}.json").read_text())}


def load_feature_net(name: str = "mnist_cnn", device: torch.device | str = "cpu") -> SmallCNN:
    """The shipped network `name` in eval mode on `device`, after checking its file's sha256."""
    key = (name, str(device))
    if key not in _LOADED:
        info = feature_net_info(name)
        path = WEIGHTS / f"{name}.pt"
        if not path.is_file() or sha256(path) != SHA256[name]:
            raise GenexpError(f"{path}: missing or not the shipped file (sha256 must be {SHA256[name]})")
        # built without drawing from the global RNG (its random init is overwritten at once): loaded
        # lazily in the middle of a training, it would otherwise shift every random number after it
        with torch.random.fork_rng(devices=[]):
            net = SmallCNN(**info["arch"])
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        _LOADED[key] = net.to(device).eval().requires_grad_(False)
    return _LOADED[key]
