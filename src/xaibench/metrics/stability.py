"""Stability of explanations under input noise, and top-k removal faithfulness.

Stability compares the explanation of an image with that of a noisy copy
``x' = clip(x + N(0, σ²))`` for the same class (SENN study, after Alvarez-Melis &
Jaakkola 2018's robustness analysis):

* LIME: Jaccard index ``|A ∩ B| / |A ∪ B|`` of the top-k superpixels taken as pixel sets.
  The study (``shared/sources/senn-cifar10.md``, 4.2 LIME "Stability": "computing the
  Jaccard similarity of the top 10 most important superpixels", Jaccard 0.16) re-runs
  LIME on each noisy image, which segments that image anew, so the superpixels differ and
  only pixel sets can be compared (:func:`top_segment_pixels`, :func:`mask_jaccard`). The
  variant that reuses the clean image's segmentation for the noisy copy compares
  superpixel ids (:func:`top_segments`);
* heatmaps (IG): SSIM (Wang et al. 2004) of the two maps, each scaled by its max |value|
  to [-1, 1] (data range 2);
* SENN: cosine similarity of the relevance vectors θ_c.
"""

from __future__ import annotations

import numpy as np
import torch

from xaibench.metrics.registry import declare_metric

# direction of the per-image removal score (reliability intervals): a larger confidence
# drop when the top pixels are removed = a more faithful ranking (the SENN study)
declare_metric("removal_drop", higher_is_better=True,
               definition=("Confidence drop when the map's top fraction of pixels is removed "
                           "(Rampazzo, SENN on CIFAR-10, faithfulness by removal); the suffix is the "
                           "fraction"), bounds=(-1, 1))


def jaccard(a: set, b: set) -> float:
    """|a ∩ b| / |a ∪ b|; 1.0 for two empty sets."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def top_segments(segment_weights: dict[int, float], k: int) -> set[int]:
    """The k segment ids of largest weight (ties broken by smaller id)."""
    ranked = sorted(segment_weights.items(), key=lambda item: (-item[1], item[0]))
    return {segment for segment, _ in ranked[:k]}


def top_segment_pixels(lime_map: np.ndarray, segments: np.ndarray, k: int) -> np.ndarray:
    """Boolean [H, W]: the pixels of the k superpixels of largest LIME weight."""
    return np.isin(segments, list(top_segments(segment_weights(lime_map, segments), k)))


def mask_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∩ b| / |a ∪ b| of two boolean masks; 1.0 for two empty masks."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def segment_weights(lime_map: np.ndarray, segments: np.ndarray) -> dict[int, float]:
    """Recover each superpixel's LIME weight from a painted map (constant per superpixel)."""
    return {int(s): float(lime_map[segments == s].mean()) for s in np.unique(segments)}


def heatmap_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two [H, W] maps after scaling each to [-1, 1] by its max |value|."""
    from skimage.metrics import structural_similarity  # lazy: ~0.5 s at import, which every stage paid
    def scaled(m):
        peak = np.abs(m).max()
        return m / peak if peak > 0 else m

    side = min(a.shape)
    window = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(scaled(a), scaled(b), data_range=2.0, win_size=window))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    denominator = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denominator) if denominator > 0 else float("nan")


def add_noise(pixels: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """``clip(x + N(0, σ²), 0, 1)`` with a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return (pixels + sigma * torch.randn(pixels.shape, generator=generator)).clamp(0, 1)


def removal_masks_pixels(attribution: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean [H, W]: the top ``fraction`` of pixels by attribution value (stable on
    ties). Callers that rank by magnitude pass ``abs(attribution)``."""
    flat = attribution.ravel()
    count = int(round(fraction * flat.size))
    mask = np.zeros(flat.size, bool)
    mask[np.argsort(-flat, kind="stable")[:count]] = True
    return mask.reshape(attribution.shape)


def removal_masks_segments(lime_map: np.ndarray, segments: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean [H, W]: the superpixels in the top ``fraction`` (rounded up) by LIME weight."""
    weights = segment_weights(lime_map, segments)
    count = int(np.ceil(fraction * len(weights)))
    return np.isin(segments, list(top_segments(weights, count)))
