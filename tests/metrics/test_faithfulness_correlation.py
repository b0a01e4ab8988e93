"""Faithfulness correlation (Bhatt, Weller & Moura 2020): by construction, and against
Quantus 0.6's FaithfulnessCorrelation on the very subsets it draws."""

import warnings

import numpy as np
import pytest
import torch

from xaibench.explain.perturbation import random_subsets, subset_removal_drops
from xaibench.metrics.faithfulness import EvidenceOptions, collect_evidence, faithfulness_correlation, rowwise_pearson

SIZE = 8


class WeightedPixels(torch.nn.Module):
    """logit_1 = Σ w_i x_i over the first channel, logit_0 = 0: removing pixel i (to 0)
    lowers p_1 the more, the larger w_i x_i."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.weights = weights.flatten()

    def forward(self, x):
        logit = (x[:, 0].flatten(1) * self.weights).sum(1)
        return torch.stack([torch.zeros_like(logit), logit], 1)


def test_a_map_of_the_true_contributions_correlates_and_its_negative_anticorrelates():
    rng = np.random.default_rng(0)
    weights = torch.tensor(rng.random((SIZE, SIZE)), dtype=torch.float32) * 0.2
    model = WeightedPixels(weights)
    pixels = torch.rand(4, 3, SIZE, SIZE)
    contribution = (weights * pixels[:, 0]).numpy()
    evidence = collect_evidence(model, pixels, contribution, torch.ones(4, dtype=torch.long), steps=4, blur_sigma=1.0,
                                deletion_fill=torch.zeros(3), batch_size=16,
                                options=EvidenceOptions(correlation_runs=50, subset_size=8))
    assert evidence.subset_drops.shape == (4, 50)
    good = faithfulness_correlation(evidence)
    assert (good > 0.9).all()
    evidence.subset_saliency = -evidence.subset_saliency
    np.testing.assert_allclose(faithfulness_correlation(evidence), -good)


def test_the_subsets_of_an_image_do_not_depend_on_its_chunk():
    pixels, maps = torch.rand(3, 3, SIZE, SIZE), np.random.default_rng(1).random((3, SIZE, SIZE))
    model = WeightedPixels(torch.ones(SIZE, SIZE))
    args = dict(steps=2, blur_sigma=1.0, deletion_fill=torch.zeros(3), batch_size=8,
                options=EvidenceOptions(correlation_runs=5, subset_size=4, seed=3))
    whole = collect_evidence(model, pixels, maps, torch.ones(3, dtype=torch.long), **args)
    last = collect_evidence(model, pixels[2:], maps[2:], torch.ones(1, dtype=torch.long), image_indices=[2], **args)
    np.testing.assert_array_equal(whole.subset_saliency[2:], last.subset_saliency)


def test_a_subset_larger_than_the_image_is_refused():
    with pytest.raises(ValueError, match="give a subset_size from 1 to 16"):
        random_subsets(16, 2, 17, np.random.default_rng(0))
    with pytest.raises(ValueError, match="give a subset_size from 1 to 16"):
        random_subsets(16, 2, 0, np.random.default_rng(0))


def test_equal_to_quantus_on_the_subsets_it_draws(monkeypatch):
    """Quantus draws each run's subset per image with np.random.choice over the flattened
    input's features; on a one-channel image a feature is a pixel, as in xaibench. Its draws
    are recorded and given to xaibench's engine: the scores agree to float32 rounding. (On RGB
    Quantus's features are channel values, a deliberate difference: docs/fidelity.yaml.)"""
    quantus = pytest.importorskip("quantus")
    rng = np.random.default_rng(2)
    n, runs, size = 6, 20, 10
    weights = torch.tensor(rng.random((SIZE, SIZE)), dtype=torch.float32)
    net = WeightedPixels(weights)
    x = rng.random((n, 1, SIZE, SIZE)).astype(np.float32)
    maps = (weights.numpy() * x[:, 0] + 0.3 * rng.random((n, SIZE, SIZE))).astype(np.float32)
    drawn, choice = [], np.random.choice

    def recording_choice(*args, **kwargs):
        drawn.append(choice(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(np.random, "choice", recording_choice)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=size, perturb_baseline=0.0,
                                                    return_aggregate=False, disable_warnings=True)(
            model=net.eval(), x_batch=x, y_batch=np.ones(n, int), a_batch=maps[:, None], softmax=True, device="cpu")
    monkeypatch.setattr(np.random, "choice", choice)
    subsets = np.stack(drawn).reshape(runs, n, size).transpose(1, 0, 2)   # Quantus: runs outer, images inner
    pixels = torch.from_numpy(x)
    full = net(pixels).softmax(-1)[:, 1].double().numpy()
    sums, drops = subset_removal_drops(net, pixels, maps, torch.ones(n, dtype=torch.long), torch.zeros(1), subsets,
                                       full, batch_size=8)
    np.testing.assert_allclose(rowwise_pearson(sums, drops), np.asarray(reference, np.float64), atol=1e-5)
