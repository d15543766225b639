"""genexp: classic unsupervised generative models on MNIST, as Lightning modules composed by Hydra."""

__version__ = "0.1.0"


class GenexpError(Exception):
    """A user-facing problem (bad value, missing file): printed as one line by `python -m genexp`."""
