"""ROAD, SRG, IROF and infidelity: by hand, and against pytorch-grad-cam's ROAD, Quantus 0.6's
IROF and captum's infidelity on the same model, maps and perturbations."""

import dataclasses
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from xaibench.explain.imputation import noisy_linear_imputation, noisy_linear_imputations
from xaibench.explain.removal import (infidelity_evidence, region_perturbation_curves, road_curves, road_removals,
                                      segment_order, streamed_target_scores)
from xaibench.metrics.faithfulness import (EvidenceOptions, FaithfulnessEvidence, collect_evidence, infidelity,
                                           iterative_removal_of_features, model_evidence, road_least_relevant_first,
                                           road_most_relevant_first, symmetric_relevance_gain)

SIZE = 12


class PixelLogits(torch.nn.Module):
    """Two logits: 0, and a fixed weighting of the pixels (all channels): smooth, so removals
    and noise move the probability by amounts that differ per pixel."""

    def __init__(self, channels=3, size=SIZE, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.weights = torch.randn(channels, size, size, generator=generator) * 0.3

    def forward(self, x):
        logit = (x * self.weights).flatten(1).sum(1)
        return torch.stack([torch.zeros_like(logit), logit], 1)


def evidence_with(**parts) -> FaithfulnessEvidence:
    n = len(next(iter(parts.values())))
    empty = np.zeros((n, 1))
    return FaithfulnessEvidence(insertion_scores=empty, insertion_step_saliency=empty, deletion_scores=empty,
                                deletion_step_saliency=empty, full_scores=np.ones(n), explanation_map_scores=np.ones(n),
                                **{k: np.asarray(v, np.float64) for k, v in parts.items()})


# --- noisy linear imputation ------------------------------------------------------------

def test_a_removed_pixel_of_a_linear_ramp_is_the_ramp():
    """The neighbour weights are symmetric, so a linear ramp is its own imputation."""
    ramp = torch.arange(SIZE, dtype=torch.float64).repeat(3, SIZE, 1) / SIZE     # [3, H, W], x / W
    removed = np.zeros((SIZE, SIZE), bool)
    removed[3:6, 4:8] = True
    imputed = noisy_linear_imputation(ramp, removed, noise=0.0)
    np.testing.assert_allclose(imputed.numpy(), ramp.numpy(), atol=1e-12)


def test_imputation_equals_pytorch_grad_cams_and_adds_the_noise_asked_for():
    road = pytest.importorskip("pytorch_grad_cam.metrics.road")
    rng = np.random.default_rng(0)
    image = torch.rand(3, 20, 24)
    for share in (0.1, 0.5, 0.9):
        removed = rng.random((20, 24)) < share
        reference = road.NoisyLinearImputer(noise=0.0)(image, torch.from_numpy((~removed).astype(np.float32)))
        ours = noisy_linear_imputation(image, removed, noise=0.0)
        assert float((reference - ours).abs().max()) < 1e-6
    noisy = noisy_linear_imputation(image, removed, noise=0.05, rng=np.random.default_rng(1))
    difference = (noisy - ours)[:, torch.from_numpy(removed)]
    assert abs(float(difference.std()) - 0.05) < 0.005
    assert torch.equal(noisy[:, torch.from_numpy(~removed)], image[:, torch.from_numpy(~removed)])


def test_imputing_every_pixel_is_refused():
    with pytest.raises(ValueError, match="at least one kept pixel"):
        noisy_linear_imputation(torch.rand(3, 4, 4), np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="at least one kept pixel"):
        noisy_linear_imputations(torch.rand(3, 4, 4), [np.zeros((4, 4), bool), np.ones((4, 4), bool)])


def test_imputations_solved_in_threads_are_those_of_one_call_per_mask_in_order():
    """The solves run side by side, the noise is drawn afterwards in the masks' order: the
    same tensors, bit for bit, as one noisy_linear_imputation per mask on the same rng (an
    empty mask included: it draws no noise)."""
    rng = np.random.default_rng(0)
    image = torch.rand(3, 16, 16)
    masks = [rng.random((16, 16)) < share for share in (0.2, 0.0, 0.5, 0.9, 0.7)]
    shared = np.random.default_rng(3)
    one_by_one = [noisy_linear_imputation(image, m, 0.05, shared) for m in masks]
    with ThreadPoolExecutor(2) as pool:
        threaded = noisy_linear_imputations(image, masks, 0.05, np.random.default_rng(3), pool)
    serial = noisy_linear_imputations(image, masks, 0.05, np.random.default_rng(3))
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(one_by_one, threaded, serial))
    assert torch.equal(threaded[1], image) and not torch.equal(threaded[0], image)


