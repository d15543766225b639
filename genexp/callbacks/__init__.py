"""Callbacks shared by every model: checkpoints, pictures and evaluation, each using only the models'
contracts (genexp.models.base)."""

from genexp.callbacks.checkpoint import Checkpoint
from genexp.callbacks.evaluation import (
    CodePurity,
    FrameAccuracy,
    FreeEnergyGap,
    LogLikelihood,
    PCABaseline,
    SampleQuality,
    SequenceLikelihood,
)
from genexp.callbacks.guard import Diverged, DivergenceGuard
from genexp.callbacks.pictures import (
    ClassifierErrors,
    CodeTraversal,
    FilterMosaic,
    MarkovChains,
    PianoRolls,
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
    "PianoRolls",
    "Reconstructions",
    "SampleGrid",
    "SampleQuality",
    "FrameAccuracy",
    "SequenceLikelihood",
    "StagePairs",
]
