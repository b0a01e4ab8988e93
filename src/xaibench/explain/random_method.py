"""The random baseline every metric is compared against."""

from __future__ import annotations

import numpy as np

from xaibench.explain.registry import register_method


@register_method("random")
def random_uniform(model, pixels, targets, seed=0, image_indices=None):
    """Uniform noise in [0, 1) per pixel, independent of the model; seeded per image
    (``seed`` and the image's index), so a map does not depend on batching."""
    n, _, h, w = pixels.shape
    indices = range(n) if image_indices is None else image_indices
    return np.stack([np.random.default_rng([seed, int(i)]).random((h, w), dtype=np.float32) for i in indices])
