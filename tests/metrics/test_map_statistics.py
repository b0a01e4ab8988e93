"""Sparseness (Gini; Chalasani et al. 2020) and complexity (entropy; Bhatt et al. 2020) by
hand, and against Quantus 0.6's Sparseness and Complexity on the same maps."""

import warnings

import numpy as np
import pytest
import torch

from xaibench.metrics import MAP_METRICS, metric_info
from xaibench.metrics.map_statistics import complexity, sparseness

UNIFORM = np.ones((1, 4, 4))
ONE_PIXEL = np.eye(1, 16).reshape(1, 4, 4)


def test_by_hand_uniform_one_pixel_and_two_values():
    assert sparseness(UNIFORM)[0] == pytest.approx(0.0, abs=1e-12)
    assert sparseness(ONE_PIXEL)[0] == pytest.approx(15 / 16)          # 1 - 1/n
    assert complexity(UNIFORM)[0] == pytest.approx(np.log(16))
    assert complexity(ONE_PIXEL)[0] == pytest.approx(0.0, abs=1e-12)
    half = np.zeros((1, 2, 2))
    half[0, 0] = [1.0, 3.0]                                            # |a| sorted: 0, 0, 1, 3
    # G = ((2-4-1)*0 + (4-4-1)*0 + (6-4-1)*1 + (8-4-1)*3) / (4 * 4) = 10 / 16
    assert sparseness(half)[0] == pytest.approx(10 / 16)
    # P = 1/4, 3/4: H = -(1/4 ln 1/4 + 3/4 ln 3/4)
    assert complexity(half)[0] == pytest.approx(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75)))


def test_sign_and_scale_do_not_matter_and_a_zero_map_is_undefined():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 5, 5))
    np.testing.assert_allclose(sparseness(-7 * maps), sparseness(maps))
    np.testing.assert_allclose(complexity(0.1 * maps), complexity(maps))
    assert np.isnan(sparseness(np.zeros((1, 3, 3)))[0]) and np.isnan(complexity(np.zeros((1, 3, 3)))[0])


def test_registered_with_their_directions():
    assert {"sparseness", "complexity"} <= set(MAP_METRICS)
    assert metric_info("sparseness").higher_is_better and not metric_info("complexity").higher_is_better


def test_equal_to_quantus():
    quantus = pytest.importorskip("quantus")
    rng = np.random.default_rng(5)
    maps = rng.normal(size=(20, 12, 12)) * (rng.random((20, 12, 12)) < 0.3)   # sparse-ish, signed
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 144, 2))
    x = rng.random((20, 3, 12, 12)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = {name: np.asarray(metric(disable_warnings=True)(
            model=model, x_batch=x, y_batch=np.zeros(20, int), a_batch=maps[:, None].astype(np.float32), device="cpu"))
            for name, metric in (("sparseness", quantus.Sparseness), ("complexity", quantus.Complexity))}
    # Quantus adds 1e-7 to every |a| before the Gini index and 1e-12 inside the log: the
    # difference is that of the epsilons (maps normalised to max |a| = 1 first)
    np.testing.assert_allclose(sparseness(maps), reference["sparseness"], atol=2e-5)
    np.testing.assert_allclose(complexity(maps), reference["complexity"], atol=2e-5)
