"""Gradient artificial distancing (GAD; Mazini Rodrigues, Boutry & Najman 2024).

Source: ``shared/sources/gad-gradient-artificial-distancing.md``, sections 4.1-4.3 and
Figure 3.

A binary classifier's decision is probed by *support regression models*: copies of the
original model fine-tuned (MSE, softmax replaced by identity) to reproduce its
pre-softmax logits, except that for an image of class c the logit of the other class is
lowered by α (section 4.1). Features that a gradient method finds important in the
original model *and* in every support model are the ones that keep the classes apart
(section 4.3).

Which maps are intersected: the original and the support models for α > 0. Figure 3
intersects "five attribution maps, the initial one (classification model analyzed), and
the four support regression models"; with the experiments' α = 0, 2, 4, 6, 8 (section 6)
the four supports are α = 2, 4, 6, 8. The α = 0 support regresses the original's own
logits, starts at zero loss and stays a copy of the original: it is trained and reported
(a control: its MSE and shift must stay near 0) but adds nothing to the intersection.
"""

from __future__ import annotations

import numpy as np
import torch


def support_regression_targets(logits: torch.Tensor, labels: torch.Tensor, alpha: float) -> torch.Tensor:
    """Regression targets [N, 2]: the original logits with, for each image of class c,
    the logit of the other class (1 − c) lowered by ``alpha`` (section 4.1: "subtracting a
    value α_cat" from the dog logit of cat images, and vice versa). α = 0 reproduces the
    original model."""
    if logits.shape[1] != 2:
        raise ValueError(f"GAD is defined for binary classifiers, got {logits.shape[1]} logits")
    targets = logits.detach().clone()
    targets[torch.arange(len(labels)), 1 - labels] -= alpha
    return targets


def intersected_alphas(alphas) -> list[float]:
    """The support models whose maps enter the GAD map: α > 0 (see the module docstring)."""
    return [a for a in alphas if a > 0]


def importance_ranks(attribution: np.ndarray) -> np.ndarray:
    """Each pixel's importance as its percentile rank in its own map, in (0, 1]:
    rank(v) / N with ties given their average rank (``scipy.stats.rankdata``); pixels with
    no positive evidence (v <= 0) get 0. Ranks make maps of different scale comparable:
    a support model for α = 8 has larger gradients than the original."""
    from scipy.stats import rankdata  # lazy: ~0.5 s at import, which every stage paid
    ranks = rankdata(attribution.ravel(), method="average").reshape(attribution.shape) / attribution.size
    return np.where(attribution > 0, ranks, 0.0)


def gad_map(original: np.ndarray, supports: list[np.ndarray]) -> np.ndarray:
    """The GAD map [H, W]: per pixel, the smallest importance rank it has in the original
    map and in every support map, ``min_m importance_ranks(map_m)``.

    This is Figure 3's intersection made graded: thresholding it at 1 − f gives exactly the
    pixels in the top f of all five maps ("features present in all five attribution
    maps"), for every f at once. It is a dense map, so its own most important half of
    the pixels (section 6, the convex hull) can reach pixels outside the original's most
    important half: RC can come out above or below 1 (see
    :mod:`xaibench.metrics.complexity`)."""
    return np.minimum.reduce([importance_ranks(m) for m in (original, *supports)]).astype(np.float32)
