"""The support matrix: every (architecture, method) cell is explained correctly or refused.

On small random-weight instances (:mod:`xaibench.explain.support`) of the networks users
bring, each method that accepts the network must: return finite maps of the image's
shape, the same maps twice (determinism), other maps once the network's weights are
redrawn (it explains the model), and keep its axiom within its tolerance
(:data:`xaibench.explain.axioms.TOLERANCES`). The rewritten graphs the propagation methods
run on compute what the network computes.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from xaibench.explain import METHODS
from xaibench.explain.axioms import TOLERANCES, axiom_errors, target_logits
from xaibench.explain.support import ARCHITECTURES, EXPLAINED_METHODS, check_cell, small_instance

SIZES = dict(ARCHITECTURES)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: beside the whole-DAG test on the other xdist worker, two
    threads per process on two cores made these many small ops 20x slower (spinning)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.lru_cache(maxsize=4)
def instance(name: str, zero_biases: bool, seed: int = 0):
    return small_instance(name, SIZES[name], zero_biases=zero_biases, seed=seed)


def _instance_for(name: str, method: str, seed: int = 0):
    # conservation holds exactly without biases (they absorb relevance by the rule's
    # definition); completeness holds with any biases, so it is checked with them
    return instance(name, METHODS[method].axiom != "completeness", seed)


@pytest.mark.parametrize("name", [name for name, _ in ARCHITECTURES])
def test_every_cell_is_explained_within_its_axiom_or_refused(name):
    size = SIZES[name]
    explained = []
    for method in EXPLAINED_METHODS:
        options = {"n_steps": 16} if method == "ig" else None
        result = check_cell(_instance_for(name, method), method, size, options=options)
        if "refused" in result:
            assert isinstance(result["refused"], str) and len(result["refused"]) > 20, (method, result)
            continue
        explained.append(method)
        maps = result["maps"]
        assert maps.shape == (2, size, size) and np.isfinite(maps).all(), method
        assert np.abs(maps).sum() > 0, f"{method} on {name}: an all-zero map"
        again = check_cell(_instance_for(name, method), method, size, options=options)["maps"]
        np.testing.assert_array_equal(maps, again, err_msg=f"{method} on {name} is not deterministic")
        redrawn = check_cell(_instance_for(name, method, seed=1), method, size, n_images=1, options=options)["maps"]
        assert not np.allclose(maps[:1], redrawn, rtol=1e-3, atol=1e-6), f"{method} on {name}: same map, other weights"
        errors = result["axiom_errors"]
        if result["axiom"] is None:
            assert np.isnan(errors).all()
        elif method == "ig":
            # completeness holds in the limit of steps: the quadrature error falls with them
            coarse = check_cell(_instance_for(name, method), method, size, options={"n_steps": 4})["axiom_errors"]
            assert np.nanmedian(errors) <= max(np.nanmedian(coarse), TOLERANCES["completeness"]), (name, errors,
                                                                                                    coarse)
        else:
            assert np.nanmedian(errors) < TOLERANCES[result["axiom"]], f"{method} on {name}: {errors}"
    # every network keeps the methods that need no rules
    assert {"saliency", "input_x_gradient", "ig", "gradcam"} <= set(explained), explained


EXPECTED_REFUSALS = {
    ("torchvision:efficientnet_b0", "deeplift"), ("torchvision:efficientnet_b0", "lrp"),
    ("torchvision:convnext_tiny", "deeplift"), ("torchvision:convnext_tiny", "lrp"),
    ("timm:vit_tiny_patch16_224", "deeplift"), ("timm:vit_tiny_patch16_224", "lrp"),
    ("torchvision:resnet50", "attention_rollout"), ("torchvision:resnet50", "attnlrp"),
    ("timm:swin_tiny_patch4_window7_224", "attention_rollout"),
}
EXPECTED_SUPPORT = {
    ("torchvision:resnet18", "deeplift"), ("torchvision:resnet50", "lrp"), ("torchvision:googlenet", "deeplift"),
    ("torchvision:inception_v3", "lrp"), ("torchvision:convnext_tiny", "attnlrp"), ("torchvision:vit_b_16", "attnlrp"),
    ("timm:vit_tiny_patch16_224", "gradient_rollout"), ("timm:swin_tiny_patch4_window7_224", "attnlrp"),
    ("timm:deit_tiny_patch16_224", "attention_rollout"), ("timm:resnet50", "deeplift"),
}


def test_the_matrix_refuses_and_supports_what_the_readme_says():
    from xaibench.explain import refusal

    for name, method in EXPECTED_REFUSALS:
        assert refusal(method, instance(name, True).net, SIZES[name]), (name, method)
    for name, method in EXPECTED_SUPPORT:
        assert refusal(method, instance(name, True).net, SIZES[name]) is None, (name, method)


@pytest.mark.parametrize("name", ["torchvision:resnet50", "torchvision:googlenet", "torchvision:densenet121",
                                  "torchvision:vit_b_16", "timm:swin_tiny_patch4_window7_224",
                                  "torchvision:convnext_tiny"])
def test_rewritten_graphs_compute_what_the_network_computes(name):
    from xaibench.explain.gradient_methods import _deeplift_graph, _lrp_graph, _own_modules
    from xaibench.explain.transformer_methods import attnlrp_graph

    model = instance(name, False)
    x = model.normalize(torch.rand(2, 3, SIZES[name], SIZES[name], generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        expected = model.net(x)
        rewrites = [attnlrp_graph] if "vit" in name or "swin" in name or "convnext" in name else \
            [_deeplift_graph, _own_modules, _lrp_graph]
        for rewrite in rewrites:
            got = rewrite(model.net)(x)
            # fusing BatchNorm into the convolution reorders float sums: equal to float32 rounding
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_the_uncanonized_resnet_lrp_error_the_issue_measured_is_gone():
    """zennit's composite on torchvision's ResNet-18 as it is: Σ R / logit ≈ 250 (the residual
    sums pass both branches' relevance on in full); canonized: conserved."""
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonAlpha2Beta1Flat

    model = instance("torchvision:resnet18", True)
    pixels = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    target = model(pixels).argmax(-1)
    logits, _ = target_logits(model, pixels, target)
    x = model.normalize(pixels).requires_grad_(True)
    with Gradient(model=model.net, composite=EpsilonAlpha2Beta1Flat()) as attributor:
        out = model.net(x)
        _, raw = attributor(x, torch.eye(out.shape[1])[target] * out.detach())
    ours = METHODS["lrp"](model, pixels, target)
    assert axiom_errors("conservation", raw.sum().detach().numpy()[None], logits, logits)[0] > 1.0
    assert axiom_errors("conservation", ours.sum()[None], logits, logits)[0] < 1e-3
