"""Faithfulness metrics on a model whose output is a known function of the visible pixels.

LeftHalfModel: P(class 1) = mean of channel 0 over the left half of the image. On a 4x4
all-ones image with 8 steps (2 pixels per step), deleting the left half first takes the
score 1 -> 0 in 4 steps; deleting the right half first leaves it at 1 for 4 steps.
"""

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.metrics import METRICS
from xaibench.metrics.faithfulness import (FaithfulnessEvidence, area_under_curve, collect_evidence,
                                           insertion_canvas, perturbation_curve, saliency_ranks)


class LeftHalfModel(nn.Module):
    def forward(self, x):  # [N, 3, H, W] -> logits [N, 2] with softmax = (1 - p, p)
        p = x[:, 0, :, : x.shape[-1] // 2].mean((1, 2)).clamp(1e-6, 1 - 1e-6)
        return torch.stack([torch.log(1 - p), torch.log(p)], dim=1)


ONES = torch.ones(3, 4, 4)
LEFT_FIRST = np.array([[2, 2, 1, 1]] * 4, dtype=float)   # left half more salient
RIGHT_FIRST = np.array([[1, 1, 2, 2]] * 4, dtype=float)


def deletion(saliency):
    return perturbation_curve(LeftHalfModel(), ONES, saliency, 1, start=ONES, end=torch.zeros(3, 4, 4), steps=8)


def test_ranks_are_stable_on_ties():
    assert saliency_ranks(np.array([[1.0, 3.0], [3.0, 1.0]])).tolist() == [2, 0, 1, 3]


def test_deletion_curve_and_auc_by_hand():
    scores, step_saliency = deletion(LEFT_FIRST)
    np.testing.assert_allclose(scores, [1, .75, .5, .25, 0, 0, 0, 0, 0], atol=1e-5)
    np.testing.assert_allclose(step_saliency, [4, 4, 4, 4, 2, 2, 2, 2])
    assert area_under_curve(scores[None])[0] == pytest.approx(0.25, abs=1e-5)  # (2.5 - 0.5) / 8
    scores, _ = deletion(RIGHT_FIRST)
    np.testing.assert_allclose(scores, [1, 1, 1, 1, 1, .75, .5, .25, 0], atol=1e-5)
    assert area_under_curve(scores[None])[0] == pytest.approx(0.75, abs=1e-5)  # (6.5 - 0.5) / 8


def test_insertion_curve_by_hand():
    scores, _ = perturbation_curve(LeftHalfModel(), ONES, LEFT_FIRST, 1, start=torch.zeros(3, 4, 4), end=ONES,
                                   steps=8)
    np.testing.assert_allclose(scores, [0, .25, .5, .75, 1, 1, 1, 1, 1], atol=1e-5)
    assert area_under_curve(scores[None])[0] == pytest.approx(0.75, abs=1e-5)


def test_correlations_are_plus_and_minus_one():
    good, _ = deletion(LEFT_FIRST)
    bad, _ = deletion(RIGHT_FIRST)
    sal = np.array([[4, 4, 4, 4, 2, 2, 2, 2]], dtype=float)
    dc = METRICS["DC"]
    ev = lambda d: FaithfulnessEvidence(d[None], sal, d[None], sal, np.ones(1), np.ones(1))  # noqa: E731
    assert dc(ev(good))[0] == pytest.approx(1.0, abs=1e-6)   # saliency tracks the drops
    assert dc(ev(bad))[0] == pytest.approx(-1.0, abs=1e-6)
    rising = np.array([0, .25, .5, .75, 1, 1, 1, 1, 1])
    assert METRICS["IC"](ev(rising))[0] == pytest.approx(1.0, abs=1e-6)
    assert np.isnan(dc(ev(np.ones(9)))[0])  # constant curve: correlation undefined


def test_average_drop_and_increase_in_confidence_by_hand():
    evidence = FaithfulnessEvidence(*(np.zeros((2, 3)),) * 4, full_scores=np.array([0.5, 0.8]),
                                    explanation_map_scores=np.array([0.6, 0.4]))
    np.testing.assert_allclose(METRICS["AD"](evidence), [0.0, 50.0])   # max(0, .8-.4)/.8
    np.testing.assert_allclose(METRICS["IIC"](evidence), [100.0, 0.0])


def test_collect_evidence_end_to_end():
    # explanation map L = left 0.5, right 1 -> E keeps the left half at 0.5 -> O = 0.5, AD = 50 %.
    pixels = ONES.unsqueeze(0)
    maps = np.array([[[0.5, 0.5, 1, 1]] * 4], dtype=np.float32)
    evidence = collect_evidence(LeftHalfModel(), pixels, maps, torch.tensor([1]), steps=8, blur_sigma=1.0,
                                deletion_fill=torch.zeros(3))
    np.testing.assert_allclose(evidence.deletion_scores[0], [1, 1, 1, 1, 1, .75, .5, .25, 0], atol=1e-5)
    np.testing.assert_allclose(evidence.insertion_scores[0], np.ones(9), atol=1e-5)  # blur of a constant image
    assert METRICS["AD"](evidence)[0] == pytest.approx(50.0, abs=1e-3)
    assert METRICS["DAUC"](evidence)[0] == pytest.approx(0.75, abs=1e-5)


def test_insertion_canvas_blurs_but_keeps_constants():
    torch.manual_seed(0)
    noisy = torch.rand(3, 32, 32)
    assert insertion_canvas(noisy, 5.0).std() < noisy.std() / 3
    torch.testing.assert_close(insertion_canvas(ONES * 0.3, 5.0), ONES * 0.3)


def test_every_registered_metric_returns_one_value_per_image():
    evidence = FaithfulnessEvidence(np.random.rand(3, 5), np.random.rand(3, 4), np.random.rand(3, 5),
                                    np.random.rand(3, 4), np.random.rand(3), np.random.rand(3))
    optional = {"faithfulness_correlation", "ROAD_MoRF", "ROAD_LeRF", "SRG", "IROF", "infidelity"}
    assert set(METRICS) == {"IAUC", "DAUC", "IC", "DC", "AD", "IIC"} | optional
    assert all(METRICS[m](evidence) is None for m in optional)             # none asked for
    evidence.subset_saliency, evidence.subset_drops = np.random.rand(3, 10), np.random.rand(3, 10)
    evidence.road_morf, evidence.road_lerf = np.random.rand(3, 4), np.random.rand(3, 4)
    evidence.region_scores = np.random.rand(3, 6)
    evidence.infidelity_dots, evidence.infidelity_drops = np.random.rand(3, 8), np.random.rand(3, 8)
    for metric in METRICS.values():
        assert metric(evidence).shape == (3,)


def test_reported_values_keep_six_significant_digits_below_one():
    from xaibench.metrics.registry import reported

    assert reported(40.7652234) == 40.765223
    assert reported(0.99187612) == 0.991876          # as round(., 6) from 0.1 up
    assert reported(3.1234567e-06) == 3.12346e-06    # round(., 6) would give 3e-06
    assert np.isnan(reported(float("nan")))