# --- ROAD and SRG ---------------------------------------------------------------------------

def test_road_removes_the_top_and_the_bottom_fraction():
    saliency = np.arange(16, dtype=float).reshape(4, 4)             # pixel 15 the most salient
    morf, lerf = road_removals(saliency, [0.25, 0.5])
    assert morf[0].ravel().nonzero()[0].tolist() == [12, 13, 14, 15]
    assert lerf[1].ravel().nonzero()[0].tolist() == list(range(8))


def test_road_and_srg_by_hand():
    evidence = evidence_with(road_morf=[[0.5, 0.1]], road_lerf=[[0.9, 0.8]])
    assert road_most_relevant_first(evidence)[0] == pytest.approx(0.3)
    assert road_least_relevant_first(evidence)[0] == pytest.approx(0.85)
    assert symmetric_relevance_gain(evidence)[0] == pytest.approx(0.55)
    assert road_most_relevant_first(evidence_with(road_morf=np.zeros((2, 0)))) is None


def test_road_equals_pytorch_grad_cam_on_the_pixels_it_removes():
    """pytorch-grad-cam's ROAD at percentile p removes the pixels at or above the map's p-th
    percentile (MoRF; LeRF: of 1 − map), np.percentile's linear interpolation deciding the
    count. Given those counts as fractions, xaibench's curves equal its score changes plus
    the unperturbed score, and SRG is twice its ROADCombined."""
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric,
                                                                  RemoveLeastRelevantFirst, RemoveMostRelevantFirst)
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    rng = np.random.default_rng(3)
    model = PixelLogits().eval()
    pixels = torch.rand(4, 3, SIZE, SIZE)
    maps = rng.random((4, SIZE, SIZE)).astype(np.float32)
    targets = torch.tensor([1, 0, 1, 1])
    percentiles = [10, 30, 50, 70, 90]
    n = SIZE * SIZE
    fractions = [int((maps[0] >= np.percentile(maps[0], p)).sum()) / n for p in percentiles]
    morf, lerf = road_curves(model, pixels, maps, targets, fractions, noise=0.0, seed=0, image_indices=range(4),
                             batch_size=7)
    full = model(pixels).softmax(-1)[torch.arange(4), targets].double().numpy()
    cam_targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
    for order, ours in ((RemoveMostRelevantFirst, morf), (RemoveLeastRelevantFirst, lerf)):
        reference = np.stack([PerturbationConfidenceMetric(order(p, NoisyLinearImputer(noise=0.0)))(
            pixels, maps, cam_targets, model) for p in percentiles], 1)
        np.testing.assert_allclose(ours - full[:, None], reference, atol=2e-6)
    evidence = evidence_with(road_morf=morf, road_lerf=lerf)
    combined = np.mean([PerturbationConfidenceMetric(RemoveLeastRelevantFirst(p, NoisyLinearImputer(noise=0.0)))(
        pixels, maps, cam_targets, model) - PerturbationConfidenceMetric(
        RemoveMostRelevantFirst(p, NoisyLinearImputer(noise=0.0)))(pixels, maps, cam_targets, model)
        for p in percentiles], 0) / 2
    np.testing.assert_allclose(symmetric_relevance_gain(evidence), 2 * combined, atol=4e-6)


def test_road_noise_is_the_same_for_every_method_of_an_image():
    model = PixelLogits()
    pixels = torch.rand(2, 3, SIZE, SIZE)
    ramp = np.tile(np.arange(SIZE, dtype=float), (2, SIZE, 1))
    args = dict(fractions=[0.5], noise=0.02, seed=5, batch_size=4)
    first = road_curves(model, pixels, ramp, torch.ones(2), image_indices=[0, 1], **args)
    again = road_curves(model, pixels[1:], ramp[1:], torch.ones(1), image_indices=[1], **args)
    np.testing.assert_array_equal(first[0][1:], again[0])


# --- IROF ---------------------------------------------------------------------------------

