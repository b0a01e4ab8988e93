"""Metrics of the detection study (Dreyer 2021, tables 1-4) and the detector's mAP.

* entropy (bits) of a heatmap, H = −Σ p_i log₂ p_i with p_i = |R_i| / Σ_j |R_j|, over
  pixels or over SLIC superpixels (p_s ∝ Σ_{i∈s} |R_i|); low = concentrated;
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


def entropy_bits(weights: np.ndarray) -> float:
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


def superpixel_entropy_bits(attribution: np.ndarray, segments: np.ndarray) -> float:
    return entropy_bits(superpixel_sums(attribution, segments))


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


def relevance_in_box(attribution: np.ndarray, box) -> float:
    """``relevance_in_mask`` of the box (x1, y1, x2, y2; pixel edges, clipped to the image)."""
    h, w = attribution.shape
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    mask = np.zeros((h, w), bool)
    mask[y1:y2, x1:x2] = True
    return relevance_in_mask(attribution, mask)


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
    from pycocotools.coco import COCO
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
