"""Pictures: the grid layout and the captions under a classifier's mistakes."""

from __future__ import annotations

import numpy as np
import torch

from genexp import viz


def test_grid_places_each_image_in_its_cell():
    images = torch.zeros(3, 1, 4, 4)
    images[1] = 1.0  # the second tile white, the others black
    out = viz.grid(images, nrow=2, pad=1)
    assert out.shape == (2 * 5 + 1, 2 * 5 + 1)
    assert (out[1:5, 1:5] == 0).all() and (out[1:5, 6:10] == 255).all() and (out[6:10, 1:5] == 0).all()


def test_captioned_grid_draws_text_below_each_tile_only():
    images = torch.ones(3, 1, 28, 28)  # white tiles: any dark pixel in a band is text
    out = viz.captioned_grid(images, ["7 as 1", "", "3 as 8"], nrow=3, scale=2)
    h, w, band, pad = 56, 56, 12, 2
    assert out.shape == (pad + h + band + pad, pad + 3 * (w + pad))
    bands = [out[pad + h : pad + h + band, pad + c * (w + pad) : pad + c * (w + pad) + w] for c in range(3)]
    assert (bands[0] < 128).any() and (bands[2] < 128).any()
    assert (bands[1] == 255).all()  # an empty caption draws nothing
    assert np.array_equal(out[pad : pad + h, pad : pad + w], np.full((h, w), 255, np.uint8))
