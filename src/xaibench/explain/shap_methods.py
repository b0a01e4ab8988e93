"""SHAP (Lundberg & Lee 2017) with the ``shap`` package, as the ImageNet study uses it
(``shared/sources/imagenet-lime-shap.md``): GradientExplainer (expected gradients) of the
target logit against a black image, and PartitionExplainer with a blurring image masker
for comparison. Any classifier study can list them.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from xaibench.explain.registry import register_method
from xaibench.schema import Strict


class ShapGradientParams(Strict):
    """``nsamples``: GradientExplainer's samples per image (the study: 20)."""

    nsamples: int = Field(ge=1)


class ShapPartitionParams(Strict):
    """``max_evals``: PartitionExplainer's model evaluations per image; ``blur``: the
    ``blur(k, k)`` masker's kernel; ``batch_size``: evaluations per forward pass."""

    max_evals: int = Field(ge=10)
    blur: int = Field(ge=1)
    batch_size: int = Field(ge=1)


class _Output(torch.nn.Module):
    """The model's logit ``target`` as a one-output model (GradientExplainer otherwise
    differentiates every class: C backward passes per sample)."""

    def __init__(self, model, target: int):
        super().__init__()
        self.model, self.target = model, target

    def forward(self, x):
        return self.model(x)[:, self.target:self.target + 1]


def shap_gradient_map(model, image: torch.Tensor, target: int, nsamples: int, seed: int) -> np.ndarray:
    """SHAP GradientExplainer (expected gradients) of the target logit against a black
    image: map [H, W]."""
    import shap  # lazy: shap

    explainer = shap.GradientExplainer(_Output(model, target), torch.zeros_like(image[None]))
    values = np.asarray(explainer.shap_values(image[None].clone(), nsamples=nsamples, rseed=seed))
    return values.reshape(3, *image.shape[-2:]).sum(0).astype(np.float32)  # [1, 3, H, W, 1] -> [H, W]


def shap_partition_map(model, image: torch.Tensor, target: int, max_evals: int, blur: int,
                       batch_size: int) -> np.ndarray:
    """SHAP PartitionExplainer with a ``blur(k, k)`` image masker on the target's
    probability: map [H, W]."""
    import shap  # lazy: shap

    def f(batch_hwc):
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(batch_hwc)).permute(0, 3, 1, 2).float()
            return model(x).softmax(-1)[:, target:target + 1].numpy()

    hwc = image.permute(1, 2, 0).numpy().astype(np.float32)
    masker = shap.maskers.Image(f"blur({blur},{blur})", hwc.shape)
    explanation = shap.PartitionExplainer(f, masker)(hwc[None], max_evals=max_evals, batch_size=batch_size,
                                                     silent=True)
    return np.asarray(explanation.values)[0, ..., 0].sum(-1).astype(np.float32)


@register_method("shap_gradient", options=ShapGradientParams)
def shap_gradient(model, pixels, targets, options: ShapGradientParams, seed=0):
    """SHAP GradientExplainer (expected gradients, Lundberg & Lee 2017) of the target logit
    against a black image, ``nsamples`` samples per image."""
    return np.stack([shap_gradient_map(model, image, int(t), options.nsamples, seed)
                     for image, t in zip(pixels.cpu(), targets)])


@register_method("shap_partition", options=ShapPartitionParams)
def shap_partition(model, pixels, targets, options: ShapPartitionParams):
    """SHAP PartitionExplainer (Owen values over a hierarchy of image regions) with a
    ``blur(k, k)`` masker, ``max_evals`` evaluations per image."""
    return np.stack([shap_partition_map(model, image, int(t), options.max_evals, options.blur, options.batch_size)
                     for image, t in zip(pixels.cpu(), targets)])
