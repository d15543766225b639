"""Callbacks shared by every model: checkpoints, pictures and evaluation, each using only the models'
contracts (genexp.models.base)."""

from genexp.callbacks.checkpoint import Checkpoint
from genexp.callbacks.evaluation import CodePurity, FreeEnergyGap, LogLikelihood, PCABaseline, SampleQuality
from genexp.callbacks.guard import Diverged, DivergenceGuard
from genexp.callbacks.pictures import (
    ClassifierErrors,
    CodeTraversal,
    FilterMosaic,
    MarkovChains,
    Reconstructions,
    SampleGrid,
    StagePairs,
)

__all__ = [
    "Checkpoint",
    "Diverged",
    "DivergenceGuard",
    "ClassifierErrors",
    "CodePurity",
    "CodeTraversal",
    "FilterMosaic",
    "FreeEnergyGap",
    "LogLikelihood",
    "MarkovChains",
    "PCABaseline",
    "Reconstructions",
    "SampleGrid",
    "SampleQuality",
    "StagePairs",
]
