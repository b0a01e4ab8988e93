"""Convex-hull complexity (RC) and sensitivity (RS) of GAD maps (Mazini Rodrigues,
Boutry & Najman 2024, tables 1 and 2).

* hull: the convex hull (scikit-image ``convex_hull_image``) of the top ``fraction``
  (0.5 in the paper) of the map's *positive* pixels, ranked by value;
* RC = area(hull_GAD) / area(hull_orig): < 1 means GAD concentrated the explanation;
* RS = |N_a(I) − N_a(I ⊙ (1 − M))| / Σ M: output change of class a per pixel removed,
  for M = the GAD hull and for the supplementary mask (orig hull minus GAD hull).
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.morphology import convex_hull_image


def top_positive_pixels(attribution: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean map of the top ``fraction`` (rounded up) of the positive pixels."""
    positive = attribution > 0
    count = int(np.ceil(fraction * positive.sum()))
    mask = np.zeros(attribution.size, bool)
    if count:
        order = np.argsort(-attribution.ravel(), kind="stable")[:count]
        mask[order] = True
    return mask.reshape(attribution.shape)


def convex_hull_mask(pixels: np.ndarray) -> np.ndarray:
    """Filled convex hull of a boolean [H, W] mask (empty mask -> empty hull)."""
    if not pixels.any():
        return np.zeros_like(pixels, dtype=bool)
    return convex_hull_image(pixels)


def hull_of_map(attribution: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    return convex_hull_mask(top_positive_pixels(attribution, fraction))


def relative_complexity(gad_hull: np.ndarray, original_hull: np.ndarray) -> float:
    """RC = area(hull_GAD) / area(hull_orig) (NaN if the original hull is empty)."""
    area = original_hull.sum()
    return float(gad_hull.sum() / area) if area else float("nan")


@torch.no_grad()
def relative_sensitivity(model, image: torch.Tensor, mask: np.ndarray, target: int, fill: float = 0.0) -> float:
    """RS = |N_a(I) − N_a(I ⊙ (1 − M))| / Σ M for one image [C, H, W] and class a
    (``model`` returns pre-softmax outputs N); NaN for an empty mask."""
    area = int(mask.sum())
    if area == 0:
        return float("nan")
    keep = torch.from_numpy(~mask).to(image.dtype)
    removed = image * keep + fill * (1 - keep)
    outputs = model(torch.stack([image, removed]))[:, target]
    return float((outputs[0] - outputs[1]).abs() / area)
