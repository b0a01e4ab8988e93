"""Localisation against a cue mask, by hand (Arras et al. 2022; Zhang et al. 2018)."""

import numpy as np
import pytest

from xaibench.metrics.localisation import (chance_level, localisation_scores, pointing_game, relevance_mass_accuracy,
                                           relevance_rank_accuracy)

MASK = np.zeros((1, 4, 4), bool)
MASK[0, :2, :2] = True          # 4 of 16 pixels: chance 0.25


def test_everything_inside_the_mask_scores_one():
    inside = np.where(MASK, 1.0, 0.0)
    assert relevance_mass_accuracy(inside, MASK)[0] == 1.0
    assert relevance_rank_accuracy(inside, MASK)[0] == 1.0
    assert pointing_game(inside, MASK)[0] == 1.0


def test_relevance_mass_counts_positive_relevance_only():
    heat = np.where(MASK, 1.0, 0.0) - 5 * (~MASK)            # large negative relevance outside is ignored
    assert relevance_mass_accuracy(heat, MASK)[0] == 1.0
    half = np.where(MASK, 1.0, 0.0)
    half[0, 3, 3] = 4.0                                      # 4 inside, 4 outside
    assert relevance_mass_accuracy(half, MASK)[0] == pytest.approx(0.5)
    assert np.isnan(relevance_mass_accuracy(-np.ones((1, 4, 4)), MASK)[0])


def test_rank_accuracy_takes_the_mask_size_top_pixels():
    heat = np.zeros((1, 4, 4))
    heat[0, 0, 0], heat[0, 0, 1], heat[0, 3, 3], heat[0, 3, 2] = 4, 3, 2, 1   # top 4: two inside
    assert relevance_rank_accuracy(heat, MASK)[0] == 0.5
    assert pointing_game(heat, MASK)[0] == 1.0
    heat[0, 3, 3] = 9
    assert pointing_game(heat, MASK)[0] == 0.0


def test_chance_level_is_the_area_share_and_noise_scores_it_on_average():
    assert chance_level(MASK)[0] == 0.25
    noise = np.random.default_rng(0).random((2000, 4, 4))
    masks = np.repeat(MASK, 2000, axis=0)
    scores = localisation_scores(noise, masks)
    for name in ("relevance_mass", "relevance_rank", "pointing_game"):
        assert scores[name].mean() == pytest.approx(0.25, abs=0.03)


def test_maps_and_masks_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="resize the masks"):
        relevance_mass_accuracy(np.ones((1, 8, 8)), MASK)


def test_smaller_maps_are_compared_at_the_mask_resolution():
    heat = np.zeros((1, 2, 2))
    heat[0, 0, 0] = 1.0                                       # top-left quarter, as MASK
    scores = localisation_scores(heat, MASK)
    assert scores["pointing_game"][0] == 1.0 and scores["relevance_mass"][0] > 0.7
    assert scores["chance"][0] == 0.25


def test_ties_score_their_expectation_neither_first_pixel_nor_any_pixel():
    """A constant map ties all 16 pixels at the maximum; MASK holds 4 of them. Raster order
    says 1 (the first maximum, (0, 0), is inside), 'any tied maximum inside' says 1 too; the
    expectation over the tied maxima is 4/16, the chance level."""
    both = np.ones((1, 4, 4))
    assert pointing_game(both, MASK)[0] == pytest.approx(4 / 16)
    assert relevance_rank_accuracy(both, MASK)[0] == pytest.approx(4 / 16)      # = chance: a constant map
    left = np.zeros((1, 4, 4))
    left[0, :, :2] = 1.0                                   # 8 tied maxima, 4 inside
    assert pointing_game(left, MASK)[0] == pytest.approx(0.5)
    # K = 4: all 4 slots among the 8 tied pixels, half of them inside
    assert relevance_rank_accuracy(left, MASK)[0] == pytest.approx(0.5)
    left[0, 3, 3] = 2.0                                   # one strict maximum outside, then 3 slots among 8 tied
    assert pointing_game(left, MASK)[0] == 0.0
    assert relevance_rank_accuracy(left, MASK)[0] == pytest.approx((0 + 3 * 4 / 8) / 4)


def test_the_expected_tie_score_is_the_mean_over_random_tie_breaks():
    rng = np.random.default_rng(1)
    heat = rng.integers(0, 3, (1, 4, 4)).astype(float)     # many ties
    hits, ranks = [], []
    for _ in range(4000):                                  # break ties by a tiny random jitter
        jittered = heat + 1e-9 * rng.random(heat.shape)
        hits.append(pointing_game(jittered, MASK)[0])
        ranks.append(relevance_rank_accuracy(jittered, MASK)[0])
    assert pointing_game(heat, MASK)[0] == pytest.approx(np.mean(hits), abs=0.02)
    assert relevance_rank_accuracy(heat, MASK)[0] == pytest.approx(np.mean(ranks), abs=0.02)


def test_cue_order_by_hand():
    """Two cues on a 1 x 4 image: cue 1 = pixels 0-1, cue 2 = pixel 3. Image 0: the model
    loses more without cue 1 (0.4 vs 0.1) and the map gives cue 1 more (3 vs 1): 1. Image 1:
    the same drops, the map favours cue 2: 0. Image 2: equal relevance: 0.5. Image 3: drops
    within the margin: NaN."""
    from xaibench.metrics.localisation import cue_order

    first = np.array([[[1, 1, 0, 0]]] * 4, bool)
    second = np.array([[[0, 0, 0, 1]]] * 4, bool)
    maps = np.array([[[2.0, 1.0, 9.0, 1.0]], [[0.5, 0.0, 0.0, 2.0]], [[1.0, 0.0, 0.0, 1.0]], [[1.0, 0, 0, 0]]])
    drops_1, drops_2 = np.array([0.4, 0.4, 0.4, 0.12]), np.array([0.1, 0.1, 0.1, 0.1])
    scores = cue_order(maps, first, second, drops_1, drops_2, margin=0.05)
    assert scores[:3].tolist() == [1.0, 0.0, 0.5] and np.isnan(scores[3])
    # the other order of importance turns every defined score round
    assert cue_order(maps, first, second, drops_2, drops_1)[:3].tolist() == [0.0, 1.0, 0.5]
