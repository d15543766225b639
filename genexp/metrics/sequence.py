"""Metrics of piano-roll sequences: frame-level accuracy and the independent-Bernoulli baseline.

Frame-level accuracy (Bay, Ehmann & Downie 2009; the measure of Boulanger-Lewandowski et al. 2012, sec. 6):
ACC = TP / (TP + FP + FN), the counts summed over every frame of every piece, where a frame's prediction
is made from the frames before it.
"""

from __future__ import annotations

import math

import torch


def frame_counts(pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor) -> tuple[int, int, int]:
    """(TP, FP, FN) over the valid frames: pred, target [B, T, n] (booleans or {0, 1}), lengths [B]."""
    t = min(pred.shape[1], target.shape[1])
    mask = (torch.arange(t, device=lengths.device)[None] < lengths[:, None])[..., None]
    p, y = pred[:, :t].bool() & mask, target[:, :t].bool() & mask
    return int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum())


def frame_accuracy(pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor) -> float:
    tp, fp, fn = frame_counts(pred, target, lengths)
    return tp / (tp + fp + fn) if tp + fp + fn else 1.0


def bernoulli_marginals(train_frames: torch.Tensor, smoothing: float = 1.0) -> torch.Tensor:
    """The independent-Bernoulli model of frames: each key's smoothed frequency on the training frames
    (add-`smoothing` counts), float64 [n]."""
    x = train_frames.reshape(-1, train_frames.shape[-1]).double()
    return (x.sum(0) + smoothing) / (len(x) + 2 * smoothing)


def bernoulli_loglik(p: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """log prod_i p_i^x_i (1 - p_i)^(1 - x_i) per frame [N] (nats) of frames [N, n]."""
    x = frames.double()
    return x @ p.log() + (1 - x) @ (-p).log1p()


RANDOM_GUESS_PER_STEP = 88 * math.log(0.5)  # -61.0 nats: every one of 88 keys a fair coin
