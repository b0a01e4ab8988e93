"""Gradient artificial distancing (GAD; Mazini Rodrigues, Boutry & Najman 2024).

A binary classifier's decision is probed by *support regression models*: copies of
the original model fine-tuned (MSE, softmax replaced by identity) to reproduce its
pre-softmax logits, except that for an image of class c the logit of the other class is
lowered by α. Features a gradient method finds important in the original model *and*
in every support model (α > 0) are the ones that keep the classes apart: the GAD map.
"""

from __future__ import annotations

import numpy as np
import torch

from xaibench.metrics.stability import removal_masks_pixels


def support_regression_targets(logits: torch.Tensor, labels: torch.Tensor, alpha: float) -> torch.Tensor:
    """Regression targets [N, 2]: the original logits with, for each image of class c,
    the logit of the other class (1 − c) lowered by ``alpha``. α = 0 reproduces the
    original model."""
    if logits.shape[1] != 2:
        raise ValueError(f"GAD is defined for binary classifiers, got {logits.shape[1]} logits")
    targets = logits.detach().clone()
    targets[torch.arange(len(labels)), 1 - labels] -= alpha
    return targets


def top_fraction_mask(attribution: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean map of the ``fraction`` most important pixels (largest values, stable on ties)."""
    return removal_masks_pixels(attribution, fraction)


def gad_mask(original: np.ndarray, supports: list[np.ndarray], fraction: float) -> np.ndarray:
    """The intersection rule: important (top ``fraction``) in the original model AND in
    every support model. original, supports[i]: [H, W]."""
    mask = top_fraction_mask(original, fraction)
    for support in supports:
        mask &= top_fraction_mask(support, fraction)
    return mask


def gad_map(original: np.ndarray, supports: list[np.ndarray], fraction: float) -> np.ndarray:
    """The original attribution restricted to the GAD mask (zero elsewhere)."""
    return np.where(gad_mask(original, supports, fraction), original, 0.0).astype(np.float32)
