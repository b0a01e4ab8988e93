"""Cascading model-parameter randomisation (Adebayo et al. 2018) on a tiny CNN."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.explain import METHODS
from xaibench.explain.randomisation import (cascade_groups, randomisation_cascade, randomisation_summary,
                                            spearman_abs, ssim_abs)
from xaibench.models import NormalizedClassifier


def tiny_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    return NormalizedClassifier(net, [0.5] * 3, [0.25] * 3).eval()


def test_groups_run_from_the_output_and_cover_every_layer():
    groups = cascade_groups(tiny_model().net, 2)
    assert [[name for name, _ in g] for g in groups] == [["5", "2"], ["0"]]
    assert len(cascade_groups(tiny_model().net, 10)) == 3          # never more steps than layers


def test_similarity_measures_by_hand():
    a = np.arange(16.0).reshape(1, 4, 4)
    assert spearman_abs(a, 2 * a)[0] == pytest.approx(1.0)
    assert spearman_abs(a, -a)[0] == pytest.approx(1.0)              # |map|: the sign does not count
    assert spearman_abs(a, a[:, ::-1, ::-1])[0] == pytest.approx(-1.0)
    assert spearman_abs(a, np.zeros_like(a))[0] == 0.0               # a constant map: no correlation
    assert ssim_abs(a, 3 * a)[0] == pytest.approx(1.0)               # SSIM of max-scaled maps


def test_gradient_maps_change_when_the_model_is_randomised_and_controls_do_not():
    model = tiny_model()
    pixels = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([0, 1, 0])
    before = [p.clone() for p in model.parameters()]

    def explainer(method):
        return lambda m: METHODS[method](m, pixels, targets, seed=0, image_indices=[0, 1, 2])

    gradient = randomisation_cascade(model, explainer("deeplift"), 3, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # the trained model is untouched
    assert [r["layers_random"] for r in gradient] == [0, 1, 2, 3]
    assert gradient[0]["spearman"] == pytest.approx(np.ones(3))
    assert gradient[-1]["spearman"].mean() < 0.9                      # a different map once all is random
    for control in ("random", "edge"):
        rows = randomisation_cascade(model, explainer(control), 3, seed=0)
        summary = randomisation_summary(rows, fail_threshold=0.5)
        assert summary["final_spearman"] == 1.0 and summary["fails"]  # model-independent: fails the check


def test_spearman_can_be_restricted_to_a_region():
    a = np.arange(16.0).reshape(1, 4, 4)
    b = a.copy()
    b[0, 2:] = b[0, 2:][:, ::-1] * 0                    # the lower half differs (all zero)
    region = np.zeros((1, 4, 4), bool)
    region[0, :2] = True
    assert spearman_abs(a, b, region)[0] == pytest.approx(1.0)
    assert spearman_abs(a, b)[0] < 1.0


def test_the_cascade_equals_quantus_mprt_given_its_seeds(monkeypatch):
    """Quantus 0.6's MPRT, top-down cascade: each layer, output first, re-initialised by its
    ``reset_parameters`` after ``torch.manual_seed(seed + 1)``; Spearman of |map|. xaibench's
    cascade with one step per layer and that seeding (its own: seed·1000 + step, a
    deliberate difference in the seeds alone) gives the same correlations, layer by layer."""
    quantus = pytest.importorskip("quantus")
    import xaibench.explain.randomisation as randomisation

    def quantus_seeding(modules, seed):
        for _, module in modules:
            torch.manual_seed(42 + 1)
            module.reset_parameters()

    monkeypatch.setattr(randomisation, "randomise_", quantus_seeding)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(4 * 8 * 8, 2)).eval()
    pixels = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 1, 1, 0])

    def gradient_x_input(model, inputs, targets, **kwargs):
        x = torch.as_tensor(inputs).clone().requires_grad_(True)
        model(x)[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
        return (x.grad * x).detach().numpy()

    ours = randomisation_cascade(net, lambda m: gradient_x_input(m, pixels, targets)[:, 0], 3, seed=0,
                                 net_of=lambda m: m)
    maps = gradient_x_input(net, pixels, targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = quantus.MPRT(layer_order="top_down", disable_warnings=True)(
            model=net, x_batch=pixels.numpy(), y_batch=targets.numpy(), a_batch=maps, explain_func=gradient_x_input,
            device="cpu")
    assert list(reference) == ["original", "5", "2", "0"]
    for row, layer in zip(ours, reference):                         # "original": the trained model itself
        np.testing.assert_allclose(row["spearman"], reference[layer], atol=1e-12)
