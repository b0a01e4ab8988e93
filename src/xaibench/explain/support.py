"""The support matrix: every (architecture, method) pair, explained or refused, with its axiom error.

:data:`ARCHITECTURES` are the networks users bring (torchvision and timm builders by
name). :func:`small_instance` builds each with random weights at a small input size (and,
for the largest transformers, fewer blocks and channels of the same layer types), its
BatchNorm scales set by a few forward passes on random images. Conservation methods
(LRP) are checked with every bias and BatchNorm shift zero: an exact rule then conserves
exactly, so an error measures the implementation, not what biases absorb (which is the
rule's definition: with BatchNorm shifts from random images, LRP's Σ R / logit is 0.6-1.4
on these networks). Completeness methods (IG, DeepLIFT) hold with any biases and are
checked with random ones (with none, a LayerNorm after the stem makes f constant along
IG's path from the zero baseline but at its very start, which no quadrature sees). :func:`check_cell` explains two
images and gauges the method's axiom (:mod:`xaibench.explain.axioms`). The tests run every
cell (``tests/test_support_matrix.py``); ``benchmarks/support_matrix.py`` prints the
the table with times per image in docs/reference/benchmarks.md.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from xaibench.explain import METHODS, refusal
from xaibench.explain.axioms import axiom_errors, target_logits
from xaibench.models import NormalizedClassifier
from xaibench.models.external import IMAGENET_MEAN, IMAGENET_STD, build_external

# (model name, test input size in px)
ARCHITECTURES = [
    ("torchvision:vgg16_bn", 48), ("torchvision:resnet18", 48), ("torchvision:resnet50", 48),
    ("torchvision:densenet121", 48), ("torchvision:efficientnet_b0", 48), ("torchvision:mobilenet_v3_small", 48),
    ("torchvision:convnext_tiny", 48), ("torchvision:googlenet", 48), ("torchvision:inception_v3", 80),
    ("torchvision:vit_b_16", 32), ("timm:resnet50", 48), ("timm:vit_tiny_patch16_224", 32),
    ("timm:deit_tiny_patch16_224", 32), ("timm:swin_tiny_patch4_window7_224", 64),
]
# Fewer blocks / channels, the same layer types (the full sizes take seconds per image on 2 cores).
REDUCED = {
    "torchvision:vit_b_16": {"num_layers": 2, "num_heads": 2, "hidden_dim": 64, "mlp_dim": 128},
    "timm:swin_tiny_patch4_window7_224": {"embed_dim": 32, "depths": (1, 1, 2, 1), "num_heads": (1, 2, 2, 4),
                                          "window_size": 2},
}
INPUT_INDEPENDENT_TOKENS = ("cls_token", "class_token", "dist_token", "pos_embed", "pos_embedding")
EXPLAINED_METHODS = ("saliency", "input_x_gradient", "ig", "deeplift", "lrp", "attnlrp", "gradcam",
                     "guided_backprop", "deconvolution", "attention_rollout", "gradient_rollout")


def small_instance(name: str, size: int, num_classes: int = 3, seed: int = 0, reduced: bool = True,
                   zero_biases: bool = True) -> NormalizedClassifier:
    """``name`` with random weights for ``size`` px inputs in eval mode, BatchNorm scales
    from 4 batches of random images (so that activations keep their scale through depth),
    biases zero or random (:func:`_set_biases`)."""
    torch.manual_seed(seed)
    options = REDUCED.get(name, {}) if reduced else {}
    if options:
        library, _, arch = name.partition(":")
        if library == "torchvision":
            from torchvision.models import VisionTransformer  # lazy

            net = VisionTransformer(image_size=size, patch_size=16, num_classes=num_classes, **options)
        else:
            import timm  # lazy: timm

            net = timm.create_model(arch, num_classes=num_classes, img_size=size, **options)
        for module in net.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False
    else:
        net = build_external(name, num_classes, size)
    _calibrate_batch_norms(net, size)
    _set_biases(net, zero_biases)
    return NormalizedClassifier(net, IMAGENET_MEAN, IMAGENET_STD).eval()


@torch.no_grad()
def _set_biases(net: nn.Module, zero: bool) -> None:
    """``zero``: every bias, every BatchNorm shift (running mean) and a transformer's
    input-independent tokens (class token, position embedding) zero, so that an exact rule
    conserves exactly; else biases from N(0, 0.1²). A weight left all zero by its
    initialisation (torchvision's ViT head) is drawn from N(0, 0.02²), so that the logits
    depend on the input."""
    for name, parameter in net.named_parameters():
        if name.endswith("bias") or zero and name.split(".")[-1] in INPUT_INDEPENDENT_TOKENS:
            parameter.zero_() if zero else parameter.normal_(0, 0.1)
        elif parameter.dim() >= 2 and not parameter.any():
            parameter.normal_(0, 0.02)
    if zero:
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.zero_()


@torch.no_grad()
def _calibrate_batch_norms(net: nn.Module, size: int) -> None:
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None   # cumulative average
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    net.train()
    for _ in range(4):  # uniform random pixels, normalised as the model's input is
        net((torch.rand(8, 3, size, size) - mean) / std)
    net.eval()


def check_cell(model: NormalizedClassifier, method: str, size: int, n_images: int = 2, seed: int = 0,
               options: dict | None = None) -> dict:
    """Explain ``n_images`` random images with ``method``: ``{"refused": reason}`` or
    ``{"maps", "axiom", "axiom_errors", "ms_per_image"}``; ``options``: the method's (a dict,
    validated by its schema)."""
    reason = refusal(method, model.net, size, options)
    if reason:
        return {"refused": reason}
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.rand(n_images, 3, size, size, generator=generator).to(model.mean.device)
    with torch.no_grad():
        targets = model(pixels).argmax(-1)
    function = METHODS[method]
    start = time.perf_counter()
    maps = np.asarray(function(model, pixels, targets, seed=seed, options=options))
    elapsed = (time.perf_counter() - start) * 1000 / n_images
    logits, baseline = target_logits(model, pixels, targets)
    errors = axiom_errors(function.axiom, maps.reshape(len(maps), -1).sum(1), logits, baseline)
    return {"maps": maps, "axiom": function.axiom, "axiom_errors": errors, "ms_per_image": elapsed,
            "pixels": pixels, "targets": targets}
