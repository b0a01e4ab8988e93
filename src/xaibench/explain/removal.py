"""The model calls of the removal metrics beyond the deletion and insertion curves: ROAD's
imputed removals, region perturbation over superpixels, and infidelity's noisy inputs.

Each function returns raw evidence (scores, dot products) for N images; the metrics in
:mod:`xaibench.metrics.faithfulness` read it. Every perturbed input goes through
:func:`streamed_target_scores`, which packs the inputs of consecutive images into batches of
``batch_size`` (what the deletion curves' engine does), so a metric costs its forward passes
plus the work of building its inputs (ROAD: one sparse solve per removal, the bulk of it).

Random draws (ROAD's noise, infidelity's perturbations) come from
``default_rng([seed, image_index, stream])``: the same for every method that explains an
image, so methods are compared on the same perturbations, and independent of chunking.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator

import numpy as np
import torch

from xaibench.explain.imputation import noisy_linear_imputations
from xaibench.explain.perturbation import saliency_ranks

ROAD_STREAM, INFIDELITY_STREAM = 0x20AD, 0x1F1D


@torch.no_grad()
def streamed_target_scores(model, inputs: Iterable[tuple[torch.Tensor, int]], batch_size: int,
                           score: str = "probability") -> list[np.ndarray]:
    """The target's softmax probability (``score="probability"``) or logit (``"logit"``) of
    each input: ``inputs`` yields, per image, its perturbed inputs [k, C, H, W] and its target;
    they are run ``batch_size`` at a time across image boundaries. Returns one float64 array
    [k] per image, in order."""
    pending, owners, sizes, out = [], [], [], []
    buffered = 0

    def flush():
        nonlocal pending, owners, buffered
        if not pending:
            return
        batch = torch.cat(pending).contiguous(memory_format=torch.channels_last)  # oneDNN's fastest layout
        targets = torch.cat(owners).to(batch.device)
        outputs = model(batch)
        outputs = outputs.softmax(-1) if score == "probability" else outputs
        probs = outputs[torch.arange(len(batch), device=batch.device), targets]
        out.append(probs.double().cpu().numpy())
        pending, owners, buffered = [], [], 0

    for images, target in inputs:
        sizes.append(len(images))
        part = images
        while len(part):                      # what does not fit the open batch starts the next
            taken = part[:batch_size - buffered]
            pending.append(taken)
            owners.append(torch.full((len(taken),), int(target), dtype=torch.long))
            buffered += len(taken)
            part = part[len(taken):]
            if buffered == batch_size:
                flush()
    flush()
    flat = np.concatenate(out) if out else np.zeros(0)
    return np.split(flat, np.cumsum(sizes)[:-1]) if sizes else []


def road_removals(saliency: np.ndarray, fractions) -> tuple[np.ndarray, np.ndarray]:
    """The removed pixels of ROAD's two orders, (MoRF [F, H, W], LeRF [F, H, W]) bool: at
    fraction f, the ``round(f·HW)`` most (MoRF) or least (LeRF) salient pixels, in the order
    of :func:`~xaibench.explain.perturbation.saliency_ranks` (stable on ties)."""
    h, w = saliency.shape
    ranks = saliency_ranks(saliency).reshape(h, w)
    counts = np.round(np.asarray(fractions, np.float64) * h * w).astype(np.int64)
    morf = ranks[None] < counts[:, None, None]
    lerf = ranks[None] >= (h * w - counts)[:, None, None]
    return morf, lerf


def road_curves(model, pixels: torch.Tensor, maps: np.ndarray, targets, fractions, noise: float, seed: int,
                image_indices: Iterable[int], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """ROAD (Rong et al. 2022): the target's probability after the MoRF and after the LeRF
    removal of each fraction, removed pixels noisily linearly imputed
    (:func:`~xaibench.explain.imputation.noisy_linear_imputation`): (MoRF [N, F], LeRF [N, F])."""
    fractions = list(fractions)
    n_fractions = len(fractions)
    if not n_fractions or not len(pixels):
        return np.zeros((len(pixels), n_fractions)), np.zeros((len(pixels), n_fractions))
    targets = torch.as_tensor(targets).long()

    def inputs(pool) -> Iterator[tuple[torch.Tensor, int]]:
        for n, index in zip(range(len(pixels)), image_indices):
            rng = np.random.default_rng([seed, int(index), ROAD_STREAM])
            morf, lerf = road_removals(maps[n], fractions)
            yield torch.stack(noisy_linear_imputations(pixels[n], (*morf, *lerf), noise, rng, pool)), int(targets[n])

    # the solves on the stage's torch thread count (the model's passes do not run meanwhile)
    with ThreadPoolExecutor(torch.get_num_threads()) as pool:
        scores = np.stack(streamed_target_scores(model, inputs(pool), batch_size))
    return scores[:, :n_fractions], scores[:, n_fractions:]


def segment_order(saliency: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Segment ids by mean saliency, highest first (stable on ties): [K]."""
    ids = np.asarray(segments).ravel()
    k = int(ids.max()) + 1
    totals = np.bincount(ids, weights=np.asarray(saliency, np.float64).ravel(), minlength=k)
    counts = np.bincount(ids, minlength=k)
    means = np.where(counts > 0, totals / np.maximum(counts, 1), -np.inf)
    order = np.argsort(-means, kind="stable")
    return order[counts[order] > 0]


