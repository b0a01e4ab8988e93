"""Localisation against a ground-truth cue mask: does the map point at
the pixels that carry the label?

All functions take maps [N, H, W] (larger = more evidence for the target) and boolean
masks [N, H, W] of the same size, and return one value per image ([N]).

* Relevance mass accuracy (Arras, Osman & Samek 2022, "CLEVR-XAI: A benchmark dataset
  for the ground truth evaluation of neural network explanations", Information Fusion
  81, sec. 4.3): ``R_within / R_total``, the share of the map's positive relevance that
  falls inside the mask (only positive relevance counts, as in the paper). NaN when the
  map has no positive value.
* Relevance rank accuracy (ibid.): with ``K = |GT|``, the share of the K most relevant
  pixels that lie inside the mask, ``|P_top-K ∩ GT| / K``.
* Pointing game (Zhang et al. 2018, "Top-down neural attention by excitation backprop",
  IJCV 126): 1 when the map's maximum lies inside the mask, else 0 (tolerance 0 px: the
  twins' masks are exact, the paper's 15 px tolerance is for hand-drawn boxes on
  ImageNet-size images).
* Ties (neither paper discusses them): both scores are their expectation over a uniformly
  random order of tied pixels. Pointing game: the share of the tied maxima inside the mask.
  Rank accuracy: with ``S`` the pixels strictly above the K-th largest value ``t`` and ``T``
  those equal to it, ``(|S ∩ GT| + (K − |S|) · |T ∩ GT| / |T|) / K``. A piecewise-constant
  map (LIME's superpixels) is neither punished (first maximum in raster order: the top-left
  superpixel) nor rewarded (a hit if any tied maximum is inside: a constant map would score
  1); a constant map scores the chance level on all three.
* Chance level: the mask's area share ``|GT| / HW``, the expected value of all three for
  a map that knows nothing of the mask (uniform noise).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from xaibench.metrics.registry import declare_metric


def _flat(maps, masks):
    maps = np.asarray(maps, np.float64).reshape(len(maps), -1)
    masks = np.asarray(masks, bool).reshape(len(masks), -1)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} differ in size; resize the masks first")
    return maps, masks


def relevance_mass_accuracy(maps, masks) -> np.ndarray:
    """Share of positive relevance inside the mask (NaN where the map has none)."""
    maps, masks = _flat(maps, masks)
    positive = np.clip(maps, 0, None)
    total = positive.sum(1)
    within = (positive * masks).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, within / np.where(total > 0, total, 1), np.nan)


def relevance_rank_accuracy(maps, masks) -> np.ndarray:
    """Share of the |GT| most relevant pixels inside the mask, expected over the order of
    the pixels tied at the K-th value (NaN for an empty mask)."""
    maps, masks = _flat(maps, masks)
    out = np.full(len(maps), np.nan)
    for i, (values, mask) in enumerate(zip(maps, masks)):
        k = int(mask.sum())
        if k:
            kth = np.partition(values, len(values) - k)[len(values) - k]       # the K-th largest value
            above, tied = values > kth, values == kth
            out[i] = (mask[above].sum() + (k - above.sum()) * mask[tied].sum() / tied.sum()) / k
    return out


def pointing_game(maps, masks) -> np.ndarray:
    """1.0 where the map's maximum lies inside the mask, else 0.0; where several pixels
    share the maximum, the share of them inside the mask (the expected hit)."""
    maps, masks = _flat(maps, masks)
    tied = maps == maps.max(1, keepdims=True)
    return (tied & masks).sum(1) / tied.sum(1)


def chance_level(masks) -> np.ndarray:
    """The mask's area share per image: what a map ignorant of the mask scores on average."""
    masks = np.asarray(masks, bool)
    return masks.reshape(len(masks), -1).mean(1)


declare_metric("relevance_mass", higher_is_better=True,
               definition=("Relevance mass accuracy: share of the positive relevance that falls on "
                           "the cue mask (Arras, Osman & Samek 2022, CLEVR-XAI)"), bounds=(0, 1))
declare_metric("relevance_rank", higher_is_better=True,
               definition=("Relevance rank accuracy: share of the K most relevant pixels (K = mask "
                           "size) inside the cue mask (Arras, Osman & Samek 2022)"), bounds=(0, 1))
declare_metric("pointing_game", higher_is_better=True,
               definition=("Pointing game: share of images whose most relevant pixel lies on the cue "
                           "mask (Zhang et al. 2018)"), bounds=(0, 1))
declare_metric("cue_order", higher_is_better=True,
               definition=("Cue order: share of images on which the map gives more relevance to the cue whose "
                           "removal costs the model more (two cues of measured importance; chance 0.5; "
                           "xaibench, after FunnyBirds' part importances, Hesse et al. 2023)"), bounds=(0, 1))


def cue_order(maps, first_masks, second_masks, first_drops, second_drops, margin: float = 0.05) -> np.ndarray:
    """Per image: whether the map orders two cues as the model does. The model's order is
    measured: ``drop_c`` = p(target | image) − p(target | the image with cue c drawn plain);
    the map's order is its total relevance on each cue, ``R_c = Σ_{p ∈ c} map_p`` (a sum, as
    the drop is the whole cue's effect). 1 where ``R_1 − R_2`` has the sign of ``drop_1 −
    drop_2``, 0 where the opposite, 0.5 where ``R_1 = R_2``; NaN where the two drops lie
    within ``margin`` of each other (no order to recover) or a cue is absent (hidden).

    The graded ground truth of FunnyBirds (Hesse, Schaub-Meyer & Roth 2023, ICCV: parts
    whose importance is measured by removing them), on a twin with two cues."""
    flat, first = _flat(maps, first_masks)
    second = _flat(maps, second_masks)[1]
    maps = flat
    diff = np.asarray(first_drops, np.float64) - np.asarray(second_drops, np.float64)
    relevance = (maps * first).sum(1) - (maps * second).sum(1)
    out = np.where(np.sign(relevance) == np.sign(diff), 1.0, 0.0)
    out = np.where(relevance == 0, 0.5, out)
    undefined = (np.abs(diff) < margin) | ~first.any(1) | ~second.any(1)
    return np.where(undefined, np.nan, out)


LOCALISATION_METRICS = {"relevance_mass": relevance_mass_accuracy, "relevance_rank": relevance_rank_accuracy,
                        "pointing_game": pointing_game}


def resize_maps(maps, size: tuple[int, int]) -> np.ndarray:
    """Maps [N, h, w] -> [N, *size], bilinear: a map computed on a smaller input (GAD's
    48 px) is compared with the cue mask at the mask's own resolution, so a thin cue (a
    beak) is not lost to resizing the mask."""
    maps = np.asarray(maps, np.float32)
    if maps.shape[1:] == tuple(size):
        return maps
    return F.interpolate(torch.from_numpy(maps)[:, None], size=tuple(size), mode="bilinear",
                         align_corners=False)[:, 0].numpy()


def localisation_scores(maps, masks) -> dict[str, np.ndarray]:
    """{metric: [N]} for the three localisation metrics, plus ``chance`` [N]; maps of
    another size than the masks are resized to them (:func:`resize_maps`)."""
    masks = np.asarray(masks, bool)
    maps = resize_maps(maps, masks.shape[1:])
    return {**{name: fn(maps, masks) for name, fn in LOCALISATION_METRICS.items()}, "chance": chance_level(masks)}
