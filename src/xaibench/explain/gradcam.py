"""Grad-CAM (Selvaraju et al. 2017) on the layer the classifier head reads, CNN or transformer.

Which layer (``attribute.gradcam.layer``):

* ``auto``: on a CNN, the last module whose output is a spatial map (4-D, more than one
  position): torchcam's ``locate_candidate_layer`` rule (adaptive pools skipped), which
  stops before the global pooling
  (ResNet: ``layer4``; ConvNeXt: its last stage; EfficientNet: the head convolution's
  block; VGG: the last max pooling). On a vision transformer, pytorch-grad-cam's
  convention: the tokens entering the last block's attention (timm ViT / DeiT:
  ``blocks[-1].norm1``; torchvision ViT: ``encoder.layers[-1].ln_1``; the class token
  alone reaches the head, so the last block's *output* patch tokens have no gradient),
  and on a Swin the last block's ``norm2`` output; tokens are reshaped to the patch grid
  (prefix tokens dropped; Swin's channels-last map permuted).
* ``last_conv``: the last ``nn.Conv2d`` (the cats-vs-dogs source's "last convolutional
  layer").
* a module name of ``model.net`` (``net.named_modules()``).

The map: ReLU of the gradient-weighted channel sum (torchcam ``GradCAM``), bilinearly
upsampled to the image, divided by its maximum (so it is in [0, 1]; an all-zero map stays zero).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from xaibench.explain.graph import patch_grid
from xaibench.explain.registry import register_method
from xaibench.models import last_conv_layer
from xaibench.schema import Strict

# torchcam is imported inside the functions (with matplotlib: about a second at start-up).


class GradCamParams(Strict):
    """``layer``: ``auto`` (the last spatial map the head reads; a transformer's last block
    tokens), ``last_conv``, or a module name of the net."""

    layer: str = "auto"


def _family(net: nn.Module) -> str:
    """``vit`` (timm or torchvision ViT / DeiT), ``swin`` (timm), or ``cnn``."""
    kind = type(net)
    module = kind.__module__
    if module.startswith("timm.models.swin_transformer"):
        return "swin"
    if module.startswith(("timm.models.vision_transformer", "timm.models.deit")) or (
            module.startswith("torchvision.models.vision_transformer") and kind.__name__ == "VisionTransformer"):
        return "vit"
    return "cnn"


def _prefix_tokens(net: nn.Module) -> int:
    return int(getattr(net, "num_prefix_tokens", 1))  # torchvision's ViT: one class token


def _tokens_to_grid(tokens: torch.Tensor, prefix: int, height: int, width: int) -> torch.Tensor:
    """[N, T, C] tokens -> [N, C, rows, cols] patch grid (the first ``prefix`` tokens dropped)."""
    rows, cols = patch_grid(tokens.shape[1], prefix, height, width)
    return tokens[:, prefix:].reshape(tokens.shape[0], rows, cols, tokens.shape[2]).permute(0, 3, 1, 2)


def _swin_to_grid(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A Swin block's [N, H, W, C] map (or its [N, H·W, C] tokens) -> [N, C, H, W]."""
    if maps.dim() == 3:
        return _tokens_to_grid(maps, 0, height, width)
    return maps.permute(0, 3, 1, 2)


def _last_child(container: nn.Module) -> str:
    return list(dict(container.named_children()))[-1]


def _located(net: nn.Module, image_size: int) -> str | None:
    """torchcam's ``locate_candidate_layer`` rule: the last module (in the order modules
    finish) whose output is 4-D with more than one position, except an adaptive pooling:
    VGG's ``AdaptiveAvgPool2d(7)`` replicates a 1x1 map to 7x7 at small inputs, where
    torchcam would pick it (a constant map)."""
    shapes: list[tuple[str, nn.Module, tuple]] = []
    handles = [module.register_forward_hook(
        lambda m, i, output, name=name: shapes.append((name, m, tuple(output.shape)))
        if isinstance(output, torch.Tensor) else None) for name, module in net.named_modules()]
    training = net.training
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, image_size, image_size, device=next(net.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
        net.train(training)
    for name, module, shape in reversed(shapes):
        if len(shape) == 4 and any(v != 1 for v in shape[2:]) and \
                not isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            return name
    return None


def target_layer(net: nn.Module, image_size: int, layer: str = "auto") -> tuple[str, object]:
    """(module name, reshape) of the Grad-CAM layer of ``net`` for ``layer``; reshape maps
    the module's output to [N, C, h, w] (None: it is that already). ValueError if none."""
    family = _family(net)
    names = dict(net.named_modules())
    if layer == "auto" and family == "vit":
        if hasattr(net, "blocks"):
            layer = f"blocks.{_last_child(net.blocks)}.norm1"
        else:
            layer = f"encoder.layers.{_last_child(net.encoder.layers)}.ln_1"
    elif layer == "auto" and family == "swin":
        layer = f"layers.{_last_child(net.layers)}.blocks.{_last_child(net.layers[-1].blocks)}.norm2"
    elif layer == "auto":
        layer = _located(net, image_size)
        if layer is None:
            raise ValueError("no module of this net outputs a spatial map (4-D, more than one position) for Grad-CAM")
    elif layer == "last_conv":
        try:
            last = last_conv_layer(net)
        except ValueError:
            raise ValueError("the net has no Conv2d layer (gradcam.layer: last_conv)") from None
        layer = next(name for name, m in names.items() if m is last)
    if layer not in names:
        close = [n for n in names if n and n.split(".")[-1] == layer.split(".")[-1]][:5]
        raise ValueError(f"gradcam.layer {layer!r} is not a module of the net"
                         + (f" (e.g. {close})" if close else "; see net.named_modules()"))
    reshape = {"vit": partial(_tokens_to_grid, prefix=_prefix_tokens(net), height=image_size, width=image_size),
               "swin": partial(_swin_to_grid, height=image_size, width=image_size)}.get(family)
    return layer, reshape


def gradcam_refuses(net: nn.Module, image_size: int, options: GradCamParams) -> str | None:
    try:
        target_layer(net, image_size, options.layer)
    except ValueError as error:
        return f"Grad-CAM: {error}"
    return None


@register_method("gradcam", options=GradCamParams, refuses=gradcam_refuses)
def gradcam(model, pixels, targets, options: GradCamParams):
    """Grad-CAM on :func:`target_layer`'s layer (torchcam ``GradCAM``): ReLU(Σ_k α_k A_k),
    α_k the spatial mean of ∂ y_target / ∂ A_k; upsampled bilinearly and divided by its max."""
    from torchcam.methods import GradCAM  # lazy: torchcam (matplotlib)

    name, reshape = target_layer(model.net, pixels.shape[-1], options.layer)
    x = model.normalize(pixels).detach()
    with torch.enable_grad(), GradCAM(model.net, target_layer=name, reshape_transform=reshape) as extractor:
        scores = model.net(x)
        cam = extractor(class_idx=[int(t) for t in targets], scores=scores, normalized=False)[0]  # [N, h, w]
    cam = F.interpolate(cam[:, None].float(), size=tuple(pixels.shape[-2:]), mode="bilinear",
                        align_corners=False).clamp_min(0)
    peak = cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return (cam / peak)[:, 0].detach().cpu().numpy().astype("float32")
