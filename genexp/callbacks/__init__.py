"""Callbacks shared by every model: checkpoints, pictures and evaluation, each using only the models'
contracts (genexp.models.base)."""

from genexp.callbacks.checkpoint import Checkpoint
from genexp.callbacks.evaluation import FreeEnergyGap, LogLikelihood, PCABaseline, SampleQuality
from genexp.callbacks.guard import Diverged, DivergenceGuard
from genexp.callbacks.pictures import ClassifierErrors, FilterMosaic, MarkovChains, Reconstructions, SampleGrid

__all__ = [
    "Checkpoint",
    "Diverged",
    "DivergenceGuard",
    "ClassifierErrors",
    "FilterMosaic",
    "FreeEnergyGap",
    "LogLikelihood",
    "MarkovChains",
    "PCABaseline",
    "Reconstructions",
    "SampleGrid",
    "SampleQuality",
]