def test_irof_by_hand():
    # q = 1, 0.5, 0 at x = 0, 1/2, 1: area under 0.5, over 0.5; an image with one segment
    # fewer (NaN-padded) reads its own curve
    evidence = evidence_with(region_scores=[[0.8, 0.4, 0.0], [0.6, 0.6, np.nan]])
    np.testing.assert_allclose(iterative_removal_of_features(evidence), [0.5, 0.0])


def test_segments_go_in_order_of_mean_relevance():
    segments = np.array([[0, 0, 1, 1], [2, 2, 3, 3]])
    saliency = np.array([[1.0, 1.0, 5.0, 0.0], [2.0, 2.0, -1.0, -1.0]])
    assert segment_order(saliency, segments).tolist() == [1, 2, 0, 3]      # means 2.5, 2, 1, -1


def test_irof_equals_quantus_up_to_its_scale(monkeypatch):
    """Quantus 0.6's IROF on one-channel images, constant baseline 0 (its default ``mean``
    baseline is the mean of the whole batch as perturbed so far: docs/fidelity.yaml), its own
    SLIC segments given to xaibench: ``quantus = K·IROF + (1 + q_1)/2``. (Quantus calls
    ``np.trapz``, which numpy 2.4 removed: it gets ``np.trapezoid``, the same rule.)"""
    quantus = pytest.importorskip("quantus")
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)
    from quantus.helpers.utils import get_superpixel_segments

    rng = np.random.default_rng(4)
    model = PixelLogits(channels=1, size=16).eval()
    x = rng.random((3, 1, 16, 16)).astype(np.float32)
    y = np.array([1, 0, 1])
    maps = rng.random((3, 16, 16)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = np.asarray(quantus.IROF(perturb_baseline=0.0, return_aggregate=False, disable_warnings=True)(
            model=model, x_batch=x, y_batch=y, a_batch=maps[:, None], softmax=True, device="cpu", batch_size=3))
    segments = np.stack([get_superpixel_segments(np.moveaxis(image, 0, -1).astype("double"), "slic") for image in x])
    curves = region_perturbation_curves(model, torch.from_numpy(x), maps, torch.from_numpy(y), segments,
                                        torch.zeros(3, 1, 16, 16), batch_size=5)
    ours = iterative_removal_of_features(evidence_with(region_scores=curves))
    k = (~np.isnan(curves)).sum(1) - 1
    q1 = curves[:, 1] / curves[:, 0]
    np.testing.assert_allclose(k * ours + (1 + q1) / 2, reference, rtol=1e-5)


# --- infidelity -----------------------------------------------------------------------------

def test_infidelity_by_hand():
    # drops exactly twice the map's prediction: the optimal scale absorbs it
    assert infidelity(evidence_with(infidelity_dots=[[1.0, 2.0, 3.0]], infidelity_drops=[[2.0, 4.0, 6.0]]))[0] == 0
    # uncorrelated: β = 0, the mean square of the drops
    value = infidelity(evidence_with(infidelity_dots=[[1.0, -1.0]], infidelity_drops=[[0.5, 0.5]]))[0]
    assert value == pytest.approx(0.25)
    assert np.isnan(infidelity(evidence_with(infidelity_dots=[[0.0, 0.0]], infidelity_drops=[[0.5, 0.5]]))[0])


def test_infidelity_equals_captums_on_the_same_perturbations():
    """captum.metrics.infidelity(normalize=True) on the model's logits, given xaibench's
    perturbations (its perturb_func returns them, in its repeat_interleave order), the map
    broadcast over the channels."""
    from captum.metrics import infidelity as captum_infidelity

    rng = np.random.default_rng(6)
    model = PixelLogits().eval()
    pixels = torch.rand(3, 3, SIZE, SIZE)
    maps = rng.normal(size=(3, SIZE, SIZE)).astype(np.float32)
    targets = torch.tensor([1, 0, 1])
    runs, sigma, seed = 16, 0.1, 2
    dots, drops = infidelity_evidence(model, pixels, maps, targets, runs, sigma, seed, range(3), batch_size=10)
    ours = infidelity(evidence_with(infidelity_dots=dots, infidelity_drops=drops))

    from xaibench.explain.removal import noise_perturbations
    noise = torch.cat([noise_perturbations(pixels.shape[1:], runs, sigma, seed, i) for i in range(3)])

    def perturb(inputs):
        return noise, inputs - noise

    attributions = torch.from_numpy(maps).unsqueeze(1).expand_as(pixels)
    reference = captum_infidelity(model, perturb, pixels, attributions, target=targets,
                                  n_perturb_samples=runs, normalize=True).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-9)


