"""The ImageNet study's methods: LIME's top labels in one sampling, the SHAP adapters, and the
registered methods that wrap them."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xaibench.schema import Sampled
from xaibench.explain import METHODS
from xaibench.explain.lime_method import lime_top_labels, quickshift_segments
from xaibench.explain.shap_methods import shap_gradient_map as shap_gradient
from xaibench.explain.shap_methods import shap_partition_map as shap_partition


@pytest.fixture
def model(seeded_cnn):
    return seeded_cnn(32)


def _image():
    yy, xx = np.mgrid[0:32, 0:32] / 32
    return np.stack([xx, yy, (xx + yy) / 2], -1).astype(np.float32)


def test_lime_top_labels_explains_each_label_from_one_sampling(model):
    image = _image()
    cfg = SimpleNamespace(kernel_size=4, max_dist=200, ratio=0.2, top_labels=2, num_samples=60, batch_size=30,
                          **dict(Sampled()))
    segments = quickshift_segments(image, cfg, 0)
    labels, weights = lime_top_labels(model, torch.from_numpy(image).permute(2, 0, 1), segments, cfg, 0)
    assert sorted(labels.tolist()) == [0, 1] and weights.shape == (segments.max() + 1, 2)
    # two classes: p0 + p1 = 1, so the ridge slopes of the two labels are opposite
    assert np.allclose(weights[:, 0], -weights[:, 1], atol=1e-6)


def test_shap_adapters_return_maps_and_gradient_shap_sums_to_the_output_gap(model):
    image = torch.from_numpy(_image()).permute(2, 0, 1)
    gradient = shap_gradient(model, image, 1, nsamples=200, seed=0)
    assert gradient.shape == (32, 32) and np.isfinite(gradient).all()
    with torch.no_grad():
        gap = float(model(image[None])[0, 1] - model(torch.zeros(1, 3, 32, 32))[0, 1])
    assert abs(gradient.sum() - gap) < 0.35 * abs(gap) + 0.05  # expected gradients: completeness, sampled
    partition = shap_partition(model, image, 1, max_evals=60, blur=3, batch_size=30)
    assert partition.shape == (32, 32) and np.isfinite(partition).all()


def test_the_registered_lime_quickshift_explains_the_target_first_whatever_the_top_label(model):
    image = torch.from_numpy(_image()).permute(2, 0, 1)
    options = {"kernel_size": 4, "max_dist": 200, "ratio": 0.2, "top_labels": 2, "num_samples": 60, "batch_size": 30,
               "top_superpixels": 3}
    with torch.no_grad():
        top, other = model(image[None])[0].argsort(descending=True)[:2].tolist()
    explanations = []
    maps = METHODS["lime_quickshift"](model, image[None], torch.tensor([top]), seed=0, options=options,
                                      explanations=explanations)
    segments, labels, weights = explanations[0]
    assert labels.tolist() == [top, other] and maps.shape == (1, 32, 32)
    np.testing.assert_allclose(maps[0], weights[segments, 0])        # the map is the target's weights
    other_map = METHODS["lime_quickshift"](model, image[None], torch.tensor([other]), seed=0, options=options)
    np.testing.assert_allclose(other_map[0], -maps[0], atol=1e-6)     # two classes: the other label's slopes
    shap = METHODS["shap_partition"](model, image[None], torch.tensor([1]), options={"max_evals": 60, "blur": 3,
                                                                                   "batch_size": 30})
    np.testing.assert_allclose(shap[0], shap_partition(model, image, 1, max_evals=60, blur=3, batch_size=30))
