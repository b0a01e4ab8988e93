"""Hand-checkable cases of the graph rewrites, DeepLIFT's max-pooling rule, the rollouts,
the axiom gauge and Grad-CAM's layer choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xaibench.explain import METHODS
from xaibench.explain.axioms import axiom_errors, axiom_summary
from xaibench.explain.graph import functional_to_modules, separate_hooked_modules, trace, unsupported_operations
from xaibench.explain.transformer_methods import gradient_weighted_rollout, rollout
from xaibench.models import NormalizedClassifier


class ReusedRelu(nn.Module):
    """One ReLU module called twice and a functional ReLU: the pattern of torchvision's ResNet blocks."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
        self.pool, self.head = nn.MaxPool2d(3, 2, 1), nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        y = self.relu(self.a(x))
        y = self.relu(self.b(y) + y)
        return self.head(self.pool(torch.nn.functional.relu(y)).flatten(1))


def test_every_relu_call_gets_its_own_module_and_the_outputs_stay_the_same():
    torch.manual_seed(0)
    net = ReusedRelu().eval()
    graph = functional_to_modules(trace(net))
    calls = [n for n in graph.graph.nodes if n.op == "call_module" and isinstance(graph.get_submodule(n.target),
                                                                                 nn.ReLU)]
    assert len(calls) == 3 and len({n.target for n in calls}) == 3
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(graph(x), net(x), rtol=0, atol=0)


def test_a_hooked_module_reading_a_shared_tensor_gets_a_clone():
    net = ReusedRelu().eval()
    graph = separate_hooked_modules(functional_to_modules(trace(net)), (nn.ReLU, nn.MaxPool2d))
    clones = [n for n in graph.graph.nodes if n.op == "call_method" and n.target == "clone"]
    # the first two ReLUs read a conv / the sum (each used once): none; the functional ReLU
    # reads the second ReLU's output, the max pooling the functional ReLU's: one clone each
    assert len(clones) == 2


def test_deeplift_sums_to_the_output_difference_through_overlapping_max_pooling():
    """captum 0.9 alone misses it (Σ = -0.166 for Δf = -0.202 on such a net): the multipliers
    of overlapping 3x3 / stride 2 windows and of a ReLU feeding the pooling."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Flatten(),
                        nn.Linear(4 * 4 * 4, 2)).eval()
    model = NormalizedClassifier(net, [0.5] * 3, [0.25] * 3).eval()
    pixels = torch.rand(2, 3, 8, 8)
    targets = torch.tensor([0, 1])
    maps = METHODS["deeplift"](model, pixels, targets)
    with torch.no_grad():
        delta = (net(model.normalize(pixels)) - net(torch.zeros(2, 3, 8, 8)))[torch.arange(2), targets]
    np.testing.assert_allclose(maps.reshape(2, -1).sum(1), delta.numpy(), rtol=1e-5)


def test_unsupported_operations_name_the_category_count_and_an_example():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.GELU(), nn.Flatten(), nn.LayerNorm(4 * 2 * 2))
    text = unsupported_operations(net, {"linear"})
    assert text == ("1 × an element-wise nonlinearity other than ReLU (e.g. GELU (1)); "
                    "1 × a layer normalisation (e.g. LayerNorm (3))")
    assert unsupported_operations(net, {"linear", "activation", "layernorm"}) is None


def test_rollout_of_hand_built_attention():
    identity = torch.eye(2).view(1, 1, 2, 2)
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).view(1, 1, 2, 2)
    torch.testing.assert_close(rollout([identity, identity]), torch.eye(2).view(1, 2, 2))
    # (swap + I) / 2 = all 0.5; a product of such matrices stays all 0.5
    torch.testing.assert_close(rollout([swap, identity]), torch.full((1, 2, 2), 0.5))


def test_gradient_weighted_rollout_of_hand_built_attention():
    attention = torch.full((1, 1, 2, 2), 0.5)
    gradient = torch.tensor([[1.0, -1.0], [2.0, 0.0]]).view(1, 1, 2, 2)
    # (∇A ⊙ A)+ = [[0.5, 0], [1, 0]]; R = I + that
    torch.testing.assert_close(gradient_weighted_rollout([attention], [gradient]),
                               torch.tensor([[[1.5, 0.0], [1.0, 1.0]]]))


def test_axiom_errors_by_hand():
    # completeness: Σ = 3, f(x) - f(x0) = 4 - 0 -> 0.25; conservation: Σ = 3, f(x) = 4 -> 0.25
    np.testing.assert_allclose(axiom_errors("completeness", [3.0, 2.0], [4.0, 3.0], [0.0, 1.0]), [0.25, 0.0])
    np.testing.assert_allclose(axiom_errors("conservation", [3.0], [4.0], [9.0]), [0.25])
    assert np.isnan(axiom_errors("completeness", [1.0], [2.0], [2.0])).all()   # f(x) = f(x0): undefined
    assert np.isnan(axiom_errors(None, [1.0], [2.0], [0.0])).all()
    summary = axiom_summary("conservation", [0.1, 0.5, None, float("nan")])
    assert summary == {"axiom": "conservation", "median_error": 0.3, "max_error": 0.5, "tolerance": 0.3,
                       "above_tolerance": False, "n": 2}
    assert axiom_summary(None, [0.1]) is None


@pytest.mark.parametrize("name, size, layer", [
    ("torchvision:resnet18", 64, "layer4"), ("torchvision:convnext_tiny", 64, "features"),
    ("torchvision:efficientnet_b0", 64, "features"), ("torchvision:vgg16_bn", 48, "features.42"),
    ("torchvision:vit_b_16", 32, "encoder.layers.encoder_layer_11.ln_1"),
    ("timm:vit_tiny_patch16_224", 32, "blocks.11.norm1"),
    ("timm:swin_tiny_patch4_window7_224", 224, "layers.3.blocks.1.norm2"),
])
def test_gradcam_reads_the_layer_the_head_reads(name, size, layer):
    from xaibench.explain.gradcam import target_layer
    from xaibench.models.external import meta_net

    assert target_layer(meta_net(name, size), size)[0] == layer


def test_gradcam_last_conv_and_a_named_layer(seeded_cnn):
    from xaibench.explain.gradcam import target_layer

    net = seeded_cnn(64).net
    assert target_layer(net, 64, "last_conv")[0] == "9"
    assert target_layer(net, 64, "6")[0] == "6"
    with pytest.raises(ValueError, match="gradcam.layer 'layer4' is not a module of the net"):
        target_layer(net, 64, "layer4")


def test_gradcam_equals_captums_layer_gradcam_on_the_same_layer(seeded_cnn):
    """torchcam's GradCAM (ours) and captum's LayerGradCam: the same formula, the same maps."""
    from captum.attr import LayerAttribution, LayerGradCam

    model = seeded_cnn(64)
    pixels, targets = torch.rand(2, 3, 64, 64), torch.tensor([0, 1])
    ours = METHODS["gradcam"](model, pixels, targets, options={"layer": "last_conv"})
    cam = LayerGradCam(model.net, model.net[9]).attribute(model.normalize(pixels), target=targets,
                                                          relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, (64, 64), interpolate_mode="bilinear").clamp_min(0)
    cam = (cam / cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1))[:, 0]
    np.testing.assert_allclose(ours, cam.detach().numpy(), atol=1e-5)
