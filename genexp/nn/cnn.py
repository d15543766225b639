"""The project's small MNIST CNN: the body of the `classifier` model and the feature network of the
sample metrics (`genexp.metrics.features`, shipped weights)."""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """conv-conv-pool-conv-conv-pool-fc: [B, 1, 28, 28] -> features [B, n_features] -> logits [B, n_classes].

    `mean_pixel` is a fixed offset of the input (MNIST's mean grey level, the same for every dataset: the
    first BatchNorm absorbs any constant, and a shipped network must be loaded with the offset it was
    trained with, which its recorded `arch` gives when it is not this default)."""

    def __init__(
        self, channels: int, n_features: int, dropout: float, n_classes: int = 10, mean_pixel: float = 0.1307
    ) -> None:
        super().__init__()
        c = channels
        self.mean_pixel = mean_pixel
        self.body = nn.Sequential(
            *_block(1, c),
            *_block(c, c),
            nn.MaxPool2d(2),  # [B, c, 14, 14]
            *_block(c, 2 * c),
            *_block(2 * c, 2 * c),
            nn.MaxPool2d(2),  # [B, 2c, 7, 7]
            nn.Flatten(),
            nn.Linear(2 * c * 49, n_features),
            nn.BatchNorm1d(n_features),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_features, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, n_features] for x [B, 1, 28, 28] in [0, 1]."""
        return self.body(x - self.mean_pixel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
