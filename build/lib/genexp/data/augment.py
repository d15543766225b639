"""Data augmentation shared by the models that fine-tune discriminatively."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Translate each image by up to max_shift pixels (zero fill): the augmentation behind most
    sub-1% MNIST CNN results (e.g. Simard et al. 2003 use elastic + affine distortions)."""
    if max_shift == 0:
        return x
    b = x.shape[0]
    padded = F.pad(x, (max_shift,) * 4)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), device=x.device)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), device=x.device)
    rows = (dy[:, None] + torch.arange(28, device=x.device))[:, :, None]  # [B, 28, 1]
    cols = (dx[:, None] + torch.arange(28, device=x.device))[:, None, :]  # [B, 1, 28]
    return padded[torch.arange(b, device=x.device)[:, None, None], 0, rows, cols].unsqueeze(1)