def test_a_map_of_the_true_contributions_has_lower_infidelity_than_noise():
    model = PixelLogits()
    pixels = torch.rand(4, 3, SIZE, SIZE)
    targets = torch.ones(4, dtype=torch.long)
    true = model.weights.sum(0).expand(4, SIZE, SIZE).numpy()          # ∂logit/∂x, summed over channels: exact
    noise = np.random.default_rng(0).normal(size=(4, SIZE, SIZE))
    options = EvidenceOptions(infidelity_runs=40, infidelity_sigma=0.05)
    scores = [infidelity(collect_evidence(model, pixels, m, targets, 2, 1.0, torch.zeros(3), 16, options))
              for m in (true, noise)]
    assert (scores[0] < scores[1]).all()


# --- the batching -----------------------------------------------------------------------

def test_streamed_scores_pack_images_across_batches():
    model = PixelLogits()
    inputs = [torch.rand(k, 3, SIZE, SIZE) for k in (3, 5, 1)]
    targets = [1, 0, 1]
    calls = []
    counting = lambda x: calls.append(len(x)) or model(x)                # noqa: E731
    out = streamed_target_scores(counting, zip(inputs, targets), batch_size=4)
    assert calls == [4, 4, 1]
    for batch, target, scores in zip(inputs, targets, out):
        np.testing.assert_allclose(scores, model(batch).softmax(-1)[:, target].double().numpy(), rtol=1e-6)


def test_collect_evidence_runs_every_optional_metric():
    model = PixelLogits()
    pixels = torch.rand(2, 3, SIZE, SIZE)
    maps = np.random.default_rng(0).random((2, SIZE, SIZE))
    options = EvidenceOptions(road_fractions=(0.2, 0.6), region_segments=6, infidelity_runs=5, correlation_runs=4,
                              subset_size=5)
    evidence = collect_evidence(model, pixels, maps, torch.ones(2, dtype=torch.long), 4, 1.0, torch.zeros(3), 8,
                                options)
    assert evidence.road_morf.shape == evidence.road_lerf.shape == (2, 2)
    assert evidence.region_scores.shape[0] == 2 and evidence.region_scores.shape[1] >= 3
    assert evidence.infidelity_dots.shape == (2, 5)
    for metric in (road_most_relevant_first, road_least_relevant_first, symmetric_relevance_gain,
                   iterative_removal_of_features, infidelity):
        assert metric(evidence).shape == (2,)


def test_a_second_method_reuses_the_model_calls_no_map_enters_and_gets_the_same_evidence():
    """Faithfulness correlation's subsets and infidelity's noises are drawn per image, not per
    map: the second map's evidence from the first's ModelEvidence equals the evidence computed
    alone, with 1 + R + R' fewer model inputs per image; other targets are not served."""
    model = PixelLogits()
    pixels = torch.rand(3, 3, SIZE, SIZE)
    first, second = np.random.default_rng(1).random((2, 3, SIZE, SIZE))
    targets = torch.tensor([1, 0, 1])
    options = EvidenceOptions(road_fractions=(0.5,), infidelity_runs=5, correlation_runs=4, subset_size=5)
    seen = []
    counting = lambda x: seen.append(len(x)) or model(x)                 # noqa: E731
    args = (4, 1.0, torch.zeros(3), 8, options)
    shared = model_evidence(collect_evidence(model, pixels, first, targets, *args), targets.numpy())
    alone = collect_evidence(counting, pixels, second, targets, *args)
    calls_alone, seen[:] = sum(seen), []
    reused = collect_evidence(counting, pixels, second, targets, *args, shared=shared)
    for item in dataclasses.fields(FaithfulnessEvidence):
        np.testing.assert_array_equal(getattr(reused, item.name), getattr(alone, item.name), err_msg=item.name)
    # per image: the image twice (probability, logit), its 4 subsets and its 5 noises, run once instead of twice
    assert calls_alone - sum(seen) == 3 * (2 + 4 + 5)
    assert shared.rows(1, 3).serves(targets[1:], options)
    assert not shared.serves(torch.tensor([1, 1, 1]), options)
    assert not shared.serves(targets, EvidenceOptions(infidelity_runs=6, correlation_runs=4, subset_size=5))
