from genexp.data.datamodule import ImageDataModule, MNISTDataModule, TensorDataModule
from genexp.data.fake import FakeDataModule
from genexp.data.info import DataInfo
from genexp.data.mnist import load_mnist, resolve_root
from genexp.data.sequences import BachChoralesDataModule, FakeSequenceDataModule, SequenceDataModule

__all__ = [
    "BachChoralesDataModule",
    "DataInfo",
    "FakeDataModule",
    "FakeSequenceDataModule",
    "ImageDataModule",
    "MNISTDataModule",
    "SequenceDataModule",
    "TensorDataModule",
    "load_mnist",
    "resolve_root",
]
