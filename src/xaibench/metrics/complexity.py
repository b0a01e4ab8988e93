"""Convex-hull complexity (RC) and sensitivity (RS) of GAD maps (Mazini Rodrigues,
Boutry & Najman 2024; ``shared/sources/gad-gradient-artificial-distancing.md``, section 5,
equations 1 and 2, and section 6: "we filtered out 50% of the pixels, retaining only the
most important half").

* hull: the convex hull (scikit-image ``convex_hull_image``) of a map's most important
  pixels (:func:`gad_hulls`). The reading (the source gives two parts and no formula):
  the original map's important pixels are, of its top ``fraction`` (0.5: section 6, "we
  filtered out 50% of the pixels, retaining only the most important half"), those above
  ``threshold`` (0.1) of its largest value (Figure 4: "the pixels reaching more than 10%
  of the highest importance"), :func:`important_pixels`; the GAD map's are its top pixels
  by its own ranking (:func:`xaibench.explain.gad.gad_map`, a map of importance ranks,
  on which a share of the peak means nothing), as many as the original kept. The half
  alone is a fixed count whose hull on a noisy map spans 96-100 % of the image whatever
  the map (RC ≈ 1 held by construction); with the threshold a concentrated map keeps few
  pixels and a small hull, a diffuse one many; and with equal counts RC compares how
  spread out the same number of most important pixels lie in each map, so it can fall on
  either side of 1 (neither set contains the other);
* RC = area(hull_GAD) / area(hull_orig) (eq. 1): < 1 means GAD concentrated the
  explanation, >= 1 counts for the original (Table 1);
* RS = |N_a(I) − N_a(I ⊙ (1 − M))| / Σ M (eq. 2): output change of class a per pixel
  removed, for M = M_GAD and for the supplementary mask M_Orig − M_GAD
  (:func:`supplementary_mask`).
"""

from __future__ import annotations

import numpy as np
import torch

from xaibench.metrics.registry import declare_metric

# direction of each per-image score (reliability intervals): GAD's claim is a less complex
# region (RC < 1) that matters more to the model (higher RS) than its complement
declare_metric("RC", higher_is_better=False,
               definition=("Relative complexity: area of the GAD map's convex hull over the original "
                           "map's (Mazini Rodrigues, Boutry & Najman 2024, section 6); below 1 = a "
                           "simpler region"), bounds=(0, None))
declare_metric("RS_gad", higher_is_better=True,
               definition=("Relative sensitivity of the GAD hull: score drop per pixel when the "
                           "region is removed (Mazini Rodrigues et al. 2024)"))
declare_metric("RS_supplementary", higher_is_better=True,
               definition=("Relative sensitivity of the supplementary region (original hull minus GAD"
                           " hull) (Mazini Rodrigues et al. 2024)"))


def most_important_pixels(attribution: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean [H, W]: the largest values, at most ``round(fraction · H·W)`` pixels, only
    positive ones (no evidence is not importance). A group of equal values that straddles
    the cut is left out whole, so no pixel is chosen by its position: a map that is zero
    on most pixels keeps only its positive ones."""
    flat = attribution.ravel()
    count = int(round(fraction * flat.size))
    if count == 0:
        return np.zeros(attribution.shape, bool)
    if count >= flat.size:
        return attribution > 0
    ordered = np.sort(flat)[::-1]
    cut, next_value = ordered[count - 1], ordered[count]
    chosen = flat > cut if cut == next_value else flat >= cut
    return (chosen & (flat > 0)).reshape(attribution.shape)


def convex_hull_mask(pixels: np.ndarray) -> np.ndarray:
    """Filled convex hull of a boolean [H, W] mask (empty mask -> empty hull)."""
    from skimage.morphology import convex_hull_image  # lazy: ~0.5 s at import, which every stage paid
    if not pixels.any():
        return np.zeros_like(pixels, dtype=bool)
    return convex_hull_image(pixels)


def important_pixels(attribution: np.ndarray, fraction: float = 0.5, threshold: float = 0.1) -> np.ndarray:
    """Boolean [H, W]: the map's top ``fraction`` of pixels (:func:`most_important_pixels`)
    that also exceed ``threshold`` × its largest value (0: the top fraction alone)."""
    chosen = most_important_pixels(attribution, fraction)
    peak = float(attribution.max()) if attribution.size else 0.0
    return chosen & (attribution > threshold * peak) if threshold > 0 and peak > 0 else chosen


def hull_of_map(attribution: np.ndarray, fraction: float = 0.5, threshold: float = 0.1) -> np.ndarray:
    """Convex hull of the map's own important pixels (:func:`important_pixels`)."""
    return convex_hull_mask(important_pixels(attribution, fraction, threshold))


def gad_hulls(original: np.ndarray, gad: np.ndarray, fraction: float = 0.5,
              threshold: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(original hull, GAD hull) [H, W] bool: the hull of the original map's important
    pixels (:func:`important_pixels`) and the hull of as many of the GAD map's top pixels
    (:func:`most_important_pixels` at that count; a tie straddling the cut left out)."""
    chosen = important_pixels(original, fraction, threshold)
    return convex_hull_mask(chosen), convex_hull_mask(most_important_pixels(gad, chosen.sum() / gad.size))


def supplementary_mask(original_hull: np.ndarray, gad_hull: np.ndarray) -> np.ndarray:
    """M_Orig − M_GAD of section 5 as a binary mask: pixels inside the original hull and
    outside the GAD hull. Where the GAD hull leaves the original hull the difference is
    −1; those pixels are not occluded (clipped to 0), since the supplementary set is
    "found in the original explanation but absent in GAD's"."""
    return original_hull & ~gad_hull


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
