"""The explained box: its target function, LRP conservation, every method's output shape."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.explain.detection import BOX_METHODS, flat_rule, gamma_weights, lrp_relevance, scaled_segments
from xaibench.models.ssd import BoxLogit, build_detector, detect
from xaibench.schema import Sampled


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    model = build_detector("ssd_twin", 4, 64, [0.5] * 3, [0.25] * 3, widths=(8, 8, 16), extra_width=16)
    # a little training-free structure: BN statistics from random images, then eval
    model.train()
    with torch.no_grad():
        model.backbone(torch.randn(8, 3, 64, 64))
    return model.eval()


@pytest.fixture(scope="module")
def image():
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_detect_matches_torchvision_and_box_logit_gives_the_score(detector, image):
    ours = detect(detector, image)[0]
    with torch.no_grad():
        theirs = detector([image[0]])[0]
    assert len(ours["boxes"]) == len(theirs["boxes"]) > 0
    assert torch.allclose(ours["boxes"], theirs["boxes"], atol=1e-4)
    assert torch.allclose(ours["scores"], theirs["scores"], atol=1e-6)
    assert torch.equal(ours["labels"], theirs["labels"])
    for k in range(min(5, len(ours["scores"]))):
        box = BoxLogit(detector, int(ours["anchors"][k]))
        label = int(ours["labels"][k])
        assert box.scores(image, label).item() == pytest.approx(float(ours["scores"][k]), abs=1e-6)
        logits = box(box.normalize(image))
        assert logits.shape == (1, 4) and logits.requires_grad  # reachable by autograd too


def test_lrp_conserves_relevance_layer_to_layer(detector, image):
    found = detect(detector, image)[0]
    box = BoxLogit(detector, int(found["anchors"][0]))
    label = int(found["labels"][0])
    record = []
    relevance, logit = lrp_relevance(box, box.normalize(image), label, gamma=0.1, record=record)
    sums = [value for _, value in record if abs(value) > 1e-9]
    assert len(sums) >= 7  # head conv + every backbone conv down to the anchor's level
    assert np.allclose(sums, logit, rtol=1e-3)
    assert float(relevance.sum()) == pytest.approx(logit, rel=1e-3)


def test_deeplift_nearly_sums_to_the_logit_difference_from_the_blurred_reference(detector, image):
    from xaibench.explain.detection import blurred_reference, deeplift_attribution

    found = detect(detector, image)[0]
    box = BoxLogit(detector, int(found["anchors"][0]))
    label = int(found["labels"][0])
    cfg = SimpleNamespace(deeplift_blur_sigma=12, reference_size=512)
    attribution, delta = deeplift_attribution(box, image, label, cfg, return_delta=True)
    with torch.no_grad():
        moved = box(box.normalize(image))[0, label] - box(box.normalize(blurred_reference(image, 1.5)))[0, label]
    assert abs(float(moved)) > 1e-3
    # approximately (L2Norm and max-pooling pass gradients, not DeepLIFT multipliers)
    assert float(attribution.sum()) == pytest.approx(float(moved), rel=0.25)
    assert abs(float(delta)) < 0.25 * abs(float(moved))


def test_gamma_weights_scale_only_positive_weights():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    conv.weight.data = torch.tensor([[[[2.0]]], ]).repeat(1, 1, 1, 1)
    net = nn.Sequential(conv, nn.Conv2d(1, 1, 1, bias=False))
    net[1].weight.data.fill_(-1.0)
    boosted = gamma_weights(net, 0.5)
    assert boosted[0].weight.item() == 3.0 and boosted[1].weight.item() == -1.0
    assert net[0].weight.item() == 2.0  # the original is untouched


def test_gamma_weights_can_leave_the_first_layer_to_the_flat_rule():
    net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.Conv2d(1, 1, 1, bias=False))
    net[0].weight.data.fill_(2.0)
    net[1].weight.data.fill_(2.0)
    boosted = gamma_weights(net, 0.5, skip_first=True)
    assert boosted[0].weight.item() == 2.0 and boosted[1].weight.item() == 3.0


def test_flat_rule_by_hand():
    """The study's first-layer rule (ssd-coco-lrp-deeplift-lime-shap.md, 3.2.1 and 3.2.2):
    each output spreads its relevance evenly over its receptive field."""
    conv = nn.Conv2d(1, 1, (1, 2), bias=False)                    # outputs see inputs {0, 1} and {1, 2}
    relevance = flat_rule(conv, torch.tensor([[[[2.0, 4.0]]]]), (1, 1, 1, 3))
    assert relevance.flatten().tolist() == [1.0, 1.0 + 2.0, 2.0]
    padded = nn.Conv2d(1, 1, (1, 3), padding=(0, 1), bias=False)  # fields {0,1}, {0,1,2}, {1,2}: padding not counted
    relevance = flat_rule(padded, torch.tensor([[[[2.0, 3.0, 4.0]]]]), (1, 1, 1, 3))
    assert relevance.flatten().tolist() == [1.0 + 1.0, 1.0 + 1.0 + 2.0, 1.0 + 2.0]
    two_channels = nn.Conv2d(2, 1, 1, bias=False)                 # one output over two input channels
    assert flat_rule(two_channels, torch.tensor([[[[6.0]]]]), (1, 2, 1, 1)).flatten().tolist() == [3.0, 3.0]


def test_deeplift_gamma_spreads_the_first_layer_contributions_flat(detector, image):
    from captum.attr import LayerDeepLift

    from xaibench.explain.detection import blurred_reference, first_conv, with_gradient_maxpool

    found = detect(detector, image)[0]
    box = BoxLogit(detector, int(found["anchors"][0])).eval()
    label = int(found["labels"][0])
    cfg = SimpleNamespace(lrp_gamma=0.1, deeplift_blur_sigma=12, reference_size=512)
    heat = BOX_METHODS["deeplift_gamma"](box, image, label, None, cfg, 0)
    model = with_gradient_maxpool(gamma_weights(box, 0.1, skip_first=True))
    x = box.normalize(image)
    contributions = LayerDeepLift(model, first_conv(model)).attribute(
        x, baselines=box.normalize(blurred_reference(image, 1.5)), target=label)
    assert float(heat.sum()) == pytest.approx(float(contributions.sum()), rel=1e-4)   # the flat rule conserves


def test_segments_are_scaled_by_area():
    yy, xx = np.mgrid[0:128, 0:128]
    image = np.stack([xx * 2, yy * 2, xx + yy], -1).astype(np.uint8)
    segments = scaled_segments(image, 250, 512)  # 250 * (128/512)^2 = 15.6 -> about 16
    assert 8 <= len(np.unique(segments)) <= 24


@pytest.mark.parametrize("method", sorted(BOX_METHODS))
def test_every_method_returns_a_finite_map(detector, image, method):
    found = detect(detector, image)[0]
    box = BoxLogit(detector, int(found["anchors"][0])).eval()
    segments = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 16, 0), 16, 1)
    cfg = SimpleNamespace(lrp_gamma=0.1, deeplift_blur_sigma=12, reference_size=512, num_samples=40, lime=Sampled(),
                          kernel_shap=Sampled(sampling="adaptive"),
                          kernel_width=1.0, batch_size=20)
    heat = BOX_METHODS[method](box, image, int(found["labels"][0]), segments, cfg, 0)
    assert heat.shape == (64, 64) and np.isfinite(heat).all() and np.abs(heat).sum() > 0
    if method in ("lime", "shap", "kernel_shap", "lime_captum", "shap_captum", "kernel_shap_captum"):
        assert all(len(np.unique(heat[segments == s])) == 1 for s in range(16))


def test_a_classifier_method_explains_a_box_as_the_classifier_of_its_class_logits(detector, image):
    from xaibench.explain import METHODS
    from xaibench.explain.detection import explain_box
    from xaibench.models import NormalizedClassifier

    found = detect(detector, image)[0]
    box = BoxLogit(detector, int(found["anchors"][0])).eval()
    label = int(found["labels"][0])
    cfg = SimpleNamespace(options_for=lambda method: METHODS[method].options_of({"n_steps": 8}))
    heat = explain_box("ig", box, image, label, None, cfg, seed=0)
    assert heat.shape == (64, 64) and np.isfinite(heat).all() and np.abs(heat).sum() > 0
    # the same map as IG of a classifier whose logits are the box's, explaining the box's class
    classifier = NormalizedClassifier(box, [0.5] * 3, [0.25] * 3).eval()
    direct = METHODS["ig"](classifier, image, torch.tensor([label]), options={"n_steps": 8})[0]
    np.testing.assert_allclose(heat, direct, rtol=1e-5, atol=1e-7)
    # completeness of IG holds for the box's logit: Σ map = logit(x) - logit(mean colour)
    with torch.no_grad():
        gap = float(box(box.normalize(image))[0, label] - box(torch.zeros_like(image))[0, label])
    fine = SimpleNamespace(options_for=lambda method: METHODS[method].options_of({"n_steps": 128}))
    assert float(explain_box("ig", box, image, label, None, fine).sum()) == pytest.approx(gap, rel=0.05, abs=1e-3)
