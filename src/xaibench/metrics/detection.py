"""Metrics of the detection study (Dreyer 2021, tables 1-4) and the detector's mAP.

* entropy (the study's, section 4.3, eq. 4.1): e = −Σ_v p_v log₂ p_v over the set of
  relevance values of one heatmap, p_v = the share of its pixels whose relevance is v
  (:func:`value_entropy_bits`); on superpixels, each pixel takes its superpixel's mean
  relevance first. A map with 250 distinct equal-area values has log₂ 250 = 7.97 bits (the
  study's LIME: 7.81); it measures how many distinct levels a map has, not where its
  mass lies;
* mass entropy (not the study's, kept under its own name): H = −Σ_i p_i log₂ p_i with
  p_i = |R_i| / Σ_j |R_j| over pixels or superpixels (p_s ∝ Σ_{i∈s} |R_i|); low = the
  relevance mass is concentrated;
* pixel flipping (Bach et al. 2015): the most relevant pixels (or superpixels, ranked by
  their mean relevance) are set to gray first; the detector's score for the box is
  recorded at S+1 equally spaced fractions; AUC = trapezoid area over [0, 1] (lower =
  the map found what the score depends on); the flipping itself is
  :func:`xaibench.metrics.faithfulness.perturbation_curve`;
* relevance in the box: Σ_{i∈box} max(R_i, 0) / Σ_i max(R_i, 0);
* mAP: pycocotools ``COCOeval`` (bbox), AP@[.5:.95] and AP@.5.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import numpy as np
import torch

from xaibench.metrics.faithfulness import area_under_curve, perturbation_curve
from xaibench.metrics.registry import declare_metric

# direction of each per-box score (the reliability stage's bootstrap and controls): the
# study reads lower entropy as a more focused map, lower flipping AUC as a more faithful one
declare_metric("entropy_pixels", higher_is_better=False,
               definition=("Entropy (bits) of the distribution of the map's relevance values over "
                           "pixels (Dreyer 2021, eq. 4.1): lower = a more concentrated explanation"), bounds=(0, None))
declare_metric("entropy_superpixels", higher_is_better=False,
               definition=("Entropy (bits) of the relevance values of the map averaged over SLIC "
                           "superpixels (Dreyer 2021)"), bounds=(0, None))
declare_metric("mass_entropy_pixels", higher_is_better=False,
               definition="Entropy (bits) of |relevance| normalised to a distribution over pixels", bounds=(0, None))
declare_metric("mass_entropy_superpixels", higher_is_better=False,
               definition="Entropy (bits) of |relevance| summed per superpixel, normalised", bounds=(0, None))
declare_metric("relevance_in_box", higher_is_better=True,
               definition="Share of the positive relevance inside the explained box (Dreyer 2021)", bounds=(0, 1))
declare_metric("flipping_auc_pixels", higher_is_better=False,
               definition=("Pixel-flipping AUC: area under the box score as pixels are flipped to "
                           "gray, most relevant first (Dreyer 2021; Samek et al. 2017)"), bounds=(0, 1))
declare_metric("flipping_auc_superpixels", higher_is_better=False,
               definition="Pixel-flipping AUC with whole superpixels flipped (Dreyer 2021)", bounds=(0, 1))


def value_entropy_bits(attribution: np.ndarray) -> float:
    """The study's entropy e = −Σ_v p_v log₂ p_v (ssd-coco-lrp-deeplift-lime-shap.md,
    section 4.3, eq. 4.1: "p_i of a pixel to have relevance value r_i ∈ R, the set of all
    relevance values of an explanation"): p_v = (pixels with value v) / (all pixels).
    Values compare exactly as float32, so a constant map has 0 bits and a map of N
    distinct values log₂ N."""
    _, counts = np.unique(np.asarray(attribution, np.float32).ravel(), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def superpixel_value_entropy_bits(attribution: np.ndarray, segments: np.ndarray) -> float:
    """:func:`value_entropy_bits` of the map grouped into superpixels (each pixel takes its
    superpixel's mean), as the study does for LRP and DeepLIFT (Table 1, "superpixels")."""
    return value_entropy_bits(superpixel_mean_map(attribution, segments))


def mass_entropy_bits(weights: np.ndarray) -> float:
    """Shannon entropy (bits) of |weights| normalised to sum 1; NaN for an all-zero map."""
    p = np.abs(np.asarray(weights, np.float64)).ravel()
    total = p.sum()
    if total == 0:
        return float("nan")
    p = p[p > 0] / total
    return float(-(p * np.log2(p)).sum())


def superpixel_sums(attribution: np.ndarray, segments: np.ndarray, absolute: bool = True) -> np.ndarray:
    values = np.abs(attribution) if absolute else attribution
    return np.bincount(segments.ravel(), weights=values.ravel().astype(np.float64))


def superpixel_mass_entropy_bits(attribution: np.ndarray, segments: np.ndarray) -> float:
    return mass_entropy_bits(superpixel_sums(attribution, segments))


def superpixel_mean_map(attribution: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Every pixel takes its superpixel's mean relevance (flipping then goes superpixel-wise)."""
    sums = superpixel_sums(attribution, segments, absolute=False)
    counts = np.bincount(segments.ravel())
    return (sums / np.maximum(counts, 1))[segments].astype(np.float32)


def relevance_in_mask(attribution: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the positive relevance on the mask's pixels,
    sum(max(R, 0) * M) / sum(max(R, 0)) (the "relevance mass" of Arras et al. 2022,
    CLEVR-XAI); NaN if there is no positive relevance."""
    positive = np.clip(attribution, 0, None)
    total = positive.sum()
    if total == 0:
        return float("nan")
    return float(positive[mask.astype(bool)].sum() / total)


def box_mask(box, h: int, w: int) -> np.ndarray:
    """Boolean [h, w] of the box (x1, y1, x2, y2; pixel edges, clipped to the image)."""
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    mask = np.zeros((h, w), bool)
    mask[y1:y2, x1:x2] = True
    return mask


def relevance_in_box(attribution: np.ndarray, box) -> float:
    """``relevance_in_mask`` of the box (:func:`box_mask`)."""
    return relevance_in_mask(attribution, box_mask(box, *attribution.shape))


def flipping_curve(score_model, image: torch.Tensor, attribution: np.ndarray, label: int, fill: torch.Tensor,
                   steps: int, batch_size: int = 128) -> np.ndarray:
    """Scores [S+1] as the most relevant pixels are set to ``fill`` [3] (gray) first.
    ``score_model``: [0, 1] pixels -> logits whose softmax column ``label`` is the score."""
    end = fill.view(3, 1, 1).expand_as(image)
    scores, _ = perturbation_curve(score_model, image, attribution, label, start=image, end=end, steps=steps,
                                   batch_size=batch_size)
    return scores


def flipping_auc(curves: np.ndarray) -> np.ndarray:
    return area_under_curve(np.atleast_2d(curves))


def coco_map(detections: list[dict], boxes: np.ndarray, box_labels: np.ndarray, box_image: np.ndarray,
             n_images: int, category_ids) -> dict:
    """AP@[.5:.95] and AP@.5 (pycocotools) of detections (per image: boxes xyxy, scores,
    labels) against ground truth given as flat arrays (xyxy boxes, labels, image row)."""
    from pycocotools.coco import COCO  # lazy: pycocotools
    from pycocotools.cocoeval import COCOeval

    def xywh(b):
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    truth = {"images": [{"id": i} for i in range(n_images)],
             "categories": [{"id": int(c)} for c in category_ids],
             "annotations": [{"id": k + 1, "image_id": int(i), "category_id": int(c), "bbox": xywh(b),
                              "area": float((b[2] - b[0]) * (b[3] - b[1])), "iscrowd": 0}
                             for k, (b, c, i) in enumerate(zip(boxes, box_labels, box_image))]}
    results = [{"image_id": i, "category_id": int(c), "bbox": xywh(b), "score": float(s)}
               for i, d in enumerate(detections) for b, s, c in zip(d["boxes"], d["scores"], d["labels"])]
    if not results:
        return {"map": 0.0, "map_50": 0.0}
    with redirect_stdout(io.StringIO()):
        ground = COCO()
        ground.dataset = truth
        ground.createIndex()
        evaluation = COCOeval(ground, ground.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"map": round(float(evaluation.stats[0]), 6), "map_50": round(float(evaluation.stats[1]), 6)}
