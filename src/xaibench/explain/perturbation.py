"""One batched engine for feature-mask perturbations: LIME, KernelSHAP and perturbation
curves cost what their model evaluations cost.

Given an image [3, H, W], a segment map [H, W] (K segments, ids 0..K-1), a fill image
[3, H, W] (a constant, the mean colour, a blurred copy: :func:`fill_image`) and binary
masks [M, K] (1 = the segment keeps the image), :func:`perturbed_batch` builds the
perturbed images with one gather and one ``where`` (no per-sample Python loop) and
:func:`evaluate_masks` streams them through the model in batches of ``batch_size`` on the
model's device. On top:

* :func:`lime` — lime's sampling (uniform 0/1 per segment, first sample all ones), its
  kernel sqrt(exp(−d²/w²)) on the cosine distance to the all-ones vector (w = 0.25), and
  its surrogate, ridge (α = 1) with intercept, solved in closed form (weighted normal
  equations on centred data: what sklearn's ``Ridge`` with ``sample_weight`` computes);
* :func:`kernel_shap` — KernelSHAP (Lundberg & Lee 2017): coalitions with the Shapley
  kernel π(s) = (K−1) / (C(K, s)·s·(K−s)); all 2^K of them when that fits in
  ``num_samples`` (then the values are the exact Shapley values), else sizes drawn ∝ the
  kernel mass of each size; efficiency (Σφ = f(all) − f(none)) enforced exactly by
  eliminating one coefficient;
* :func:`shapley_sampling` — Shapley value sampling (Štrumbelj & Kononenko 2014): the
  segments added one by one to the fill along random permutations, each segment's score
  differences averaged; K·P + 1 model evaluations for P permutations of K segments;
* :func:`deletion_insertion_curves` — every step of every image through the same batching.

LIME and KernelSHAP return an :class:`Estimate` (values, samples used, stopped early).
They sample ``num_samples`` at once (fixed, the studies' way) or adaptively
(:func:`sample_until_stable`): in blocks, refitted after each, until the top-k segments
are stable under bootstrap refits (:class:`StoppingParams`), ``num_samples`` at most; and
optionally in antithetic pairs (each coalition followed by its complement: Covert & Lee
2021, "Improving KernelSHAP: practical Shapley value estimation via linear regression",
AISTATS, section 4.2). The masks are drawn before any is evaluated, so adaptive sampling
evaluates a prefix of what fixed sampling of the same budget and seed evaluates.

The library adapters (``lime``, captum, ``shap``) remain as reference methods; tests
check that the engine agrees with them (tests/explain/test_perturbation.py).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from xaibench.schema import StoppingParams

ModelFn = Callable[[torch.Tensor], torch.Tensor]  # pixels [B, 3, H, W] -> scores [B] (or [B, C])


def step_boundaries(n_pixels: int, steps: int) -> np.ndarray:
    """Rank boundaries [S+1]: step k covers ranks [b[k-1], b[k])."""
    return np.round(np.linspace(0, n_pixels, steps + 1)).astype(np.int64)


def saliency_ranks(saliency: np.ndarray) -> np.ndarray:
    """Rank of every pixel (0 = most salient), stable on ties: [H*W] int64."""
    order = np.argsort(-saliency.ravel(), kind="stable")
    ranks = np.empty_like(order)
    ranks[order] = np.arange(order.size)
    return ranks


# What hidden or deleted pixels become: the one vocabulary of fills (params, engine, metrics).
FILLS = {
    "mean": "the training mean colour (0 after the input normalisation; RISE's deletion)",
    "black": "pixel value 0",
    "blur": "the image under a Gaussian blur (gaussian_blur)",
    "image_mean": "the image's own mean colour",
    "segment_mean": "each segment's own mean colour (lime_image's hide_color=None)",
    "constant": "a given value (a scalar or a colour)",
}


def fill_colour(kind: str, training_mean: torch.Tensor) -> torch.Tensor:
    """The constant colour [3] of fill ``mean`` (``training_mean``) or ``black``."""
    if kind == "mean":
        return torch.as_tensor(training_mean).flatten()
    if kind == "black":
        return torch.zeros(3)
    raise ValueError(f"fill {kind!r} is not a constant colour: mean | black")


def fill_image(image: torch.Tensor, kind: str, value=None, sigma: float = 5.0, segments=None,
               kernel_size: int | None = None) -> torch.Tensor:
    """The replacement of ``image`` [3, H, W] under fill ``kind`` (:data:`FILLS`): ``mean``
    and ``constant`` take the colour as ``value`` (a scalar or [3]), ``blur`` a Gaussian of
    σ = ``sigma`` (``kernel_size``: :func:`gaussian_blur`), ``segment_mean`` the
    ``segments`` [H, W]: [3, H, W]."""
    if kind == "segment_mean":
        index = torch.as_tensor(segments, device=image.device).long().flatten()
        k = int(index.max()) + 1
        sums = torch.zeros(image.shape[0], k, dtype=image.dtype, device=image.device).index_add_(
            1, index, image.flatten(1))
        counts = torch.bincount(index, minlength=k).clamp_min(1).to(image.dtype)
        return (sums / counts)[:, index].view_as(image)
    if kind in ("constant", "mean"):
        if value is None:
            raise ValueError(f"fill {kind!r} needs its colour (value=)")
        return torch.as_tensor(value, dtype=image.dtype, device=image.device).view(-1, 1, 1).expand_as(image).clone()
    if kind == "black":
        return torch.zeros_like(image)
    if kind == "image_mean":
        return image.mean((1, 2), keepdim=True).expand_as(image).clone()
    if kind == "blur":
        return gaussian_blur(image.unsqueeze(0), sigma, kernel_size)[0]
    raise ValueError(f"unknown fill {kind!r}: {' | '.join(FILLS)}")


def gaussian_blur(pixels: torch.Tensor, sigma: float, kernel_size: int | None = None) -> torch.Tensor:
    """Gaussian blur of [N, 3, H, W], σ in pixels, reflect padding: the one blur of xaibench.
    The kernel is ``kernel_size`` (RISE's insertion canvas: 11) or 2·⌈3σ⌉+1 (±3σ), capped
    to what reflect padding allows on a small image (an odd size under the side's length
    for the 3σ kernel, under twice it for a given one)."""
    side = min(pixels.shape[-2:])
    if kernel_size is None:
        size = min(2 * math.ceil(3 * sigma) + 1, 2 * (side // 2) - 1)
    else:
        size = min(kernel_size, 2 * side - 1)
    from torchvision.transforms.v2 import functional as TF  # lazy

    return TF.gaussian_blur(pixels, kernel_size=[size, size], sigma=[sigma, sigma])


def perturbed_batch(image: torch.Tensor, segments: torch.Tensor, fill: torch.Tensor,
                    masks: torch.Tensor) -> torch.Tensor:
    """[M, 3, H, W]: pixel (y, x) of image m keeps ``image`` where masks[m, segments[y, x]]."""
    keep = masks.to(torch.bool)[:, segments]  # [M, H, W], one gather
    return torch.where(keep.unsqueeze(1), image.unsqueeze(0), fill.unsqueeze(0))


@torch.no_grad()
def evaluate_masks(model_fn: ModelFn, image: torch.Tensor, segments, fill: torch.Tensor, masks,
                   batch_size: int) -> torch.Tensor:
    """Model outputs for every mask, built and run ``batch_size`` at a time on the image's device."""
    device = image.device
    segments = torch.as_tensor(segments, device=device).long()
    masks = torch.as_tensor(masks, device=device)
    return torch.cat([model_fn(perturbed_batch(image, segments, fill, chunk)) for chunk in masks.split(batch_size)])


def weighted_ridge(x: np.ndarray, y: np.ndarray, weights: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """argmin_β Σ_i w_i (y_i − b − x_i·β)² + α‖β‖² (intercept b free): the slopes β.

    Centring x and y by their weighted means removes b; then (XᵀWX + αI)β = XᵀWy.
    ``weights`` [N] gives β [K] (or [K, L] for y [N, L]); weights [B, N] solve B such
    problems at once (bootstrap refits): [B, K] (or [B, K, L])."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    w = np.asarray(weights, np.float64)
    if w.ndim == 2:
        total = w.sum(1)
        xc = x[None] - ((w @ x) / total[:, None])[:, None, :]                  # [B, N, K]
        yc = y[None] - (np.tensordot(w, y, 1) / total.reshape(-1, *[1] * (y.ndim - 1)))[:, None]
        xw = xc * w[:, :, None]
        gram = xw.transpose(0, 2, 1) @ xc + alpha * np.eye(x.shape[1])
        rhs = xw.transpose(0, 2, 1) @ (yc if y.ndim > 1 else yc[..., None])
        beta = np.linalg.solve(gram, rhs)
        return beta if y.ndim > 1 else beta[..., 0]
    x_mean = (w @ x) / w.sum()
    y_mean = (w @ y) / w.sum()
    xc, yc = x - x_mean, y - y_mean
    xw = xc * w[:, None]
    return np.linalg.solve(xw.T @ xc + alpha * np.eye(x.shape[1]), xw.T @ yc)


class Estimate(NamedTuple):
    """A sampled explanation: the values ([K], or [K, L] for L outputs), the model
    evaluations (forward passes) it used, and whether the stopping rule ended it before
    its budget."""

    values: np.ndarray
    samples: int
    stopped_early: bool


def top_k_sets(values: np.ndarray, k: int) -> np.ndarray:
    """The indices of the k largest values per output, sorted: [k] for [K], [L, k] for [K, L]
    (ties broken by index, stable)."""
    values = np.asarray(values)
    k = min(k, values.shape[0])
    order = np.argsort(-values, axis=0, kind="stable")[:k]
    return np.sort(order, axis=0).T


def sample_until_stable(evaluate: Callable[[np.ndarray], np.ndarray], masks: np.ndarray,
                        fit: Callable[[int, np.ndarray | None], np.ndarray], rule: StoppingParams | None,
                        lead: int = 0, group: int = 1, seed: int = 0) -> Estimate:
    """Evaluate ``masks`` [N, K] in order and fit them, all at once (``rule`` None: fixed
    sampling) or in blocks of ``rule.batch_samples`` until the rule holds.

    ``evaluate(masks) -> scores`` runs the model; ``fit(n, multiplicity)`` fits the first
    ``n`` rows: each row once (multiplicity None) or, for the B bootstrap refits at once,
    each sampled row weighted by its count in each resample (multiplicity [B, n − lead]).
    The first ``lead`` rows (KernelSHAP's two end coalitions) are always evaluated and
    never resampled; the sampled rows are resampled in consecutive groups of ``group``
    (2: antithetic pairs). Bootstrap draws come from their own generator (``seed``), so the
    masks, and so fixed sampling, do not depend on the rule."""
    if rule is None:
        evaluate(masks)
        return Estimate(fit(len(masks), None), len(masks), False)
    rng = np.random.default_rng([seed, 0x5EED])
    step = rule.batch_samples + (rule.batch_samples % group)        # whole pairs per block
    n = 0
    while True:
        n = min(len(masks), n + step)                                 # blocks of the evaluation order
        evaluate(masks[:n])
        sampled = n - lead
        if (n < rule.min_samples or sampled < 2 * group) and n < len(masks):
            continue
        values = fit(n, None)
        if n == len(masks):
            return Estimate(values, n, False)
        reference = top_k_sets(values, rule.top_k)
        group_of = np.arange(sampled) // group
        n_groups = int(group_of[-1]) + 1
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=rule.n_bootstrap)
        refits = fit(n, counts[:, group_of].astype(np.float64))       # [B, K(, L)]
        same = sum(np.array_equal(top_k_sets(refit, rule.top_k), reference) for refit in refits)
        if same >= rule.agreement * rule.n_bootstrap:
            return Estimate(values, n, True)


class _Scores:
    """Model outputs of the masks evaluated so far, extended block by block (each mask once)."""

    def __init__(self, model_fn, image, segments, fill, batch_size):
        self.args = (model_fn, image, segments, fill)
        self.batch_size = batch_size
        self.values = np.zeros((0,))

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        done = len(self.values)
        if len(masks) > done:
            new = evaluate_masks(*self.args, torch.from_numpy(np.ascontiguousarray(masks[done:])), self.batch_size)
            new = new.double().cpu().numpy()
            self.values = new if done == 0 else np.concatenate([self.values, new])
        return self.values


def antithetic(masks: np.ndarray) -> np.ndarray:
    """Each mask followed by its complement (1 − z): [2N, K] from [N, K]."""
    return np.stack([masks, 1 - masks], 1).reshape(-1, masks.shape[1])


def lime_masks(num_samples: int, n_segments: int, rng: np.random.Generator, paired: bool = False) -> np.ndarray:
    """lime_image's samples: uniform 0/1 per segment, the first sample all ones: [N, K].
    ``paired``: half as many draws, each followed by its complement (the complement of a
    uniform draw is uniform, so every row keeps lime's distribution), truncated to N."""
    if paired:
        masks = antithetic(rng.integers(0, 2, ((num_samples + 1) // 2, n_segments)).astype(np.uint8))[:num_samples]
        masks[0], masks[1:2] = 1, 0
        return masks
    masks = rng.integers(0, 2, (num_samples, n_segments)).astype(np.uint8)
    masks[0] = 1
    return masks


def lime_kernel(masks: np.ndarray, kernel_width: float = 0.25) -> np.ndarray:
    """lime's weights: sqrt(exp(−d²/w²)), d = cosine distance of each mask to all ones."""
    m = masks.astype(np.float64)
    norms = np.sqrt(m.sum(1))
    cosine = np.divide(m.sum(1), norms * np.sqrt(m.shape[1]), out=np.zeros(len(m)), where=norms > 0)
    distance = 1.0 - cosine
    return np.sqrt(np.exp(-(distance ** 2) / kernel_width ** 2))


def lime(model_fn: ModelFn, image: torch.Tensor, segments, fill: torch.Tensor, num_samples: int, batch_size: int,
         seed: int = 0, kernel_width: float = 0.25, alpha: float = 1.0, paired: bool = False,
         stopping: StoppingParams | None = None) -> Estimate:
    """LIME segment weights for the score ``model_fn`` returns: [K] for scores [B], or
    [K, L] for L scores per image [B, L] (one sampling, one surrogate per output, as lime
    does for several labels). ``num_samples``: the count (fixed sampling, ``stopping``
    None) or the most (adaptive: :func:`sample_until_stable`). ``paired``: antithetic
    samples (:func:`lime_masks`): every row keeps lime's distribution, so the surrogate's
    weighted moments, and so its limit, are lime's."""
    segments = np.asarray(segments)
    k = int(segments.max()) + 1
    masks = lime_masks(num_samples, k, np.random.default_rng(seed), paired)
    kernel = lime_kernel(masks, kernel_width)
    scores = _Scores(model_fn, image, segments, fill, batch_size)

    def fit(n, multiplicity):
        weights = kernel[:n] if multiplicity is None else kernel[:n] * multiplicity     # [n] or [B, n]
        return weighted_ridge(masks[:n], scores.values[:n], weights, alpha)

    return sample_until_stable(scores, masks, fit, stopping, group=2 if paired else 1, seed=seed)


def shapley_kernel(size: np.ndarray, k: int) -> np.ndarray:
    """π(s) = (K−1) / (C(K, s)·s·(K−s)) for 0 < s < K."""
    size = np.asarray(size)
    return (k - 1) / (np.array([math.comb(k, int(s)) for s in size], np.float64) * size * (k - size))


def kernel_shap_masks(num_samples: int, k: int, rng: np.random.Generator,
                      paired: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(coalitions [N, K] with 0 < size < K, regression weights [N]).

    All 2^K − 2 proper coalitions with their kernel weights when they fit in
    ``num_samples``; otherwise sizes drawn ∝ the kernel mass of each size (K−1)/(s(K−s)),
    members uniform, equal weights (the sampling already follows the kernel). ``paired``:
    half as many draws, each followed by its complement (Covert & Lee 2021, "Improving
    KernelSHAP", paired sampling: the kernel is symmetric in s ↔ K − s, so the complement
    has the same distribution), truncated to N."""
    if 2 ** k - 2 <= num_samples:
        codes = np.arange(1, 2 ** k - 1)
        masks = ((codes[:, None] >> np.arange(k)) & 1).astype(np.uint8)
        return masks, shapley_kernel(masks.sum(1), k)
    draws = (num_samples + 1) // 2 if paired else num_samples
    sizes = np.arange(1, k)
    mass = (k - 1) / (sizes * (k - sizes))
    drawn = rng.choice(sizes, size=draws, p=mass / mass.sum())
    order = np.argsort(rng.random((draws, k)), axis=1)
    masks = (order < drawn[:, None]).astype(np.uint8)
    if paired:
        masks = antithetic(masks)[:num_samples]
    return masks, np.ones(len(masks))


def kernel_shap(model_fn: ModelFn, image: torch.Tensor, segments, fill: torch.Tensor, num_samples: int,
                batch_size: int, seed: int = 0, paired: bool = False, stopping: StoppingParams | None = None) -> Estimate:
    """KernelSHAP values [K] (Σφ = f(all kept) − f(all filled) exactly); ``num_samples``
    model evaluations in all (the most, when adaptive), the two end coalitions included.
    ``paired``: antithetic coalitions (:func:`kernel_shap_masks`). When all coalitions fit
    the budget the values are exact and sampling never stops early."""
    segments = np.asarray(segments)
    k = int(segments.max()) + 1
    coalitions, weights = kernel_shap_masks(max(1, num_samples - 2), k, np.random.default_rng(seed), paired)
    if 2 ** k - 2 <= max(1, num_samples - 2):
        stopping = None                                               # enumerated: exact, nothing to stop
    ends = np.stack([np.ones(k, np.uint8), np.zeros(k, np.uint8)])
    masks = np.concatenate([ends, coalitions])
    scores = _Scores(model_fn, image, segments, fill, batch_size)
    z = coalitions.astype(np.float64)
    x = z[:, :-1] - z[:, -1:]

    def fit(n, multiplicity):
        # φ_K = total − Σ_{j<K} φ_j:  y − z_K·total = Σ_{j<K} (z_j − z_K) φ_j
        full, empty = scores.values[0], scores.values[1]
        total = full - empty
        m = n - 2
        y = scores.values[2:n] - empty
        target = y - np.multiply.outer(z[:m, -1], total)
        if multiplicity is None:
            xw = x[:m] * weights[:m, None]
            phi = np.linalg.lstsq(xw.T @ x[:m], xw.T @ target, rcond=None)[0]
            return np.concatenate([phi, (total - phi.sum(0))[None]])
        xw = x[None, :m] * (weights[:m] * multiplicity)[:, :, None]                     # [B, m, K−1]
        rhs = xw.transpose(0, 2, 1) @ (target if target.ndim > 1 else target[:, None])
        gram = xw.transpose(0, 2, 1) @ x[:m]
        # normal equations, batched; a jitter of 1e-9 of the mean diagonal keeps a resample
        # that lost a segment's variation solvable (np.linalg.pinv took 0.3 ms per refit)
        jitter = 1e-9 * np.trace(gram, axis1=1, axis2=2)[:, None, None] / gram.shape[1] * np.eye(gram.shape[1])
        phi = np.linalg.solve(gram + jitter, rhs)
        phi = np.concatenate([phi, (total - phi.sum(1))[:, None]], 1)
        return phi if target.ndim > 1 else phi[..., 0]

    return sample_until_stable(scores, masks, fit, stopping, lead=2, group=2 if paired else 1, seed=seed)


def permutation_masks(permutations: np.ndarray) -> np.ndarray:
    """[P·K, K] coalitions: for each permutation π [K] of the segments, the masks with the
    first 1, 2, ..., K segments of π kept (the empty coalition is shared, not repeated)."""
    n_perm, k = permutations.shape
    position = np.argsort(permutations, axis=1)                       # position[p, i]: step of segment i
    steps = np.arange(1, k + 1)
    return (position[:, None, :] < steps[None, :, None]).reshape(n_perm * k, k).astype(np.uint8)


def shapley_sampling(model_fn: ModelFn, image: torch.Tensor, segments, fill: torch.Tensor, n_permutations: int,
                     batch_size: int, seed: int = 0) -> Estimate:
    """Shapley values [K] by permutation sampling: for each of ``n_permutations`` random
    orders π (seeded), segments are added one by one to the all-fill image and segment
    π_j gets f(first j of π) − f(first j − 1 of π); the values are the means over the
    permutations. Every permutation sums to f(all kept) − f(all filled), so the values
    do too (efficiency). What captum's ``ShapleyValueSampling`` computes, K·P + 1 model
    evaluations, here in batches of ``batch_size`` across permutations."""
    segments = np.asarray(segments)
    k = int(segments.max()) + 1
    rng = np.random.default_rng(seed)
    permutations = np.stack([rng.permutation(k) for _ in range(n_permutations)])
    masks = np.concatenate([np.zeros((1, k), np.uint8), permutation_masks(permutations)])
    scores = evaluate_masks(model_fn, image, segments, fill, torch.from_numpy(masks), batch_size)
    scores = scores.double().cpu().numpy()
    path = np.concatenate([np.full((n_permutations, 1), scores[0]), scores[1:].reshape(n_permutations, k)], 1)
    gains = np.diff(path, axis=1)                                     # [P, K]: gain of the j-th added segment
    values = np.zeros(k)
    np.add.at(values, permutations.ravel(), gains.ravel())
    return Estimate(values / n_permutations, len(masks), False)


@torch.no_grad()
def deletion_insertion_curves(model: ModelFn, pixels: torch.Tensor, maps: np.ndarray, targets, starts: torch.Tensor,
                              ends: torch.Tensor, steps: int, batch_size: int, desc: str | None = None) -> np.ndarray:
    """Softmax probability of each image's target [N, S+1] as its pixels go from
    ``starts`` to ``ends`` [N, 3, H, W] in map order (most important first; stable on
    ties), in S equal steps. ``model``: pixels -> logits [B, C]. All N·(S+1) inputs are
    built and run ``batch_size`` at a time, across image boundaries. Deletion: starts =
    images, ends = fill; insertion: starts = canvas, ends = images. Same ranking and step
    boundaries as :func:`xaibench.metrics.faithfulness.perturbation_curve`. ``desc``: a
    progress bar over the batches (shown on a terminal)."""

    n, _, h, w = pixels.shape
    device = pixels.device
    ranks = torch.from_numpy(np.stack([saliency_ranks(m) for m in maps])).view(n, 1, h, w).to(device)
    bounds = torch.from_numpy(step_boundaries(h * w, steps)).to(device)
    targets = torch.as_tensor(targets, device=device).long()
    per_image, total = steps + 1, n * (steps + 1)
    out = []
    for first in tqdm(range(0, total, batch_size), desc=desc, leave=False, disable=None if desc else True):
        last = min(first + batch_size, total)
        batch = torch.empty((last - first, *pixels.shape[1:]), dtype=pixels.dtype, device=device,
                            memory_format=torch.channels_last)  # the layout oneDNN runs fastest
        rows, offset = [], 0
        for image in range(first // per_image, (last - 1) // per_image + 1):  # a loop over images, not samples
            lo, hi = max(first, image * per_image) - image * per_image, min(last, (image + 1) * per_image) - image * per_image
            changed = ranks[image] < bounds[lo:hi].view(-1, 1, 1, 1)
            torch.where(changed, ends[image], starts[image], out=batch[offset:offset + hi - lo])
            rows.append(torch.full((hi - lo,), image, device=device))
            offset += hi - lo
        rows = torch.cat(rows)
        probs = model(batch).softmax(-1)
        out.append(probs[torch.arange(len(rows), device=device), targets[rows]])
    return torch.cat(out).view(n, per_image).double().cpu().numpy()


def random_subsets(n_pixels: int, runs: int, size: int, rng) -> np.ndarray:
    """[runs, size] flat pixel indices: ``runs`` subsets of ``size`` distinct pixels, each
    drawn by ``rng.choice(n_pixels, size, replace=False)`` (a numpy Generator, or the
    ``np.random`` module, as Quantus draws them)."""
    if runs and not 1 <= size <= n_pixels:
        raise ValueError(f"a subset of {size} pixels does not fit in an image of {n_pixels}; give a subset_size "
                         f"from 1 to {n_pixels}")
    return np.stack([rng.choice(n_pixels, size, replace=False) for _ in range(runs)]) if runs else \
        np.zeros((0, size), np.int64)


def subset_removal_drops(model: ModelFn, pixels: torch.Tensor, maps: np.ndarray, targets, fill: torch.Tensor,
                         subsets: np.ndarray, full_scores: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The evidence of faithfulness correlation (Bhatt, Weller & Moura 2020): for image n
    and each of its R pixel subsets S (``subsets`` [N, R, k], flat indices into H·W), the
    map's sum over S, ``Σ_{i∈S} a_i`` (:func:`subset_sums`), and the fall of the target's
    softmax probability when the pixels of S (every channel) take ``fill`` [C],
    ``f(x) − f(x_{S←fill})`` (:func:`subset_drops`), with ``full_scores`` [N] the target's
    probability on each image (``f(x)``). Returns (sums [N, R], drops [N, R])."""
    return subset_sums(maps, subsets), subset_drops(model, pixels, targets, fill, subsets, full_scores, batch_size)


def subset_sums(maps: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """``Σ_{i∈S} a_i`` of each map [N, H, W] over each of its subsets [N, R, k]: [N, R]."""
    n = len(maps)
    flat = np.asarray(maps, np.float64).reshape(n, -1)
    return flat[np.arange(n)[:, None, None], subsets].sum(-1)


@torch.no_grad()
def subset_drops(model: ModelFn, pixels: torch.Tensor, targets, fill: torch.Tensor, subsets: np.ndarray,
                 full_scores: np.ndarray, batch_size: int) -> np.ndarray:
    """``f(x) − f(x_{S←fill})`` of each image and subset: [N, R]. No map enters it, so the
    methods of a study share it (:class:`xaibench.metrics.faithfulness.ModelEvidence`); the R
    inputs of an image are run ``batch_size`` at a time."""
    n, c, h, w = pixels.shape
    runs = subsets.shape[1]
    drops = np.zeros((n, runs))
    targets = torch.as_tensor(targets).long()
    fill = fill.to(pixels.dtype).view(1, c, 1, 1)
    for image in range(n):
        for first in range(0, runs, batch_size):
            chunk = torch.as_tensor(subsets[image, first:first + batch_size], device=pixels.device)
            removed = torch.zeros((len(chunk), h * w), dtype=torch.bool, device=pixels.device)
            removed[torch.arange(len(chunk), device=pixels.device)[:, None], chunk] = True
            batch = torch.where(removed.view(-1, 1, h, w), fill, pixels[image:image + 1]).contiguous(
                memory_format=torch.channels_last)                 # the layout oneDNN runs fastest
            probs = model(batch).softmax(-1)[:, targets[image]]
            full = torch.as_tensor(full_scores[image], dtype=probs.dtype, device=probs.device)  # exact: a float32
            drops[image, first:first + len(chunk)] = (full - probs).double().cpu().numpy()
    return drops
