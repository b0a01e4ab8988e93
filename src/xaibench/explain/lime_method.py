"""LIME (Ribeiro et al. 2016) on SLIC superpixels: ``lime`` = the batched engine
(:mod:`xaibench.explain.perturbation`), ``lime_package`` = the ``lime`` package itself,
kept as the reference the engine is tested against."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from pydantic import Field, model_validator

from xaibench.explain.perturbation import fill_image, lime
from xaibench.explain.registry import register_method
from xaibench.schema import Sampled

# lime (with scikit-learn and scikit-image) is imported inside the functions: it costs
# seconds at start-up, and most stages never call it.


class LimeParams(Sampled):
    """The options of ``lime`` and ``lime_package``: ``num_samples`` perturbations of
    ``n_segments`` SLIC superpixels, scored ``batch_size`` at a time."""

    num_samples: int = Field(ge=10)                  # the count (fixed) or the most (adaptive)
    n_segments: int = Field(ge=2)
    batch_size: int = Field(ge=1)

    @model_validator(mode="after")
    def _budget(self):
        self.check_budget(self.num_samples, self.n_segments)
        return self


@contextmanager
def _quiet_lime_progress():
    """lime 0.2.0.1 draws a tqdm bar per explanation with no switch; silence it here."""
    from lime import lime_image  # lazy: lime

    original = lime_image.tqdm
    lime_image.tqdm = lambda iterable, *a, **k: iterable
    try:
        yield
    finally:
        lime_image.tqdm = original


def segment_weights_to_map(segments: np.ndarray, weights: dict[int, float]) -> np.ndarray:
    """Paint each superpixel with its LIME weight: [H, W] float32."""
    lookup = np.zeros(segments.max() + 1, np.float32)
    for segment, weight in weights.items():
        lookup[segment] = weight
    return lookup[segments]


def slic_segments(image, n_segments: int) -> np.ndarray:
    """LIME's SLIC superpixels of one [3, H, W] image in [0, 1] (compactness 10, sigma 1): [H, W] int."""
    from lime.wrappers.scikit_image import SegmentationAlgorithm  # lazy: lime

    slic = SegmentationAlgorithm("slic", n_segments=n_segments, compactness=10, sigma=1, start_label=0)
    return slic(image.permute(1, 2, 0).double().cpu().numpy())


def sampling_options(sampled) -> dict:
    """The engine's keywords for a method's sampling params (a ``params.Sampled``):
    ``paired``, and ``stopping``: None for fixed sampling, the
    rule ``sampled.stopping`` (:class:`~xaibench.schema.StoppingParams`) for adaptive."""
    rule = sampled.stopping if sampled.sampling == "adaptive" else None
    return {"paired": sampled.paired, "stopping": rule}


@register_method("lime", options=LimeParams)
def lime_batched(model, pixels, targets, options: LimeParams, seed=0, segments=None, sampling_log=None):
    """LIME through the batched engine, with lime_image's recipe: SLIC superpixels of the
    pixel image (``n_segments``, compactness 10, sigma 1), hidden superpixels set to 0 on
    the normalised input (the training mean colour), ``num_samples`` uniform 0/1 samples
    (the first all ones), kernel sqrt(exp(−d²/0.25²)) on the cosine distance, ridge (α = 1)
    on the target probability. ``segments``: as for ``lime_package``. ``options.sampling``:
    ``fixed`` (lime's: ``num_samples`` each) or ``adaptive`` (at most ``num_samples``,
    until the ``stopping`` rule holds); ``paired``: antithetic samples. ``sampling_log``:
    a list that gets one (samples, stopped_early) per image."""
    engine_options = sampling_options(options)
    maps = []
    for index, (image, target) in enumerate(zip(pixels, targets)):
        image_segments = slic_segments(image, options.n_segments) if segments is None else segments[index]
        x = model.normalize(image.unsqueeze(0))[0]

        def score(batch, target=int(target)):
            return model.net(batch).softmax(-1)[:, target]

        estimate = lime(score, x, image_segments, torch.zeros_like(x), options.num_samples, options.batch_size,
                        seed=seed, **engine_options)
        if sampling_log is not None:
            sampling_log.append((estimate.samples, estimate.stopped_early))
        maps.append(segment_weights_to_map(image_segments, dict(enumerate(estimate.values))))
    return np.stack(maps)


