"""The batched perturbation engine against hand-built cases and the reference libraries."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from xaibench.explain.perturbation import (deletion_insertion_curves, fill_image, kernel_shap, lime,
                                           lime_kernel, permutation_masks, perturbed_batch, shapley_sampling,
                                           weighted_ridge)
from xaibench.metrics.faithfulness import perturbation_curve


def test_perturbed_batch_by_hand():
    image = torch.arange(1.0, 5.0).view(1, 2, 2).repeat(3, 1, 1)   # [[1, 2], [3, 4]]
    segments = torch.tensor([[0, 1], [1, 2]])
    fill = torch.zeros(3, 2, 2)
    batch = perturbed_batch(image, segments, fill, torch.tensor([[1, 0, 1], [0, 1, 0]]))
    assert batch[0, 0].tolist() == [[1, 0], [0, 4]] and batch[1, 2].tolist() == [[0, 2], [3, 0]]


def test_fills():
    image = torch.rand(3, 8, 8)
    assert torch.equal(fill_image(image, "constant", 0.5), torch.full((3, 8, 8), 0.5))
    assert torch.allclose(fill_image(image, "image_mean")[:, 3, 5], image.mean((1, 2)))
    assert torch.equal(fill_image(image, "mean", value=[0.1, 0.2, 0.3])[:, 0, 0], torch.tensor([0.1, 0.2, 0.3]))
    assert torch.equal(fill_image(image, "black"), torch.zeros_like(image))
    assert fill_image(image, "blur", sigma=2.0).std() < image.std()


def test_weighted_ridge_matches_sklearn():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    x, y, w = rng.integers(0, 2, (50, 6)), rng.normal(size=50), rng.random(50)
    expected = Ridge(alpha=1.0).fit(x, y, sample_weight=w).coef_
    assert np.allclose(weighted_ridge(x, y, w, 1.0), expected, atol=1e-10)


def test_lime_kernel_is_limes():
    masks = np.array([[1, 1, 1, 1], [1, 0, 0, 0]])
    # cosine distance 0 -> weight 1; 1 - 1/2 = 0.5 -> sqrt(exp(-0.25 / 0.0625)) = exp(-2)
    assert lime_kernel(masks) == pytest.approx([1.0, math.exp(-2.0)])


@pytest.fixture(scope="module")
def classifier(seeded_cnn):
    return seeded_cnn(32)


@pytest.fixture(scope="module")
def scene():
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    image = torch.stack([xx / 31, yy / 31, ((xx - 16) ** 2 + (yy - 16) ** 2 < 60).float()])
    segments = (yy // 8 * 4 + xx // 8).long()   # a 4 x 4 grid: 16 segments
    return image, segments


def test_lime_ranks_like_the_lime_package(classifier, scene):
    from lime import lime_image

    image, segments = scene
    target = 1

    def score(px):
        return classifier(px).softmax(-1)[:, target]

    def classifier_fn(batch):
        with torch.no_grad():
            return classifier(torch.from_numpy(batch).permute(0, 3, 1, 2).float()).softmax(-1).numpy()

    ours = lime(score, image, segments.numpy(), fill_image(image, "constant", 0.3), 3000, 500, seed=0).values
    explanation = lime_image.LimeImageExplainer(random_state=0).explain_instance(
        image.permute(1, 2, 0).double().numpy(), classifier_fn, labels=(target,), top_labels=None, hide_color=0.3,
        num_samples=3000, batch_size=500, segmentation_fn=lambda _: segments.numpy(), random_seed=0)
    theirs = np.zeros(16)
    for segment, weight in explanation.local_exp[target]:
        theirs[segment] = weight
    assert spearmanr(ours, theirs).statistic >= 0.9


def exact_shapley(value, k):
    phi = np.zeros(k)
    for j in range(k):
        others = [i for i in range(k) if i != j]
        for size in range(k):
            for subset in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
                phi[j] += weight * (value(set(subset) | {j}) - value(set(subset)))
    return phi


def _toy(k):
    """A non-additive score of which segments are kept: interactions make Shapley non-trivial."""
    segments = torch.arange(k).view(1, k).repeat(4, 1)
    image = torch.ones(3, 4, k)
    coef = torch.linspace(-1, 2, k)

    def score(px):
        kept = px[:, 0, 0, :]                            # 1 where the segment is kept
        return kept @ coef + 1.5 * kept[:, 0] * kept[:, 1] - kept[:, 2] * kept[:, 3] * kept[:, 4]

    def value(subset):
        kept = torch.zeros(1, 3, 4, k)
        kept[..., list(subset)] = 1
        return float(score(kept))

    return score, image, segments, value


def test_kernel_shap_enumerating_all_coalitions_is_exact():
    score, image, segments, value = _toy(6)
    phi = kernel_shap(score, image, segments.numpy(), torch.zeros(3, 4, 6), num_samples=64, batch_size=16).values
    assert np.allclose(phi, exact_shapley(value, 6), atol=1e-8)


def test_sampled_kernel_shap_is_within_captums_sampling_error():
    from captum.attr import KernelShap

    k = 10
    score, image, segments, value = _toy(k)
    exact = exact_shapley(value, k)
    ours = kernel_shap(score, image, segments.numpy(), torch.zeros(3, 4, k), num_samples=600, batch_size=128).values
    captum_errors = []
    for seed in range(3):
        torch.manual_seed(seed)
        theirs = KernelShap(score).attribute(image.unsqueeze(0), baselines=0.0, feature_mask=segments.view(1, 1, 4, k),
                                             n_samples=600, perturbations_per_eval=128)
        captum_errors.append(np.abs(theirs[0, 0, 0].numpy() - exact).max())
    assert abs(ours.sum() - exact.sum()) < 1e-9          # efficiency holds exactly
    assert np.abs(ours - exact).max() <= max(2 * np.mean(captum_errors), 0.05)


def test_permutation_masks_by_hand():
    # order (2, 0, 1): keep {2}, then {2, 0}, then all
    assert permutation_masks(np.array([[2, 0, 1]])).tolist() == [[0, 0, 1], [1, 0, 1], [1, 1, 1]]


def test_shapley_sampling_by_hand_and_its_efficiency():
    """The study's SHAP (ssd-coco-lrp-deeplift-lime-shap.md, 2.4): add features one by one
    along random permutations, average the differences. f = 2·a + 3·b + 4·a·b: Shapley
    values (2 + 4/2, 3 + 4/2) = (4, 5) exactly once both orders are drawn; each order alone
    gives (2, 7) [a first] or (6, 3) [b first]."""
    segments = np.array([[0, 1]])
    image = torch.ones(3, 1, 2)

    def score(px):
        a, b = px[:, 0, 0, 0], px[:, 0, 0, 1]
        return 2 * a + 3 * b + 4 * a * b

    for seed in range(5):
        one = shapley_sampling(score, image, segments, torch.zeros(3, 1, 2), n_permutations=1, batch_size=2,
                               seed=seed).values
        assert one.tolist() in ([2.0, 7.0], [6.0, 3.0]) and one.sum() == pytest.approx(9.0)
    many = shapley_sampling(score, image, segments, torch.zeros(3, 1, 2), n_permutations=400, batch_size=64).values
    assert many.sum() == pytest.approx(9.0)                       # efficiency: f(all) - f(none)
    assert many == pytest.approx([4.0, 5.0], abs=0.4)


def test_shapley_sampling_agrees_with_captum_and_the_exact_values():
    from captum.attr import ShapleyValueSampling

    k = 6
    score, image, segments, value = _toy(k)
    exact = exact_shapley(value, k)
    ours = shapley_sampling(score, image, segments.numpy(), torch.zeros(3, 4, k), n_permutations=300, batch_size=64).values
    torch.manual_seed(0)
    theirs = ShapleyValueSampling(score).attribute(image.unsqueeze(0), baselines=0.0,
                                                   feature_mask=segments.view(1, 1, 4, k), n_samples=300,
                                                   perturbations_per_eval=64)[0, 0, 0].numpy()
    assert ours.sum() == pytest.approx(exact.sum()) and theirs.sum() == pytest.approx(exact.sum(), abs=1e-5)
    captum_error = np.abs(theirs - exact).max()
    assert np.abs(ours - exact).max() <= max(2 * captum_error, 0.05)


def test_curves_are_identical_to_the_per_step_loop(classifier):
    torch.manual_seed(3)
    pixels = torch.rand(3, 3, 32, 32)
    maps = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)
    maps[0, :4] = 0.5  # ties: the stable order must match too
    targets = [0, 1, 1]
    fill = torch.full((3, 3, 32, 32), 0.5)
    # batch size 7 does not divide 9 steps: batches straddle images
    batched = deletion_insertion_curves(classifier, pixels, maps, targets, pixels, fill, 8, 7)
    for n in range(3):
        loop, _ = perturbation_curve(classifier, pixels[n], maps[n], targets[n], start=pixels[n], end=fill[n], steps=8)
        assert np.allclose(batched[n], loop, atol=1e-6)


def test_segment_mean_fill_and_several_outputs_at_once():
    image = torch.tensor([[[1.0, 3.0], [5.0, 7.0]]]).repeat(3, 1, 1)
    segments = np.array([[0, 0], [0, 1]])
    assert fill_image(image, "segment_mean", segments=segments)[0].tolist() == [[3.0, 3.0], [3.0, 7.0]]

    def two_scores(px):  # [B, 2]: the second output is twice the first
        first = px[:, 0].mean((1, 2))
        return torch.stack([first, 2 * first], 1)

    weights = lime(two_scores, image, segments, torch.zeros_like(image), 200, 50, seed=0).values
    assert weights.shape == (2, 2) and np.allclose(weights[:, 1], 2 * weights[:, 0])
