"""What a model may ask of its data, so that models need not hard-code MNIST's facts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataInfo:
    """Facts about the data a datamodule serves (available after its `setup()`).

    kind: "image" (x [B, *shape], e.g. [B, 1, 28, 28]), "vector" (flat rows [B, n], e.g. the frames of
        piano rolls) or "sequence" (x [B, T, n] padded with zeros, y the lengths [B]; shape (T_max, n)).
        Callbacks that need images act on "image" data only; a model says which kinds it takes.
    shape: one example as served, channels first, e.g. (1, 28, 28).
    mean_pixel: mean grey level of the training split in [0, 1], before any binarization (e.g. to
        initialise an RBM's visible biases or a decoder's output bias).
    binary: True when the served images are in {0, 1} (data.binarize static, dynamic or threshold).
    """

    name: str
    shape: tuple[int, ...]
    n_classes: int
    class_names: tuple[str, ...]
    mean_pixel: float
    binary: bool
    feature_net: str | None = "mnist_cnn"  # the shipped feature network of the sample metrics on this dataset
    kind: str = "image"