@register_method("lime_package", options=LimeParams)
def lime_slic(model, pixels, targets, options: LimeParams, seed=0, segments=None):
    """LIME with ``lime_image.LimeImageExplainer`` on the network's (normalised) input:
    SLIC superpixels of the pixel image (``n_segments``, compactness 10, sigma 1), hidden
    superpixels set to 0 (``hide_color=0``: the training mean colour in pixel space),
    ``num_samples`` perturbations, lime's cosine kernel (width 0.25) and ridge surrogate.
    The map paints each superpixel with its surrogate weight for the target class.
    ``segments`` (one [H, W] int map per image) replaces SLIC, e.g. to explain a noisy
    copy on the clean image's superpixels."""
    from lime import lime_image  # lazy: lime

    maps = []
    device = next(model.parameters()).device

    @torch.no_grad()
    def classifier_fn(batch: np.ndarray) -> np.ndarray:  # [B, H, W, 3], normalised
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().to(device)
        return model.net(x).softmax(-1).cpu().numpy()

    for index, (image, target) in enumerate(zip(pixels, targets)):
        explainer = lime_image.LimeImageExplainer(random_state=seed)
        image_segments = slic_segments(image, options.n_segments) if segments is None else segments[index]
        normalised_hwc = model.normalize(image.unsqueeze(0))[0].permute(1, 2, 0).double().cpu().numpy()
        with _quiet_lime_progress():
            explanation = explainer.explain_instance(
                normalised_hwc, classifier_fn, labels=(int(target),), top_labels=None, hide_color=0,
                num_samples=options.num_samples, batch_size=options.batch_size, segmentation_fn=lambda _, s=image_segments: s,
                random_seed=seed,
            )
        maps.append(segment_weights_to_map(explanation.segments, dict(explanation.local_exp[int(target)])))
    return np.stack(maps)


# --- LIME on quickshift segments, with several labels fitted at once (the ImageNet study) ----

class QuickshiftLimeParams(Sampled):
    """The options of ``lime_quickshift``: lime_image's quickshift segmentation
    (``kernel_size``, ``max_dist``, ``ratio``), ``num_samples`` samples scored ``batch_size``
    at a time, the ``top_labels`` fitted together (the study: 5); ``top_superpixels`` the
    ImageNet study's figure draws per label (10)."""

    num_samples: int = Field(ge=10)
    batch_size: int = Field(ge=1)
    kernel_size: float = Field(gt=0)                 # lime's quickshift defaults: 4, 200, 0.2
    max_dist: float = Field(gt=0)
    ratio: float = Field(ge=0, le=1)
    top_labels: int = Field(ge=1)
    top_superpixels: int = Field(ge=1)

    @model_validator(mode="after")
    def _budget(self):
        self.check_budget(self.num_samples, None)  # quickshift's segment count is the image's
        return self


def quickshift_segments(image: np.ndarray, cfg: QuickshiftLimeParams, seed: int) -> np.ndarray:
    """lime's quickshift wrapper (``kernel_size``, ``max_dist``, ``ratio``) on [H, W, 3] in [0, 1]."""
    from lime.wrappers.scikit_image import SegmentationAlgorithm  # lazy: lime

    algorithm = SegmentationAlgorithm("quickshift", kernel_size=cfg.kernel_size, max_dist=cfg.max_dist,
                                      ratio=cfg.ratio, random_seed=seed)
    return algorithm(image.astype(np.float64)).astype(np.int64)


def lime_top_labels(model, image: torch.Tensor, segments: np.ndarray, cfg: QuickshiftLimeParams, seed: int,
                    target: int | None = None, sampling_log=None):
    """(labels [L], segment weights [K, L]) with lime_image's defaults: hidden superpixels
    take their own mean colour (``hide_color=None``); one sampling for all L labels: the
    ``target`` first (default: the top prediction), then the other top predictions up to
    ``top_labels`` (``cfg.sampling``: fixed, or adaptive until every label's top segments
    are stable). ``sampling_log`` gets (samples, stopped_early)."""
    with torch.no_grad():
        ranked = model(image[None]).softmax(-1)[0].topk(cfg.top_labels).indices
    if target is not None and int(ranked[0]) != int(target):
        ranked = torch.tensor([int(target), *[int(c) for c in ranked if int(c) != int(target)]][:cfg.top_labels])
    labels = ranked

    def probs(batch):
        return model(batch).softmax(-1)[:, labels]

    fill = fill_image(image, "segment_mean", segments=segments)
    estimate = lime(probs, image, segments, fill, cfg.num_samples, cfg.batch_size, seed=seed,
                    **sampling_options(cfg))
    if sampling_log is not None:
        sampling_log.append((estimate.samples, estimate.stopped_early))
    return labels.numpy(), np.asarray(estimate.values)


@register_method("lime_quickshift", options=QuickshiftLimeParams)
def lime_quickshift(model, pixels, targets, options: QuickshiftLimeParams, seed=0, sampling_log=None,
                    explanations=None):
    """LIME (Ribeiro et al. 2016) with lime_image's recipe on quickshift superpixels, the
    target and the next top labels fitted on one sampling; the map paints each superpixel
    with the target's weight. ``explanations``: a list that gets (segments, labels,
    weights) per image (the ImageNet study's top-superpixel figure). Quickshift segments the
    image at 8 bits (the stored image)."""
    maps = []
    for image, target in zip(pixels.cpu(), targets):
        # segmented at the stored images' 8 bits (uint8 / 255), as lime_image is given them
        segments = quickshift_segments(np.round(image.permute(1, 2, 0).double().numpy() * 255) / 255.0, options, seed)
        labels, weights = lime_top_labels(model, image, segments, options, seed, int(target), sampling_log)
        if explanations is not None:
            explanations.append((segments, labels, weights))
        maps.append(segment_weights_to_map(segments, dict(enumerate(weights[:, 0]))))
    return np.stack(maps)
