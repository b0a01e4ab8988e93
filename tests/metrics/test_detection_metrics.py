"""Detection-study metrics on hand-built maps."""

import numpy as np
import pytest
import torch

from xaibench.metrics.detection import (coco_map, flipping_auc, flipping_curve, mass_entropy_bits, relevance_in_box,
                                        relevance_in_mask, superpixel_mass_entropy_bits, superpixel_mean_map,
                                        superpixel_value_entropy_bits, value_entropy_bits)


def test_study_entropy_counts_relevance_values():
    """ssd-coco-lrp-deeplift-lime-shap.md, 4.3, eq. 4.1: p_i is the share of pixels with value r_i."""
    assert value_entropy_bits(np.full((4, 4), 0.3)) == 0.0                     # one value
    assert value_entropy_bits(np.array([[1.0, 1.0], [2.0, 3.0]])) == pytest.approx(1.5)  # (1/2, 1/4, 1/4)
    assert value_entropy_bits(np.array([[1.0, 1.0], [2.0, 3.0]]) * 100) == pytest.approx(1.5)  # scale-free
    assert value_entropy_bits(np.arange(16.0)) == pytest.approx(4.0)           # 16 distinct: log2 16
    # 250 equal superpixels with distinct weights: the study's log2(250) = 7.97
    lime_like = np.repeat(np.random.default_rng(0).normal(size=250), 4)
    assert value_entropy_bits(lime_like) == pytest.approx(np.log2(250))
    # where the two entropies disagree: mass on one pixel, but four distinct values
    peaked = np.array([100.0, 0.01, 0.02, 0.03])
    assert value_entropy_bits(peaked) == pytest.approx(2.0) and mass_entropy_bits(peaked) < 0.01
    segments = np.array([[0, 0], [1, 1]])                                      # two superpixels
    assert superpixel_value_entropy_bits(np.array([[1.0, 3.0], [5.0, 5.0]]), segments) == pytest.approx(1.0)
    assert superpixel_value_entropy_bits(np.array([[1.0, 3.0], [2.0, 2.0]]), segments) == 0.0  # means 2, 2


def test_entropy_of_hand_built_maps():
    assert mass_entropy_bits(np.ones((2, 2))) == pytest.approx(2.0)            # 4 equal pixels: log2 4
    assert mass_entropy_bits(np.array([[5.0, 0], [0, 0]])) == pytest.approx(0.0)  # all on one pixel
    assert mass_entropy_bits(np.array([1.0, -1.0, 2.0])) == pytest.approx(1.5)  # |R| -> (1/4, 1/4, 1/2)
    assert np.isnan(mass_entropy_bits(np.zeros(3)))


def test_superpixel_entropy_and_mean_map():
    attribution = np.array([[1.0, 1.0, 2.0, 0.0]])
    segments = np.array([[0, 0, 1, 1]])
    assert superpixel_mass_entropy_bits(attribution, segments) == pytest.approx(1.0)  # (2, 2) -> two equal halves
    assert superpixel_mean_map(attribution, segments).tolist() == [[1.0, 1.0, 1.0, 1.0]]


def test_relevance_in_box_counts_positive_relevance_only():
    attribution = np.zeros((4, 4))
    attribution[1, 1] = 3.0   # inside box (1, 1, 3, 3)
    attribution[0, 3] = 1.0   # outside
    attribution[2, 2] = -5.0  # negative: ignored
    assert relevance_in_box(attribution, (1, 1, 3, 3)) == pytest.approx(0.75)
    assert np.isnan(relevance_in_box(-np.ones((2, 2)), (0, 0, 2, 2)))


def test_relevance_in_mask_by_hand():
    attribution = np.array([[2.0, 1.0], [-4.0, 1.0]])
    mask = np.array([[1, 0], [1, 0]])
    assert relevance_in_mask(attribution, mask) == pytest.approx(0.5)  # 2 of (2 + 1 + 1); -4 ignored
    assert relevance_in_mask(attribution, np.ones((2, 2))) == pytest.approx(1.0)


def test_flipping_curve_and_auc_by_hand():
    # score = softmax column 1 of logits (0, log(v / (1 - v))) with v = the mean of channel 0
    def model(pixels):
        v = pixels[:, 0].mean((1, 2)).clamp(1e-6, 1 - 1e-6)
        return torch.stack([torch.zeros_like(v), torch.log(v / (1 - v))], 1)

    image = torch.ones(3, 1, 2)
    attribution = np.array([[2.0, 1.0]])
    curve = flipping_curve(model, image, attribution, 1, torch.zeros(3), steps=2)
    assert curve == pytest.approx([1.0, 0.5, 0.0], abs=1e-5)  # one of two pixels gray, then both
    assert flipping_auc(curve)[0] == pytest.approx(0.5, abs=1e-5)


def test_coco_map_is_one_for_perfect_detections_and_lower_for_a_miss():
    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32)
    labels, rows = np.array([1, 2]), np.array([0, 1])
    perfect = [{"boxes": torch.tensor(boxes[:1]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor(boxes[1:]), "scores": torch.tensor([0.8]), "labels": torch.tensor([2])}]
    assert coco_map(perfect, boxes, labels, rows, 2, [1, 2]) == {"map": 1.0, "map_50": 1.0}
    missed = [perfect[0], {"boxes": torch.tensor([[60.0, 60, 70, 70]]), "scores": torch.tensor([0.8]),
                           "labels": torch.tensor([2])}]
    assert coco_map(missed, boxes, labels, rows, 2, [1, 2])["map_50"] == pytest.approx(0.5)
