"""Adaptive sampling of LIME and KernelSHAP: the stopping rule, antithetic
pairs, and the Parquet columns that record what each explanation spent."""

import numpy as np
import pytest
import torch

from xaibench.explain.perturbation import (StoppingParams, antithetic, kernel_shap, kernel_shap_masks, lime,
                                           lime_masks, top_k_sets)

K = 16                                      # a 4 x 4 grid of segments: 2^16 coalitions, so sampled


@pytest.fixture(scope="module")
def grid():
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    segments = (yy // 4 * 4 + xx // 4).numpy()
    return torch.ones(3, 16, 16), segments


def one_segment_model(segment: int, noise: float = 0.0, seed: int = 0):
    """Score = 2 · (segment ``segment`` kept) (+ Gaussian noise): depends on one feature only."""
    generator = torch.Generator().manual_seed(seed)

    def score(batch):
        kept = batch[:, 0, 4 * (segment // 4), 4 * (segment % 4)]   # the segment's top-left pixel (1 or fill 0)
        return 2.0 * kept + noise * torch.randn(len(batch), generator=generator)

    return score


def pure_noise_model(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return lambda batch: torch.randn(len(batch), generator=generator)


ESTIMATORS = {"lime": lime, "kernel_shap": kernel_shap}


@pytest.mark.parametrize("method", ESTIMATORS)
def test_stops_at_the_first_check_when_one_feature_decides(grid, method):
    image, segments = grid
    rule = StoppingParams(batch_samples=50, min_samples=50, top_k=1, agreement=0.95, n_bootstrap=50)
    estimate = ESTIMATORS[method](one_segment_model(5), image, segments, torch.zeros_like(image), 1000, 50,
                                  seed=0, stopping=rule)
    assert estimate.samples == 50 and estimate.stopped_early           # the first block, the first check
    assert top_k_sets(estimate.values, 1).tolist() == [5]
    if method == "kernel_shap":                                         # by hand: phi_5 = f(all) - f(none) = 2
        assert estimate.values == pytest.approx(np.eye(K)[5] * 2.0, abs=1e-9)


@pytest.mark.parametrize("method", ESTIMATORS)
def test_never_stops_before_the_minimum(grid, method):
    image, segments = grid
    rule = StoppingParams(batch_samples=50, min_samples=300, top_k=1, n_bootstrap=30)
    fill = torch.zeros_like(image)
    clean = ESTIMATORS[method](one_segment_model(5), image, segments, fill, 1000, 50, stopping=rule)
    assert clean.samples == 300 and clean.stopped_early                 # stable at once, held to the minimum
    for seed in range(4):                                               # informative but noisy: stops late or not
        noisy = ESTIMATORS[method](one_segment_model(5, noise=3.0, seed=seed), image, segments, fill, 1000, 50,
                                   seed=seed, stopping=rule)
        assert noisy.samples >= 300
    pure = ESTIMATORS[method](pure_noise_model(), image, segments, fill, 1000, 50,
                              stopping=StoppingParams(batch_samples=50, min_samples=100, top_k=3))
    assert pure.samples == 1000 and not pure.stopped_early            # noise never gives a stable top-3


@pytest.mark.parametrize("method", ESTIMATORS)
@pytest.mark.parametrize("paired", [False, True])
def test_adaptive_with_the_rule_disabled_is_fixed_sampling(grid, seeded_cnn, method, paired):
    """min_samples = N: the rule can never stop, so the blocks must add up to fixed sampling."""
    _, segments = grid
    model = seeded_cnn(16)
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))

    def score(batch):
        return model.net(batch).softmax(-1)[:, 1]

    fill = torch.zeros_like(image)
    fixed = ESTIMATORS[method](score, image, segments, fill, 400, 50, seed=3, paired=paired)
    adaptive = ESTIMATORS[method](score, image, segments, fill, 400, 50, seed=3, paired=paired,
                                  stopping=StoppingParams(batch_samples=50, min_samples=400))
    assert (fixed.samples, fixed.stopped_early) == (adaptive.samples, adaptive.stopped_early) == (400, False)
    assert np.array_equal(fixed.values, adaptive.values)


def test_antithetic_masks_pair_each_draw_with_its_complement():
    rng = np.random.default_rng(0)
    masks = lime_masks(9, 5, rng, paired=True)
    assert len(masks) == 9 and masks[0].tolist() == [1] * 5 and masks[1].tolist() == [0] * 5
    assert all((masks[i] + masks[i + 1] == 1).all() for i in range(0, 8, 2))
    coalitions, weights = kernel_shap_masks(100, 12, np.random.default_rng(0), paired=True)
    assert (coalitions[0::2] + coalitions[1::2] == 1).all() and (weights == 1).all()
    assert antithetic(np.array([[1, 0, 0]])).tolist() == [[1, 0, 0], [0, 1, 1]]


def test_paired_kernel_shap_is_exact_on_an_additive_model(grid):
    """A linear model's Shapley values are its coefficients and the regression fits it
    without residual: the paired path (pairs, the efficiency elimination) gets them exactly."""
    image, segments = grid
    coefficients = torch.linspace(-1, 2, K)

    def score(batch):
        kept = batch[:, 0, ::4, ::4].reshape(len(batch), K)
        return kept @ coefficients

    estimate = kernel_shap(score, image, segments, torch.zeros_like(image), 60, 20, paired=True)
    assert estimate.values == pytest.approx(coefficients.numpy(), abs=1e-5)


def test_top_k_sets_by_hand():
    assert top_k_sets(np.array([0.1, 3.0, -2.0, 2.0]), 2).tolist() == [1, 3]
    assert top_k_sets(np.array([[0.1, 5.0], [3.0, 0.0], [2.0, 1.0]]), 2).tolist() == [[1, 2], [0, 2]]


def test_the_rule_checks_its_settings():
    with pytest.raises(ValueError, match="agreement"):
        StoppingParams(agreement=1.5)
    with pytest.raises(ValueError, match="n_bootstrap"):
        StoppingParams(n_bootstrap=1)


def test_lime_method_records_samples_per_image(seeded_cnn):
    from xaibench.explain.batch import explain_images

    model = seeded_cnn(32)
    pixels = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    options = {"num_samples": 200, "n_segments": 10, "batch_size": 50}
    fixed = explain_images(model, pixels, np.zeros(3), np.arange(3), "lime", "m", 0, options, "h")
    assert fixed["samples"] == [200] * 3 and fixed["stopped_early"] == [False] * 3
    adaptive = explain_images(model, pixels, np.zeros(3), np.arange(3), "lime", "m", 0,
                              {**options, "sampling": "adaptive", "stopping": {"batch_samples": 50,
                                                                                "min_samples": 50, "top_k": 1}}, "h")
    assert all(50 <= s <= 200 for s in adaptive["samples"])
    assert adaptive["stopped_early"] == [s < 200 for s in adaptive["samples"]]
    gradients = explain_images(model, pixels, np.zeros(3), np.arange(3), "gradcam", "m", 0, {}, "h")
    assert gradients["samples"] == [None] * 3 and gradients["stopped_early"] == [None] * 3


def test_bootstrap_refits_at_once_equal_one_at_a_time():
    from xaibench.explain.perturbation import weighted_ridge

    rng = np.random.default_rng(0)
    x, w = rng.integers(0, 2, (200, 7)), rng.random(200)
    counts = rng.multinomial(200, np.full(200, 1 / 200), size=4).astype(float)
    for y in (rng.normal(size=200), rng.normal(size=(200, 3))):
        at_once = weighted_ridge(x, y, w * counts)
        assert np.allclose(at_once, np.stack([weighted_ridge(x, y, w * c) for c in counts]), atol=1e-12)
