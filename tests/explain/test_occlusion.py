"""Occlusion, checked by hand on a linear score: occluding a window removes exactly its pixels' share."""

import numpy as np
import torch
from torch import nn

from xaibench.explain import METHODS
from xaibench.models import NormalizedClassifier


class LeftColumns(nn.Module):
    """Logit 0 = Σ of the pixels in the four left columns (all channels); logit 1 = −Σ of all."""

    def forward(self, x):
        return torch.stack([x[..., :4].sum((1, 2, 3)), -x.sum((1, 2, 3))], -1)


def test_each_window_gets_the_score_its_pixels_carry():
    model = NormalizedClassifier(LeftColumns(), [0.0] * 3, [1.0] * 3)
    pixels = torch.arange(3 * 8 * 8, dtype=torch.float32).reshape(1, 3, 8, 8) / 100
    maps = METHODS["occlusion"](model, pixels, torch.tensor([0]), options={"window": 4, "stride": 4})
    assert maps.shape == (1, 8, 8)
    # non-overlapping 4x4 windows: a pixel of a left window carries that window's sum (per channel,
    # summed over the 3 channels); the right windows do not touch logit 0
    for top in (0, 4):
        window_sum = float(pixels[0, :, top:top + 4, :4].sum())
        np.testing.assert_allclose(maps[0, top:top + 4, :4], 3 * window_sum, rtol=1e-5)
    np.testing.assert_array_equal(maps[0, :, 4:], 0)


def test_overlapping_windows_average_and_the_target_matters():
    model = NormalizedClassifier(LeftColumns(), [0.0] * 3, [1.0] * 3)
    pixels = torch.ones(1, 3, 8, 8)
    left = METHODS["occlusion"](model, pixels, torch.tensor([0]), options={"window": 2, "stride": 1})
    everything = METHODS["occlusion"](model, pixels, torch.tensor([1]), options={"window": 2, "stride": 1})
    assert (left[0, :, 5:] == 0).all() and (left[0, :, :3] > 0).all()
    # logit 1 = -Σ x: occluding any window raises it, so every pixel's attribution is negative
    assert (everything < 0).all()
