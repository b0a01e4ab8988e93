"""Occlusion (Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks",
ECCV): slide a grey patch over the image and record how much the target score falls.

For a window W of ``window`` x ``window`` pixels (all channels) moved by ``stride``, the
attribution of pixel p is the mean, over the windows that cover p, of

    f(x)_target − f(x with W set to the baseline)_target,

the baseline being 0 on the normalised input (the training mean colour), the target's
logit as the score. captum's ``Occlusion`` computes it; ``batch_size`` occluded copies go
through the network at once.
"""

from __future__ import annotations

import torch
from pydantic import Field

from xaibench.explain.gradient_methods import channel_sum
from xaibench.explain.registry import register_method
from xaibench.schema import Strict


class OcclusionParams(Strict):
    """``window``: the patch's side in pixels; ``stride``: its step; ``batch_size``: occluded
    copies per forward pass."""

    window: int = Field(8, ge=1)
    stride: int = Field(4, ge=1)
    batch_size: int = Field(64, ge=1)


@register_method("occlusion", options=OcclusionParams)
def occlusion(model, pixels, targets, options: OcclusionParams):
    """Occlusion (Zeiler & Fergus 2014) with captum ``Occlusion``: the fall of the target
    logit when a ``window``-pixel patch, moved by ``stride``, takes the training mean colour."""
    from captum.attr import Occlusion  # lazy: captum

    x = model.normalize(pixels).detach()
    with torch.no_grad():
        attribution = Occlusion(model.net).attribute(
            x, sliding_window_shapes=(x.shape[1], options.window, options.window),
            strides=(x.shape[1], options.stride, options.stride), baselines=0.0, target=targets,
            perturbations_per_eval=options.batch_size)
    return channel_sum(attribution)
