"""Properties of a map alone (no model call): how concentrated the explanation is.

* Sparseness (Chalasani, Chen, Chowdhury, Wu & Jha 2020, "Concise explanations of neural
  networks using adversarial training", ICML, sec. 5): the Gini index of |a| over the n
  pixels, with ``a_(1) <= ... <= a_(n)`` sorted ascending,
  ``G = Σ_k (2k − n − 1) a_(k) / (n Σ_k a_(k))``: 0 for a uniform map, ``1 − 1/n`` for one
  pixel. Higher = sparser (the paper's "more concise").
* Complexity (Bhatt, Weller & Moura 2020, "Evaluating and aggregating feature-based model
  explanations", IJCAI, sec. 4.3): the entropy of the fractional contribution
  ``P(i) = |a_i| / Σ_j |a_j|``, ``μ_C = −Σ_i P(i) ln P(i)`` (``0 ln 0 = 0``): 0 for one
  pixel, ``ln n`` for a uniform map. Lower = less complex.

Both are NaN for a map that is zero everywhere (no relevance to distribute). A map is
scored as stored (one value per pixel, channels already reduced).
"""

from __future__ import annotations

import numpy as np

from xaibench.metrics.registry import MAP_METRICS, register_map_metric


def map_scores(maps) -> dict[str, np.ndarray]:
    """{metric: [N]} of every registered map metric on ``maps`` [N, H, W]."""
    return {metric: fn(maps) for metric, fn in MAP_METRICS.items()}


def _absolute(maps) -> np.ndarray:
    maps = np.asarray(maps, np.float64)
    return np.abs(maps.reshape(len(maps), -1))


@register_map_metric("sparseness", higher_is_better=True,
                     definition=("Sparseness: Gini index of |map|, 0 uniform, near 1 for one pixel "
                                 "(Chalasani et al. 2020)"), bounds=(0, 1))
def sparseness(maps) -> np.ndarray:
    """Gini index of |map| per map [N] (NaN for an all-zero map)."""
    a = np.sort(_absolute(maps), axis=1)
    n = a.shape[1]
    weights = 2 * np.arange(1, n + 1) - n - 1
    total = a.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (weights * a).sum(1) / (n * np.where(total > 0, total, 1)), np.nan)


@register_map_metric("complexity", higher_is_better=False,
                     definition=("Complexity: entropy of each pixel's share of |map|, 0 for one pixel, ln n "
                                 "uniform (Bhatt, Weller & Moura 2020)"), bounds=(0, None))
def complexity(maps) -> np.ndarray:
    """Entropy (nats) of the fractional contribution |a_i| / Σ|a| per map [N] (NaN for an
    all-zero map)."""
    a = _absolute(maps)
    total = a.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = a / np.where(total > 0, total, 1)
        terms = np.where(share > 0, share * np.log(np.where(share > 0, share, 1)), 0.0)
    return np.where(total[:, 0] > 0, -terms.sum(1), np.nan)
