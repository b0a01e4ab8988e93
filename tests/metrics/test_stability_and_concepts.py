"""Stability, removal and concept-ablation metrics on hand-checkable inputs."""

import numpy as np
import pytest
import torch

from xaibench.metrics.concepts import ablation_correlation, concept_ablation_drops
from xaibench.metrics.stability import (add_noise, cosine, heatmap_ssim, jaccard, mask_jaccard, removal_masks_pixels,
                                        removal_masks_segments, segment_weights, top_segment_pixels, top_segments)
from xaibench.models.senn import SENN
from tests.test_senn import ConstantParameterizer, LinearConceptizer


def test_jaccard_by_hand():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == pytest.approx(2 / 4)
    assert jaccard({1}, {1}) == 1.0 and jaccard({1}, {2}) == 0.0 and jaccard(set(), set()) == 1.0


def test_top_segments_and_weights_from_a_painted_map():
    segments = np.array([[0, 0, 1], [2, 2, 3]])
    lime_map = np.array([[0.5, 0.5, -1.0], [2.0, 2.0, 0.5]])
    weights = segment_weights(lime_map, segments)
    assert weights == {0: 0.5, 1: -1.0, 2: 2.0, 3: 0.5}
    assert top_segments(weights, 2) == {2, 0}  # tie 0.5 between 0 and 3: smaller id first


def test_top_superpixels_compared_as_pixel_sets_across_segmentations():
    """The study re-runs LIME on the noisy image, which segments it anew (senn-cifar10.md,
    4.2 LIME "Stability"): the top superpixels of two segmentations are compared as pixels."""
    clean_segments = np.array([[0, 0, 1, 1], [2, 2, 3, 3]])
    clean_map = np.array([[5.0, 5.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])   # top 1: segment 0 = 2 pixels
    noisy_segments = np.array([[0, 1, 1, 1], [2, 2, 2, 2]])              # a different segmentation
    noisy_map = np.array([[9.0, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])   # top 1: segment 0 = 1 pixel
    a = top_segment_pixels(clean_map, clean_segments, 1)
    b = top_segment_pixels(noisy_map, noisy_segments, 1)
    assert a.tolist() == [[True, True, False, False], [False] * 4]
    assert mask_jaccard(a, b) == pytest.approx(1 / 2)                    # 1 shared pixel of 2
    assert mask_jaccard(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_ssim_of_identical_maps_is_one_and_of_unrelated_maps_near_zero():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(16, 16))
    assert heatmap_ssim(a, a) == pytest.approx(1.0)
    assert heatmap_ssim(a, 3 * a) == pytest.approx(1.0)  # each map is scaled by its own max
    assert abs(heatmap_ssim(a, rng.normal(size=(16, 16)))) < 0.1


def test_cosine_by_hand():
    assert cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(2**-0.5)
    assert np.isnan(cosine(np.zeros(2), np.ones(2)))


def test_removal_masks():
    attribution = np.array([[4.0, 3.0], [2.0, 1.0]])
    np.testing.assert_array_equal(removal_masks_pixels(attribution, 0.5), [[True, True], [False, False]])
    segments = np.array([[0, 0, 1], [2, 2, 1]])
    lime_map = np.array([[1.0, 1.0, 5.0], [0.0, 0.0, 5.0]])
    np.testing.assert_array_equal(removal_masks_segments(lime_map, segments, 0.2),  # ceil(0.6) = 1 segment
                                  [[False, False, True], [False, False, True]])


def test_removal_ranks_by_magnitude():
    """The study removes "the top k% of superpixels with the highest absolute attribution"
    (senn-cifar10.md, 4.2 LIME "Faithfulness"): a strongly negative pixel goes first."""
    from xaibench.studies.senn import _removal

    class FirstPixel(torch.nn.Module):   # logits (10 * x[0, 0, 0], 0): the first pixel decides
        def forward(self, x):
            z = 10 * x[:, 0, 0, 0]
            return torch.stack([z, torch.zeros_like(z)], 1)

    pixels = torch.ones(1, 3, 2, 2)
    attribution = np.array([[[-9.0, 1.0], [2.0, 3.0]]])               # |-9| is the largest magnitude
    result = _removal(FirstPixel(), pixels, attribution, lambda i, m, f: removal_masks_pixels(m, f), [0.25],
                      fill=torch.zeros(3))
    p0 = 1 / (1 + np.exp(-10.0))                                       # class 0 before; 0.5 once removed
    assert result["confidence_drop_top_0.25"] == pytest.approx(p0 - 0.5, abs=1e-6)
    assert result["flip_rate_top_0.25"] == 0.0                         # a tie at 0.5 keeps argmax 0


def test_noise_is_seeded_and_clipped():
    x = torch.full((1, 3, 4, 4), 0.99)
    a, b = add_noise(x, 0.1, seed=3), add_noise(x, 0.1, seed=3)
    assert torch.equal(a, b) and a.max() <= 1.0 and not torch.equal(a, x)


def test_concept_ablation_on_a_hand_built_senn():
    # Two classes, two concepts h = (x1, x2) on a 2x2 input; θ_0 = (2, 1), θ_1 = 0.
    # x = (1, 1, 0, 0): logits (3, 0), p_0 = σ(3). Zeroing h_1 gives logits (1, 0); h_2: (2, 0).
    weight = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    senn = SENN(LinearConceptizer(weight), ConstantParameterizer(torch.tensor([[2.0, 1.0], [0.0, 0.0]])), 2, 2)
    x = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    drops, relevances = concept_ablation_drops(senn, x)
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    np.testing.assert_allclose(drops[0], [sigmoid(3) - sigmoid(1), sigmoid(3) - sigmoid(2)], rtol=1e-5)
    np.testing.assert_allclose(relevances[0], [2.0, 1.0])
    assert ablation_correlation(relevances, drops)[0] == pytest.approx(1.0)  # two points: perfectly aligned
    assert ablation_correlation(np.array([[1.0, 2.0, 3.0]]), np.array([[3.0, 2.0, 1.0]]))[0] == pytest.approx(-1.0)
