"""A model-independent control: the image's edges.

An explanation method that scores no better than an edge detector on a metric is not
shown by that metric to explain the model (Adebayo et al. 2018, "Sanity checks for
saliency maps", NeurIPS: edge detectors resemble many saliency maps).
"""

from __future__ import annotations

import numpy as np

from xaibench.explain.registry import register_method


@register_method("edge")
def sobel_edges(model, pixels, targets):
    """Sobel gradient magnitude (scikit-image ``filters.sobel``: sqrt((G_x² + G_y²) / 2))
    of each image's luminance 0.299 R + 0.587 G + 0.114 B; it ignores ``model`` and
    ``targets``. pixels: [N, 3, H, W] in [0, 1] -> [N, H, W] float32."""
    from skimage.filters import sobel  # lazy: scikit-image

    weights = np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1)
    luminance = (pixels.detach().cpu().numpy() * weights).sum(1)
    return np.stack([sobel(image) for image in luminance]).astype(np.float32)
