"""GAD pieces by hand: shifted targets, the intersection rule, hull area, RC and RS."""

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.explain.gad import gad_map, gad_mask, support_regression_targets, top_fraction_mask
from xaibench.metrics.complexity import (convex_hull_mask, hull_of_map, relative_complexity, relative_sensitivity,
                                         top_positive_pixels)


def test_alpha_lowers_the_other_class_logit_only():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    targets = support_regression_targets(logits, torch.tensor([0, 1]), alpha=4.0)
    torch.testing.assert_close(targets, torch.tensor([[2.0, -5.0], [-3.5, 3.0]]))
    torch.testing.assert_close(support_regression_targets(logits, torch.tensor([0, 1]), 0.0), logits)
    with pytest.raises(ValueError, match="binary"):
        support_regression_targets(torch.zeros(2, 3), torch.tensor([0, 1]), 1.0)


def test_intersection_rule():
    original = np.array([[4.0, 3.0], [2.0, 1.0]])
    support_a = np.array([[4.0, 1.0], [3.0, 2.0]])   # top half: (0,0), (1,0)
    support_b = np.array([[1.0, 4.0], [3.0, 2.0]])   # top half: (0,1), (1,0)
    assert top_fraction_mask(original, 0.5).tolist() == [[True, True], [False, False]]
    assert gad_mask(original, [support_a], 0.5).tolist() == [[True, False], [False, False]]
    assert not gad_mask(original, [support_a, support_b], 0.5).any()  # nothing important everywhere
    np.testing.assert_array_equal(gad_map(original, [support_a], 0.5), [[4.0, 0.0], [0.0, 0.0]])


def test_convex_hull_area_of_a_hand_drawn_mask():
    corners = np.zeros((7, 7), bool)
    corners[[1, 1, 5, 5], [1, 5, 1, 5]] = True      # four corners of a 5x5 square
    assert convex_hull_mask(corners).sum() == 25
    line = np.zeros((7, 7), bool)
    line[3, [0, 6]] = True                           # two ends of a row
    assert convex_hull_mask(line).sum() == 7
    assert convex_hull_mask(np.zeros((3, 3), bool)).sum() == 0


def test_top_positive_pixels_ignores_negative_and_zero():
    attribution = np.array([[3.0, -5.0], [1.0, 0.0]])
    assert top_positive_pixels(attribution, 0.5).tolist() == [[True, False], [False, False]]


def test_relative_complexity_by_hand():
    original = np.zeros((7, 7))
    original[[1, 1, 5, 5], [1, 5, 1, 5]] = 1.0       # all four positives (fraction 1): hull of 25 pixels
    gad = np.zeros((7, 7))
    gad[1, [1, 5]] = 1.0
    assert hull_of_map(original, 1.0).sum() == 25 and hull_of_map(gad, 1.0).sum() == 5
    assert relative_complexity(hull_of_map(gad, 1.0), hull_of_map(original, 1.0)) == pytest.approx(0.2)


class SumModel(nn.Module):
    def forward(self, x):  # N_0 = sum of all pixels, N_1 = 0
        total = x.flatten(1).sum(1)
        return torch.stack([total, torch.zeros_like(total)], 1)


def test_relative_sensitivity_by_hand():
    image = torch.ones(1, 4, 4)
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True                               # remove 4 pixels of value 1: output drops by 4
    assert relative_sensitivity(SumModel(), image, mask, target=0) == pytest.approx(1.0)
    image[0, 0, 0] = 5.0                              # now the removed pixels sum to 8
    assert relative_sensitivity(SumModel(), image, mask, target=0) == pytest.approx(2.0)
    assert np.isnan(relative_sensitivity(SumModel(), image, np.zeros((4, 4), bool), 0))


def test_support_model_learns_the_shifted_targets():
    from xaibench.training.regression import logits_of, train_support_model

    torch.manual_seed(0)
    original = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    pixels, labels = torch.randn(64, 1, 2, 2), torch.randint(0, 2, (64,))
    pixels[:, 0, 0, 0] = labels.float()  # the class is visible, so a linear model can follow the shift
    before = logits_of(original, pixels)
    support = train_support_model(original, pixels, labels, alpha=3.0, epochs=300, lr=0.05, batch_size=64, seed=0)
    rows = torch.arange(64)
    gap = (before[rows, 1 - labels] - logits_of(support, pixels)[rows, 1 - labels]).mean()
    assert gap.item() == pytest.approx(3.0, abs=0.1)
    assert torch.equal(original(pixels), before)      # the original is left untouched
