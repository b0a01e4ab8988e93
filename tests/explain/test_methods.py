"""Every registered method has the same call shape; method-specific properties by hand."""

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.explain import METHODS
from xaibench.explain.lime_method import segment_weights_to_map
from xaibench.models import NormalizedClassifier, build_model, last_conv_layer


@pytest.fixture(scope="module")
def model(seeded_cnn):
    return seeded_cnn(128)


@pytest.fixture(scope="module")
def pixels():
    torch.manual_seed(1)
    return torch.rand(2, 3, 128, 128)


# small options for the methods whose schema requires values
CALL_OPTIONS = {"lime": {"num_samples": 40, "n_segments": 20, "batch_size": 20},
                "lime_package": {"num_samples": 40, "n_segments": 20, "batch_size": 20},
                "lime_quickshift": {"num_samples": 40, "batch_size": 20, "kernel_size": 4, "max_dist": 200,
                                    "ratio": 0.2, "top_labels": 2, "top_superpixels": 3},
                "shap_gradient": {"nsamples": 4}, "shap_partition": {"max_evals": 40, "blur": 4, "batch_size": 20}}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_call_shape(name, model, pixels):
    from xaibench.explain import refusal

    if refusal(name, model.net, 128):  # e.g. attention rollout on a CNN: refused, never run
        assert name in ("attention_rollout", "gradient_rollout", "attnlrp")
        return
    options = CALL_OPTIONS.get(name)
    maps = METHODS[name](model, pixels, torch.tensor([0, 1]), seed=0, options=options)
    assert maps.shape == (2, 128, 128) and maps.dtype == np.float32 and np.isfinite(maps).all()


def test_lrp_relevance_sums_to_the_target_logit_without_biases(pixels):
    # Epsilon, Alpha2Beta1 and Flat conserve relevance layer to layer when no bias absorbs
    # any (and, for alpha-beta, every neuron has both positive and negative contributions:
    # mixed-sign weights; with positive weights only, each conv layer would double it).
    torch.manual_seed(2)
    net = build_model("catsdogs_cnn", 2, 128)
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.zeros_(module.bias)
    model = NormalizedClassifier(net, [0.0] * 3, [1.0] * 3).eval()
    relevance = METHODS["lrp"](model, pixels[:1], torch.tensor([1]))
    logit = model(pixels[:1])[0, 1].item()
    assert relevance.sum() == pytest.approx(logit, rel=5e-3)  # epsilon absorbs a little


def test_gradcam_is_in_unit_range(model, pixels):
    maps = METHODS["gradcam"](model, pixels, torch.tensor([0, 1]))
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6


def test_deeplift_completeness(model, pixels):
    # DeepLIFT's summation-to-delta: sum of attributions = f(x) - f(baseline) for the target logit.
    maps = METHODS["deeplift"](model, pixels[:1], torch.tensor([1]))
    baseline = model.net(torch.zeros(1, 3, 128, 128))[0, 1]
    assert maps.sum() == pytest.approx((model(pixels[:1])[0, 1] - baseline).item(), abs=1e-3)


def test_random_is_seeded_per_image(model, pixels):
    a = METHODS["random"](model, pixels, torch.tensor([0, 1]), seed=3, image_indices=[5, 6])
    b = METHODS["random"](model, pixels[1:], torch.tensor([1]), seed=3, image_indices=[6])
    np.testing.assert_array_equal(a[1], b[0])


def test_lime_map_is_constant_within_superpixels():
    segments = np.array([[0, 0, 1], [2, 2, 1]])
    np.testing.assert_array_equal(segment_weights_to_map(segments, {0: 0.5, 1: -1.0, 2: 2.0}),
                                  [[0.5, 0.5, -1.0], [2.0, 2.0, -1.0]])


def test_last_conv_layer_is_the_gradcam_layer():
    net = build_model("catsdogs_cnn", 2, 128)
    assert last_conv_layer(net) is [m for m in net if isinstance(m, nn.Conv2d)][-1]


def test_edge_control_is_the_sobel_magnitude_and_ignores_the_model(model, pixels):
    image = torch.zeros(1, 3, 8, 8)
    image[..., 4:] = 1.0                                   # a vertical step from black to white
    edges = METHODS["edge"](None, image, torch.tensor([0]))[0]
    assert edges[:, 0].max() == 0 and edges[:, 7].max() == 0   # flat far from the step
    assert edges[4, 3] > 0 and edges[4, 4] > 0                  # strongest on both sides of it
    assert np.allclose(edges, edges[4:5])                       # the same in every row
    a = METHODS["edge"](model, pixels, torch.tensor([0, 1]))
    b = METHODS["edge"](None, pixels, torch.tensor([1, 0]))
    assert np.array_equal(a, b)                                  # model- and target-independent


def test_options_reach_a_method_typed_once_and_unknown_ones_are_an_error(model, pixels):
    from xaibench.explain.gradient_methods import IntegratedGradientsParams

    ig = METHODS["ig"]
    assert ig.options_of(None) == IntegratedGradientsParams(n_steps=50)     # the schema's default, written once
    typed = IntegratedGradientsParams(n_steps=4)
    assert ig.options_of(typed) is typed                                     # validated params pass as they are
    assert ig.options_of({"n_steps": 4}) == typed
    with pytest.raises(ValueError, match="n_step"):
        ig.options_of({"n_step": 4})                                        # misspelt: not swallowed
    with pytest.raises(ValueError, match="takes no options"):
        METHODS["saliency"](model, pixels, torch.tensor([0, 1]), options={"n_steps": 4})
    with pytest.raises(TypeError):
        METHODS["saliency"](model, pixels, torch.tensor([0, 1]), n_steps=4)  # not an option path at all
    four = METHODS["ig"](model, pixels, torch.tensor([0, 1]), options={"n_steps": 4})
    many = METHODS["ig"](model, pixels, torch.tensor([0, 1]), options={"n_steps": 64})
    assert not np.allclose(four, many)                                       # the option took effect
