"""The ImageNet study's pieces: LIME's top labels in one sampling, SHAP adapters' shapes."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xaibench.schema import Sampled
from xaibench.studies.imagenet import lime_top_labels, quickshift_segments, shap_gradient, shap_partition


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
