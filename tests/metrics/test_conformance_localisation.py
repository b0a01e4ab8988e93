"""Conformance of the localisation metrics with Quantus 0.6 (Hedström et al. 2023), on the
same maps and masks: equal where no pixels tie, and the documented difference where they
do (docs/fidelity.yaml, "pointing game", "relevance rank accuracy")."""

import warnings

import numpy as np
import pytest
import torch

from xaibench.metrics.localisation import pointing_game, relevance_mass_accuracy, relevance_rank_accuracy

quantus = pytest.importorskip("quantus")

SIZE = 12


def _masks(rng, n):
    masks = np.zeros((n, SIZE, SIZE), bool)
    for m in masks:                                        # a rectangle per image, 4..8 px a side
        h, w = rng.integers(4, 9, 2)
        top, left = rng.integers(0, SIZE - h), rng.integers(0, SIZE - w)
        m[top:top + h, left:left + w] = True
    return masks


def _quantus(metric, maps, masks):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * SIZE * SIZE, 2))   # unused by these metrics
    x = np.random.default_rng(0).random((len(maps), 3, SIZE, SIZE)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = metric(disable_warnings=True)(model=model, x_batch=x, y_batch=np.zeros(len(maps), int),
                                               a_batch=maps[:, None].astype(np.float32),
                                               s_batch=masks[:, None].astype(np.float32), device="cpu")
    return np.asarray(scores, np.float64)


@pytest.fixture(scope="module")
def untied():
    rng = np.random.default_rng(7)
    return rng.random((40, SIZE, SIZE)), _masks(rng, 40)   # continuous maps: no two pixels tie


def test_relevance_mass_equals_quantus(untied):
    maps, masks = untied
    np.testing.assert_allclose(relevance_mass_accuracy(maps, masks),
                               _quantus(quantus.RelevanceMassAccuracy, maps, masks), atol=1e-6)


def test_relevance_rank_equals_quantus_without_ties(untied):
    maps, masks = untied
    np.testing.assert_allclose(relevance_rank_accuracy(maps, masks),
                               _quantus(quantus.RelevanceRankAccuracy, maps, masks), atol=1e-12)


def test_pointing_game_equals_quantus_without_ties(untied):
    maps, masks = untied
    np.testing.assert_array_equal(pointing_game(maps, masks), _quantus(quantus.PointingGame, maps, masks))


def test_on_superpixel_maps_quantus_counts_any_tied_maximum_and_xaibench_the_expected_hit():
    """The documented difference, on maps constant on a 3 x 3 grid of 4 x 4 superpixels (as
    LIME's are): Quantus's pointing game is a hit when any of the 16 tied maxima lies in the
    mask; xaibench's is the share of them that does (its expectation over tie orders)."""
    rng = np.random.default_rng(3)
    masks = _masks(rng, 30)
    maps = np.kron(rng.permutation(9 * 30).reshape(30, 3, 3).astype(float), np.ones((4, 4)))
    tied = maps == maps.max((1, 2), keepdims=True)
    share = (tied & masks).sum((1, 2)) / 16
    np.testing.assert_allclose(pointing_game(maps, masks), share)
    np.testing.assert_array_equal(_quantus(quantus.PointingGame, maps, masks), share > 0)
    assert (share > 0).mean() > share.mean() + 0.1        # "any" reads more hits than there are
