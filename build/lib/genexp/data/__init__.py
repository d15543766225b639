from genexp.data.datamodule import ImageDataModule, MNISTDataModule
from genexp.data.fake import FakeDataModule
from genexp.data.info import DataInfo
from genexp.data.mnist import load_mnist, resolve_root

__all__ = ["DataInfo", "FakeDataModule", "ImageDataModule", "MNISTDataModule", "load_mnist", "resolve_root"]
