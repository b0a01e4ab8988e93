"""GAD pieces by hand: shifted targets, the intersection rule, hull area, RC and RS.

Source: shared/sources/gad-gradient-artificial-distancing.md, sections 4.1-4.3 (targets,
Figure 3's intersection), 5 (RC eq. 1, RS eq. 2) and 6 (the most important half)."""

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.explain.gad import gad_map, importance_ranks, intersected_alphas, support_regression_targets
from xaibench.metrics.complexity import (convex_hull_mask, hull_of_map, important_pixels, most_important_pixels,
                                         relative_complexity, relative_sensitivity, supplementary_mask)


def test_alpha_lowers_the_other_class_logit_only():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    targets = support_regression_targets(logits, torch.tensor([0, 1]), alpha=4.0)
    torch.testing.assert_close(targets, torch.tensor([[2.0, -5.0], [-3.5, 3.0]]))
    torch.testing.assert_close(support_regression_targets(logits, torch.tensor([0, 1]), 0.0), logits)
    with pytest.raises(ValueError, match="binary"):
        support_regression_targets(torch.zeros(2, 3), torch.tensor([0, 1]), 1.0)


def test_importance_ranks_by_hand():
    # values 4, 3, 2, -1: ranks 4/4, 3/4, 2/4 and 0 for the negative pixel
    np.testing.assert_allclose(importance_ranks(np.array([[4.0, 3.0], [2.0, -1.0]])), [[1.0, 0.75], [0.5, 0.0]])
    # ties share their average rank: 3 and 3 take (2 + 3) / 2 = 2.5 -> 0.625
    np.testing.assert_allclose(importance_ranks(np.array([[3.0, 3.0], [1.0, 5.0]])), [[0.625, 0.625], [0.25, 1.0]])


def test_intersection_rule():
    """Figure 3: a feature counts only if it is important in the original AND every support."""
    original = np.array([[4.0, 3.0], [2.0, 1.0]])
    support_a = np.array([[4.0, 1.0], [3.0, 2.0]])
    support_b = np.array([[1.0, 4.0], [3.0, 2.0]])
    # min of ranks: (0,0) min(1, 1) = 1; (0,1) min(.75, .25) = .25; (1,0) min(.5, .75) = .5; (1,1) .25
    np.testing.assert_allclose(gad_map(original, [support_a]), [[1.0, 0.25], [0.5, 0.25]])
    # thresholding at 1 - f is the intersection of the top-f sets: top half of both = (0, 0) only
    assert (gad_map(original, [support_a]) > 0.5).tolist() == [[True, False], [False, False]]
    # with support_b too nothing is in the top half of all three maps
    assert not (gad_map(original, [support_a, support_b]) > 0.5).any()


def test_intersected_maps_are_the_supports_with_positive_alpha():
    """Figure 3: the original and the four supports (alpha = 2, 4, 6, 8) make the five maps."""
    assert intersected_alphas([0, 2, 4, 6, 8]) == [2, 4, 6, 8]


def test_convex_hull_area_of_a_hand_drawn_mask():
    corners = np.zeros((7, 7), bool)
    corners[[1, 1, 5, 5], [1, 5, 1, 5]] = True      # four corners of a 5x5 square
    assert convex_hull_mask(corners).sum() == 25
    line = np.zeros((7, 7), bool)
    line[3, [0, 6]] = True                           # two ends of a row
    assert convex_hull_mask(line).sum() == 7
    assert convex_hull_mask(np.zeros((3, 3), bool)).sum() == 0


def test_most_important_pixels_ignores_negative_zero_and_split_ties():
    attribution = np.array([[3.0, -5.0], [1.0, 0.0]])
    assert most_important_pixels(attribution, 0.5).tolist() == [[True, False], [True, False]]
    # a zero map has no important pixel; a tie straddling the cut is left out whole
    assert not most_important_pixels(np.zeros((3, 3)), 0.5).any()
    tied = np.array([[2.0, 1.0], [1.0, 1.0]])                     # top 2 of 4: 2.0 and one of three 1.0s
    assert most_important_pixels(tied, 0.5).tolist() == [[True, False], [False, False]]


def test_relative_complexity_by_hand():
    original = np.zeros((7, 7))
    original[[1, 1, 5, 5], [1, 5, 1, 5]] = 1.0       # all four positives (fraction 1): hull of 25 pixels
    gad = np.zeros((7, 7))
    gad[1, [1, 5]] = 1.0
    assert hull_of_map(original, 1.0).sum() == 25 and hull_of_map(gad, 1.0).sum() == 5
    assert relative_complexity(hull_of_map(gad, 1.0), hull_of_map(original, 1.0)) == pytest.approx(0.2)


