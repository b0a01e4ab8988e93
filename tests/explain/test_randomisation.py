"""Cascading model-parameter randomisation (Adebayo et al. 2018) on a tiny CNN."""

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
