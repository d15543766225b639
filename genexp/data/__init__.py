from genexp.data.datamodule import MNISTDataModule
from genexp.data.mnist import load_mnist, resolve_root

__all__ = ["MNISTDataModule", "load_mnist", "resolve_root"]