def region_perturbation_curves(model, pixels: torch.Tensor, maps: np.ndarray, targets, segments: np.ndarray,
                               fill: torch.Tensor, batch_size: int) -> np.ndarray:
    """Region perturbation (Samek et al. 2017) over superpixels, as IROF (Rieger & Hansen
    2020) does it: the segments of ``segments`` [N, H, W] are replaced by ``fill`` [N, C, H, W]
    one after another, highest mean saliency first, and the target's probability is taken
    after each: [N, K_max + 1], column 0 the unperturbed image, NaN after an image's last
    segment (images may have fewer segments)."""
    n = len(pixels)
    targets = torch.as_tensor(targets).long()
    orders = [segment_order(maps[i], segments[i]) for i in range(n)]
    width = 1 + max((len(o) for o in orders), default=0)

    def inputs() -> Iterator[tuple[torch.Tensor, int]]:
        for i in range(n):
            seg = torch.as_tensor(np.asarray(segments[i]), device=pixels.device).long()
            position = torch.full((int(seg.max()) + 1,), len(orders[i]), dtype=torch.long, device=pixels.device)
            position[torch.as_tensor(orders[i], device=pixels.device)] = torch.arange(len(orders[i]),
                                                                                     device=pixels.device)
            step = position[seg]                                  # [H, W]: when each pixel is replaced (0-based)
            removed = step.unsqueeze(0) < torch.arange(len(orders[i]) + 1, device=pixels.device).view(-1, 1, 1)
            yield torch.where(removed.unsqueeze(1), fill[i].unsqueeze(0), pixels[i].unsqueeze(0)), int(targets[i])

    out = np.full((n, width), np.nan)
    for i, scores in enumerate(streamed_target_scores(model, inputs(), batch_size)):
        out[i, :len(scores)] = scores
    return out


def noise_perturbations(shape, runs: int, sigma: float, seed: int, index: int) -> torch.Tensor:
    """Infidelity's perturbations of one image [C, H, W]: [R, C, H, W], i.i.d. N(0, σ²) per
    pixel, the same in every channel (a map holds one value per pixel: the perturbation it
    can predict moves whole pixels, as every other metric here does)."""
    rng = np.random.default_rng([seed, int(index), INFIDELITY_STREAM])
    channels, h, w = shape
    noise = torch.from_numpy(rng.normal(0.0, sigma, (runs, 1, h, w)).astype(np.float32))
    return noise.expand(runs, channels, h, w).contiguous()


def infidelity_evidence(model, pixels: torch.Tensor, maps: np.ndarray, targets, runs: int, sigma: float, seed: int,
                        image_indices: Iterable[int], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The evidence of infidelity (Yeh et al. 2019): for R perturbations I ~ N(0, σ²) per
    pixel (:func:`noise_perturbations`), the map's prediction of their effect ``Iᵀa = Σ_{c,h,w} I_chw · a_hw`` (the
    map, one value per pixel, applies to every channel; :func:`infidelity_dots`) and the effect,
    ``f(x) − f(x − I)``, f the target's *logit* (the softmax probability of a confident model
    is 1.0 in float32 for most images: every drop would be 0; :func:`infidelity_drops`): ([N, R], [N, R])."""
    image_indices = list(image_indices)
    return (infidelity_dots(maps, pixels.shape[1:], runs, sigma, seed, image_indices),
            infidelity_drops(model, pixels, targets, runs, sigma, seed, image_indices, batch_size))


def infidelity_dots(maps: np.ndarray, shape, runs: int, sigma: float, seed: int,
                    image_indices: Iterable[int]) -> np.ndarray:
    """``Iᵀa`` of each map [N, H, W] and each of its image's R perturbations: [N, R]."""
    n = len(maps)
    if not runs or not n:
        return np.zeros((n, runs))
    return np.stack([(noise_perturbations(shape, runs, sigma, seed, index).double()
                      * torch.from_numpy(np.asarray(maps[i], np.float64))).sum((1, 2, 3)).numpy()
                     for i, index in zip(range(n), image_indices)])


@torch.no_grad()
def infidelity_drops(model, pixels: torch.Tensor, targets, runs: int, sigma: float, seed: int,
                     image_indices: Iterable[int], batch_size: int) -> np.ndarray:
    """``f(x) − f(x − I)`` (target logits) of each image and each of its R perturbations:
    [N, R]. No map enters it, so the methods of a study share it
    (:class:`xaibench.metrics.faithfulness.ModelEvidence`)."""
    n = len(pixels)
    if not runs or not n:
        return np.zeros((n, runs))
    targets = torch.as_tensor(targets).long()
    perturbations = [noise_perturbations(pixels.shape[1:], runs, sigma, seed, index)
                     for _, index in zip(range(n), image_indices)]
    full = streamed_target_scores(model, ((pixels[i:i + 1], int(targets[i])) for i in range(n)), batch_size, "logit")
    scores = streamed_target_scores(
        model, ((pixels[i].unsqueeze(0) - p.to(pixels.device, pixels.dtype), int(targets[i]))
                for i, p in enumerate(perturbations)), batch_size, "logit")
    return np.concatenate(full)[:, None] - np.stack(scores)