def test_gad_hull_can_be_larger_than_the_original_hull():
    """RC > 1 (Table 1 counts such images for the original): the original's most important
    tenth is a compact 2x5 block; the supports do not find that block but agree with the
    original on the four corners, so the GAD map's own most important tenth spans the image."""
    original = np.ones((10, 10))
    original[4:6, 3:8] = 10.0                        # 10 pixels: the original's top tenth
    corners = (np.array([0, 0, 9, 9]), np.array([0, 9, 0, 9]))
    original[corners] = 5.0                          # next in the original's ranking
    support = np.ones((10, 10))
    support[corners] = 10.0                          # the supports' top pixels
    gad = gad_map(original, [support, support])
    assert gad[0, 0] == pytest.approx(0.885) and gad[4, 4] == pytest.approx(0.485)
    hull_original, hull_gad = hull_of_map(original, 0.1), hull_of_map(gad, 0.1)
    assert hull_original.sum() == 10                 # the block itself
    # ranks (ties averaged): original corners 88.5/100, block 95.5/100; support corners 98.5/100,
    # everything else 48.5/100. GAD: corners min(.885, .985) = .885 beat the block min(.955, .485),
    # so the top tenth holds the 4 corners (the block's 10 tied pixels straddle the cut and are
    # left out): the hull is the whole 100-pixel image
    assert most_important_pixels(gad, 0.1).sum() == 4 and hull_gad.sum() == 100
    assert relative_complexity(hull_gad, hull_original) == pytest.approx(10.0)
    # the supplementary mask M_Orig - M_GAD is clipped at 0: nothing of the original is left outside
    assert not supplementary_mask(hull_original, hull_gad).any()


def test_a_concentrated_map_gets_a_smaller_hull_than_a_diffuse_one_and_rc_falls_either_side_of_1():
    """Under the reading top half AND above 10 % of the peak (section 6 + Figure 4): on a 20 x 20
    map a 4 x 4 peak of 1.0 over a floor of 0.05 keeps the 16 peak pixels (the floor is below
    0.1 of the peak): hull 16 pixels; the same peak over a floor of 0.5 (diffuse: every pixel
    above 10 %) keeps the top half, 200 pixels spread by the floor's noise over the image."""
    rng = np.random.default_rng(0)
    concentrated = np.full((20, 20), 0.05) + rng.uniform(0, 0.01, (20, 20))
    concentrated[8:12, 8:12] = 1.0
    diffuse = np.full((20, 20), 0.5) + rng.uniform(0, 0.1, (20, 20))
    diffuse[8:12, 8:12] = 1.0
    small, large = hull_of_map(concentrated), hull_of_map(diffuse)
    assert small.sum() == 16 and large.sum() > 300            # the half of a noisy floor spans the image
    assert relative_complexity(small, large) == pytest.approx(16 / large.sum()) and 16 / large.sum() < 1
    assert relative_complexity(large, small) > 1
    # the half alone (threshold 0, the earlier reading) cannot tell the two apart
    assert hull_of_map(concentrated, 0.5, 0.0).sum() > 300 and hull_of_map(diffuse, 0.5, 0.0).sum() > 300
    assert important_pixels(concentrated, 0.5, 0.1).sum() == 16


def test_gad_hull_takes_as_many_pixels_as_the_original_kept_and_rc_goes_both_ways():
    """The original keeps its 4 peak pixels (the rest below 10 % of the peak): a 2 x 2 block,
    hull 4. A GAD map whose top 4 ranks are a 2 x 2 block elsewhere: hull 4, RC = 1; whose top
    4 are the four corners of the 10 x 10 map: hull 100, RC = 25; the original spread over
    the corners and GAD's block: RC = 0.04."""
    from xaibench.metrics.complexity import gad_hulls

    block = np.full((10, 10), 0.01)
    block[4:6, 4:6] = 1.0
    corners = np.full((10, 10), 0.01)
    corners[[0, 0, 9, 9], [0, 9, 0, 9]] = 1.0
    other_block = np.zeros((10, 10))
    other_block[0:2, 0:2] = 0.9
    for gad, area in ((other_block, 4), (corners, 100)):
        hull_original, hull_gad = gad_hulls(block, gad)
        assert hull_original.sum() == 4 and hull_gad.sum() == area
    hull_original, hull_gad = gad_hulls(corners, other_block)
    assert relative_complexity(hull_gad, hull_original) == pytest.approx(0.04)


def test_supplementary_mask_is_the_original_hull_minus_the_gad_hull():
    original_hull = np.array([[1, 1, 1, 0]], bool)
    gad_hull = np.array([[0, 1, 0, 1]], bool)        # the last pixel: -1 in M_Orig - M_GAD, clipped to 0
    assert supplementary_mask(original_hull, gad_hull).tolist() == [[True, False, True, False]]


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
    from xaibench.training.regression import logits_of, support_fit, train_support_model

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
    fit = support_fit(original, support, pixels, labels, alpha=3.0)
    assert fit["other_logit_shift"] == pytest.approx(gap.item())
    assert fit["shift_fraction"] == pytest.approx(gap.item() / 3.0)
    assert fit["mse_untrained"] == pytest.approx(3.0 ** 2 / 2)    # one of two logits off by alpha
    assert fit["mse"] < 0.1 * fit["mse_untrained"]


def test_support_fit_of_an_unchanged_copy():
    """A support that learnt nothing: MSE alpha^2 / 2 (= the untrained copy's), no shift."""
    from xaibench.training.regression import support_fit

    original = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    pixels, labels = torch.randn(8, 1, 2, 2), torch.tensor([0, 1] * 4)
    fit = support_fit(original, original, pixels, labels, alpha=8.0)
    assert fit["mse"] == pytest.approx(32.0) and fit["mse_untrained"] == pytest.approx(32.0)
    assert fit["other_logit_shift"] == 0.0 and fit["own_logit_change"] == 0.0
    assert np.isnan(support_fit(original, original, pixels, labels, alpha=0.0)["shift_fraction"])  # null in JSON


def test_defined_mean_leaves_out_undefined_values_and_is_none_without_any():
    from xaibench.studies.gad import defined_mean

    assert defined_mean([0.1, float("nan"), 0.3]) == 0.2
    assert defined_mean([float("nan"), float("nan")]) is None
