"""Perturbation faithfulness metrics: insertion/deletion AUC and correlation, AD, IIC,
faithfulness correlation.

The evidence for a set of images and saliency maps is gathered once
(:func:`collect_evidence`) and every registered metric reads from it. All scores are
the softmax probability of the explained (target) class.

Curves (Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC): pixels are ranked by saliency, most salient first (stable
order on ties). With ``S`` steps, step ``k`` changes the pixels of rank
``[round((k-1)·HW/S), round(k·HW/S))``.

* deletion: start from the image, set the step's pixels to the deletion fill, score
  after each step: ``d_0 .. d_S``. RISE's reference code fills with 0 *after*
  normalisation, i.e. the training mean colour (``deletion_fill: mean``, the default);
  ``black`` fills with pixel value 0;
* insertion: start from the insertion canvas (the image blurred with a Gaussian, kernel
  11, sigma from params, as in RISE), put back the step's original pixels:
  ``i_0 .. i_S``.

Faithfulness correlation (Bhatt, Weller & Moura 2020, "Evaluating and aggregating
feature-based model explanations", IJCAI, sec. 4.1): over R random subsets S of |S| pixels
(seeded per image), the Pearson correlation between the map's sum over S and the fall of the
target's probability when S takes the deletion fill; computed where the study asks for it
(``evaluate.faithfulness_correlation.runs`` > 0).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from xaibench.explain.lime_method import slic_segments
from xaibench.explain.perturbation import (deletion_insertion_curves, fill_image, random_subsets, saliency_ranks,
                                           step_boundaries, subset_drops, subset_sums)
from xaibench.explain.removal import infidelity_dots, infidelity_drops, region_perturbation_curves, road_curves
from xaibench.metrics.registry import METRICS, register_metric


@dataclass
class FaithfulnessEvidence:
    """Everything the faithfulness metrics need, for N images (S curve steps)."""

    insertion_scores: np.ndarray    # [N, S+1]
    insertion_step_saliency: np.ndarray  # [N, S]  saliency summed over the pixels inserted at each step
    deletion_scores: np.ndarray     # [N, S+1]
    deletion_step_saliency: np.ndarray   # [N, S]
    full_scores: np.ndarray         # [N]  score on the unmodified image (Y)
    explanation_map_scores: np.ndarray  # [N]  score on image x normalised saliency (O)
    # faithfulness correlation: the map's sum over each random subset and the score's fall
    # when it is removed, [N, R] (R = 0: not asked for)
    subset_saliency: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    subset_drops: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    # ROAD: the target's probability after each fraction's MoRF / LeRF imputation, [N, F]
    road_morf: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    road_lerf: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    # region perturbation (IROF): the probability as superpixels are replaced, [N, K_max+1], NaN-padded
    region_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    # infidelity: the map's predicted effect I·a and the effect f(x) − f(x − I) of each noise, [N, R]
    infidelity_dots: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    infidelity_drops: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


@dataclass(frozen=True)
class EvidenceOptions:
    """The optional metrics' evidence, each off by default (no model calls): faithfulness
    correlation's random subsets (``correlation_runs`` of ``subset_size`` pixels), ROAD's
    removal fractions (``road_fractions``, imputation noise ``road_noise``), region
    perturbation's SLIC superpixels (``region_segments``, replaced by ``region_fill``:
    ``image_mean`` | ``black``) and infidelity's noisy inputs (``infidelity_runs`` of σ
    ``infidelity_sigma``). ``seed`` seeds every draw, per image (its index in the test split)."""

    seed: int = 0
    correlation_runs: int = 0
    subset_size: int = 0
    road_fractions: tuple[float, ...] = ()
    road_noise: float = 0.01
    region_segments: int = 0
    region_fill: str = "image_mean"
    infidelity_runs: int = 0
    infidelity_sigma: float = 0.1


@dataclass(frozen=True)
class ModelEvidence:
    """The part of the evidence that no map enters: the target's score on each image, the
    fall of its probability when each random pixel subset takes the deletion fill
    (faithfulness correlation) and the fall of its logit under each noise (infidelity). The
    subsets and the noises are drawn per image from the study's seed, so every method of a
    study would compute the same numbers from the same model calls: its evaluate stage runs
    them once, for the first method (:func:`model_evidence`), and hands them to the others.
    Each array's first axis is the images, in the order of ``targets`` [N]."""

    targets: np.ndarray
    full_scores: np.ndarray
    subset_drops: np.ndarray
    infidelity_drops: np.ndarray

    def rows(self, start: int, stop: int) -> "ModelEvidence":
        """The images ``start..stop`` (a chunk of the test split)."""
        return ModelEvidence(*(getattr(self, f.name)[start:stop] for f in dataclasses.fields(self)))

    def serves(self, targets: torch.Tensor, options: "EvidenceOptions") -> bool:
        """Whether this evidence is that of these targets under these options (a method whose
        maps explain other classes computes its own)."""
        return (np.array_equal(self.targets, np.asarray(targets)) and self.subset_drops.shape[1:] == (
            options.correlation_runs,) and self.infidelity_drops.shape[1:] == (options.infidelity_runs,))


def model_evidence(evidence: "FaithfulnessEvidence", targets) -> ModelEvidence:
    """The :class:`ModelEvidence` inside a method's evidence, to hand to the next method."""
    return ModelEvidence(np.asarray(targets), evidence.full_scores, evidence.subset_drops, evidence.infidelity_drops)


@torch.no_grad()
def _scores(model, batch: torch.Tensor, targets: torch.Tensor, batch_size: int) -> np.ndarray:
    out = [model(chunk).softmax(-1)[torch.arange(len(chunk)), t].cpu().numpy()
           for chunk, t in zip(batch.split(batch_size), targets.split(batch_size))]
    return np.concatenate(out).astype(np.float64)


def perturbation_curve(model, image: torch.Tensor, saliency: np.ndarray, target: int, start: torch.Tensor,
                       end: torch.Tensor, steps: int, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the target as pixels move from ``start`` to ``end`` in saliency order.

    Args:
        image: [3, H, W] (only its shape is used here); start, end: [3, H, W].
        saliency: [H, W]. Returns (scores [S+1], step_saliency [S]).
    Deletion = (start=image, end=substrate); insertion = (start=canvas, end=image).
    """
    _, h, w = image.shape
    ranks = torch.from_numpy(saliency_ranks(saliency)).view(1, 1, h, w)
    bounds = step_boundaries(h * w, steps)
    changed = ranks < torch.from_numpy(bounds).view(-1, 1, 1, 1)          # [S+1, 1, H, W]
    batch = torch.where(changed, end.unsqueeze(0), start.unsqueeze(0))     # [S+1, 3, H, W]
    scores = _scores(model, batch, torch.full((steps + 1,), int(target)), batch_size)
    return scores, step_saliency(saliency, steps)


def step_saliency(saliency: np.ndarray, steps: int) -> np.ndarray:
    """Saliency removed (or inserted) at each of the S steps, in rank order: [S]."""
    flat = saliency.ravel()[np.argsort(-saliency.ravel(), kind="stable")].astype(np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(flat)])
    bounds = step_boundaries(flat.size, steps)
    return cumulative[bounds[1:]] - cumulative[bounds[:-1]]


RISE_BLUR_KERNEL = 11   # RISE's insertion canvas: gkern(klen=11, nsig=σ) in the authors' code


def insertion_canvas(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """RISE's insertion start: the image under the fill ``blur`` with RISE's kernel of 11
    (:func:`xaibench.explain.perturbation.gaussian_blur`; it shrinks to fit images under 6
    pixels a side)."""
    return fill_image(image, "blur", sigma=sigma, kernel_size=RISE_BLUR_KERNEL)


def explanation_map(image: torch.Tensor, saliency: np.ndarray) -> torch.Tensor:
    """Grad-CAM++'s explanation map ``E = I ∘ L``, with L = max(saliency, 0) / max: [3, H, W]."""
    positive = np.clip(saliency, 0, None)
    peak = positive.max()
    weight = positive / peak if peak > 0 else positive
    return image * torch.from_numpy(weight.astype(np.float32)).to(image.device).unsqueeze(0)


def collect_evidence(model, pixels: torch.Tensor, maps: np.ndarray, targets: torch.Tensor, steps: int,
                     blur_sigma: float, deletion_fill: torch.Tensor, batch_size: int = 128,
                     options: EvidenceOptions = EvidenceOptions(), image_indices=None,
                     shared: ModelEvidence | None = None) -> FaithfulnessEvidence:
    """Run every perturbation the metrics need: 2·(S+1)+2 model inputs per image, and what
    ``options`` asks for beyond (:class:`EvidenceOptions`): R subsets, 2F ROAD removals, K
    superpixel replacements, R' noisy inputs. ``shared``: another method's
    :class:`ModelEvidence` of the same images, whose model calls (the image, the R subsets,
    the R' noises) are then not run again; the evidence is the same either way.

    pixels [N, 3, H, W] in [0, 1]; maps [N, H, W]; targets [N]; deletion_fill [3]
    (the colour deleted pixels take). The random draws of image k come from generators
    seeded by ``[options.seed, image_indices[k], ...]`` (its index in the study's test split),
    so they do not depend on how the images are chunked.
    """
    fill = deletion_fill.view(1, 3, 1, 1).expand_as(pixels)
    canvas = torch.stack([insertion_canvas(image, blur_sigma) for image in pixels])
    # every step of every image through one batching (the engine); identical to the
    # per-image perturbation_curve (tests/explain/test_perturbation.py)
    dele = deletion_insertion_curves(model, pixels, maps, targets, pixels, fill, steps, batch_size, desc="deletion")
    ins = deletion_insertion_curves(model, pixels, maps, targets, canvas, pixels, steps, batch_size, desc="insertion")
    dele_sal = ins_sal = [step_saliency(saliency, steps) for saliency in maps]
    masked = torch.stack([explanation_map(pixels[n], maps[n]) for n in range(len(pixels))])
    indices = list(range(len(pixels)) if image_indices is None else image_indices)
    n_pixels = pixels.shape[-2] * pixels.shape[-1]
    runs, size, seed = options.correlation_runs, options.subset_size, options.seed
    subsets = np.stack([random_subsets(n_pixels, runs, size, np.random.default_rng([seed, int(i)]))
                        for i in indices]) if len(pixels) else np.zeros((0, runs, size), np.int64)
    reuse = shared is not None and shared.serves(targets, options)
    full_scores = shared.full_scores if reuse else _scores(model, pixels, targets, batch_size)
    sums = subset_sums(maps, subsets)
    drops = shared.subset_drops if reuse else subset_drops(model, pixels, targets, deletion_fill, subsets,
                                                           full_scores, batch_size)
    morf, lerf = road_curves(model, pixels, maps, targets, options.road_fractions, options.road_noise, seed, indices,
                             batch_size)
    if options.region_segments and len(pixels):
        segments = np.stack([slic_segments(image, options.region_segments) for image in pixels])
        region_fill = torch.stack([fill_image(image, options.region_fill) for image in pixels])
        region = region_perturbation_curves(model, pixels, maps, targets, segments, region_fill, batch_size)
    else:
        region = np.zeros((len(pixels), 0))
    noises, sigma = options.infidelity_runs, options.infidelity_sigma
    dots = infidelity_dots(maps, pixels.shape[1:], noises, sigma, seed, indices)
    noise_drops = shared.infidelity_drops if reuse else infidelity_drops(model, pixels, targets, noises, sigma, seed,
                                                                         indices, batch_size)
    return FaithfulnessEvidence(
        insertion_scores=np.stack(ins), insertion_step_saliency=np.stack(ins_sal),
        deletion_scores=np.stack(dele), deletion_step_saliency=np.stack(dele_sal),
        full_scores=full_scores,
        explanation_map_scores=_scores(model, masked, targets, batch_size),
        subset_saliency=sums, subset_drops=drops, road_morf=morf, road_lerf=lerf, region_scores=region,
        infidelity_dots=dots, infidelity_drops=noise_drops,
    )


def concatenate_evidence(parts: list[FaithfulnessEvidence]) -> FaithfulnessEvidence:
    """The evidence of consecutive chunks as one, in order; a 2-D part whose width differs
    between chunks (the superpixel curves: K depends on the images) is padded with NaN."""
    fields = {}
    for item in dataclasses.fields(FaithfulnessEvidence):
        arrays = [getattr(p, item.name) for p in parts]
        if arrays[0].ndim == 2 and len({a.shape[1] for a in arrays}) > 1:
            width = max(a.shape[1] for a in arrays)
            arrays = [np.pad(a.astype(np.float64), ((0, 0), (0, width - a.shape[1])), constant_values=np.nan)
                      for a in arrays]
        fields[item.name] = np.concatenate(arrays)
    return FaithfulnessEvidence(**fields)


def area_under_curve(scores: np.ndarray) -> np.ndarray:
    """Trapezoid area of curves [N, S+1] sampled at x = 0, 1/S, .., 1: [N]."""
    steps = scores.shape[-1] - 1
    return (scores.sum(-1) - 0.5 * (scores[..., 0] + scores[..., -1])) / steps


@dataclass(frozen=True)
class EvidenceChunk:
    """One chunk of stored maps to score (a :func:`xaibench.compute.map_chunks` task): the
    arguments of :func:`collect_evidence` but the model."""

    pixels: torch.Tensor
    maps: np.ndarray
    targets: torch.Tensor
    steps: int
    blur_sigma: float
    deletion_fill: torch.Tensor
    batch_size: int
    options: EvidenceOptions = EvidenceOptions()   # the optional metrics the study asks for
    first_index: int = 0             # the chunk's first image in the test split
    shared: ModelEvidence | None = None   # another method's model calls on these images


def chunk_evidence(model, chunk: EvidenceChunk) -> FaithfulnessEvidence:
    """:func:`collect_evidence` of one :class:`EvidenceChunk`."""
    return collect_evidence(model, chunk.pixels, chunk.maps, chunk.targets, chunk.steps, chunk.blur_sigma,
                            chunk.deletion_fill, chunk.batch_size, chunk.options,
                            range(chunk.first_index, chunk.first_index + len(chunk.pixels)), chunk.shared)


def rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows of a, b [N, S]; NaN where a row is constant."""
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    denominator = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(-1) / np.where(denominator > 0, denominator, 1), np.nan)


@register_metric("IAUC", higher_is_better=True,
                definition=("Insertion AUC: area under the target probability as pixels are inserted,"
                            " most relevant first, into a blurred canvas (Petsiuk et al. 2018, RISE)"), bounds=(0, 1))
def insertion_auc(evidence: FaithfulnessEvidence) -> np.ndarray:
    """Insertion AUC (RISE, Petsiuk et al. 2018): ``IAUC = ∫_0^1 i(x) dx`` by the trapezoid
    rule over the insertion curve. Higher is better."""
    return area_under_curve(evidence.insertion_scores)


@register_metric("DAUC", higher_is_better=False,
                definition=("Deletion AUC: area under the target probability as pixels are deleted, "
                            "most relevant first (Petsiuk et al. 2018, RISE)"), bounds=(0, 1))
def deletion_auc(evidence: FaithfulnessEvidence) -> np.ndarray:
    """Deletion AUC (RISE, Petsiuk et al. 2018): ``DAUC = ∫_0^1 d(x) dx`` by the trapezoid
    rule over the deletion curve. Lower is better."""
    return area_under_curve(evidence.deletion_scores)


@register_metric("IC", higher_is_better=True,
                definition=("Insertion correlation: Pearson correlation between the relevance "
                            "inserted at each step and the probability it adds (Gomez, Fréour & "
                            "Mouchère 2022)"), bounds=(-1, 1))
def insertion_correlation(evidence: FaithfulnessEvidence) -> np.ndarray:
    """Insertion correlation (Gomez, Fréour & Mouchère 2022, "Metrics for saliency map
    evaluation of deep learning explanation methods", ICPRAI): Pearson correlation, over
    steps k = 1..S, between the saliency of the pixels inserted at step k
    (``Σ_{p ∈ step k} s_p``) and the score change it caused (``i_k − i_{k−1}``).
    Higher is better; NaN (skipped in the mean) where either series is constant."""
    return rowwise_pearson(evidence.insertion_step_saliency, np.diff(evidence.insertion_scores, axis=-1))


@register_metric("DC", higher_is_better=True,
                definition=("Deletion correlation: Pearson correlation between the relevance deleted "
                            "at each step and the probability it removes (Gomez, Fréour & Mouchère "
                            "2022)"), bounds=(-1, 1))
def deletion_correlation(evidence: FaithfulnessEvidence) -> np.ndarray:
    """Deletion correlation (Gomez, Fréour & Mouchère 2022): Pearson correlation between
    the saliency of the pixels deleted at step k and the score drop it caused
    (``d_{k−1} − d_k``). Higher is better; NaN where either series is constant."""
    return rowwise_pearson(evidence.deletion_step_saliency, -np.diff(evidence.deletion_scores, axis=-1))


@register_metric("AD", higher_is_better=False,
                definition=("Average drop %: mean relative fall of the target score on the image "
                            "masked by the map (Chattopadhay et al. 2018, Grad-CAM++)"), bounds=(0, 100))
def average_drop(evidence: FaithfulnessEvidence) -> np.ndarray:
    """Average Drop % (Chattopadhay et al. 2018, "Grad-CAM++", WACV):
    ``AD = 100 · mean_i max(0, Y_i − O_i) / Y_i``, with Y the score on the image and O the
    score on the explanation map ``I ∘ L`` (L = positive saliency scaled to max 1).
    Lower is better."""
    y, o = evidence.full_scores, evidence.explanation_map_scores
    return 100.0 * np.maximum(0.0, y - o) / np.maximum(y, 1e-12)


@register_metric("IIC", higher_is_better=True,
                definition=("Increase in confidence %: share of images whose target score rises on "
                            "the image masked by the map (Chattopadhay et al. 2018, Grad-CAM++)"), bounds=(0, 100))
def increase_in_confidence(evidence: FaithfulnessEvidence) -> np.ndarray:
    """Increase in Confidence % (Chattopadhay et al. 2018, "Grad-CAM++"):
    ``IIC = 100 · mean_i 1[Y_i < O_i]``, the share of images whose target score rises on
    the explanation map. Higher is better."""
    return 100.0 * (evidence.full_scores < evidence.explanation_map_scores).astype(np.float64)


@register_metric("faithfulness_correlation", higher_is_better=True,
                 definition=("Faithfulness correlation: Pearson correlation between the map's sum over a "
                             "random pixel subset and the probability's fall when it is removed (Bhatt, "
                             "Weller & Moura 2020)"), bounds=(-1, 1))
def faithfulness_correlation(evidence: FaithfulnessEvidence) -> np.ndarray | None:
    """``corr_S(Σ_{i∈S} a_i, f(x) − f(x_{S←fill}))`` over the R subsets of each image
    (Bhatt et al. 2020, eq. 3); NaN where either is constant. None where the evidence has no
    subsets (the study did not ask for it): the study then does not report it."""
    if not _asked(evidence.subset_drops):
        return None
    return rowwise_pearson(evidence.subset_saliency, evidence.subset_drops)


def _asked(part: np.ndarray) -> bool:
    """Whether the evidence holds an optional metric's part (2-D with at least one column)."""
    return part.ndim == 2 and part.shape[1] > 0


@register_metric("ROAD_MoRF", higher_is_better=False,
                 definition=("ROAD, most relevant first: mean target probability after the top f of the pixels "
                             "are removed by noisy linear imputation, over the fractions f (Rong et al. 2022)"), bounds=(0, 1))
def road_most_relevant_first(evidence: FaithfulnessEvidence) -> np.ndarray | None:
    """ROAD MoRF (Rong, Leemann, Borisov, Kasneci & Kasneci 2022, "A consistent and efficient
    evaluation strategy for attribution methods", ICML, sec. 4-5): with ``x^{MoRF}_f`` the
    image whose ``round(f·HW)`` most salient pixels are noisily linearly imputed
    (:mod:`xaibench.explain.imputation`), ``mean_f p(x^{MoRF}_f)`` over the study's fractions
    (the paper plots the curve; its mean is pytorch-grad-cam's ``ROADMostRelevantFirstAverage``
    plus the unperturbed score). Lower is better; None when not asked for."""
    return evidence.road_morf.mean(1) if _asked(evidence.road_morf) else None


@register_metric("ROAD_LeRF", higher_is_better=True,
                 definition=("ROAD, least relevant first: mean target probability after the least relevant f of "
                             "the pixels are imputed, over the fractions f (Rong et al. 2022)"), bounds=(0, 1))
def road_least_relevant_first(evidence: FaithfulnessEvidence) -> np.ndarray | None:
    """ROAD LeRF (Rong et al. 2022): ``mean_f p(x^{LeRF}_f)``, the least salient
    ``round(f·HW)`` pixels imputed. Higher is better; None when not asked for."""
    return evidence.road_lerf.mean(1) if _asked(evidence.road_lerf) else None


@register_metric("SRG", higher_is_better=True,
                 definition=("Symmetric relevance gain: the LeRF curve's mean minus the MoRF curve's, both under "
                             "ROAD's imputation (Blücher, Vielhaben & Strodthoff 2024)"), bounds=(-1, 1))
def symmetric_relevance_gain(evidence: FaithfulnessEvidence) -> np.ndarray | None:
    """SRG (Blücher, Vielhaben & Strodthoff 2024, "Decoupling pixel flipping and occlusion
    strategy for consistent XAI benchmarks", TMLR, sec. 3): ``AUC(LeRF) − AUC(MoRF)`` on the
    same occlusion, here ROAD's imputation and fractions, ``mean_f [p(x^{LeRF}_f) −
    p(x^{MoRF}_f)]``: removing the least relevant pixels should keep the score, removing the
    most relevant should lose it, and the difference cancels what the occlusion itself does to
    the model. pytorch-grad-cam's ``ROADCombined`` is half of it. Higher is better."""
    if not (_asked(evidence.road_morf) and _asked(evidence.road_lerf)):
        return None
    return (evidence.road_lerf - evidence.road_morf).mean(1)


@register_metric("IROF", higher_is_better=True,
                 definition=("Iterative removal of features: area over the target probability, relative to the "
                             "image's, as SLIC superpixels are replaced, highest mean relevance first (Rieger & "
                             "Hansen 2020)"), bounds=(None, 1))
def iterative_removal_of_features(evidence: FaithfulnessEvidence) -> np.ndarray | None:
    """IROF (Rieger & Hansen 2020, "IROF: a low resource evaluation metric for explanation
    methods", ICLR workshop, sec. 3), region perturbation over superpixels (Samek et al. 2017):
    the K superpixels are replaced one by one, highest mean relevance first; with
    ``q_k = p_k / p_0`` after k replacements, ``IROF = 1 − ∫_0^1 q`` by the trapezoid rule on
    x = k/K: the area *over* the normalised curve, in [0, 1] when the score only falls.
    Quantus 0.6 returns ``K − trapz_{dx=1}(q_1..q_K)`` = ``K·IROF + (1 + q_1)/2``, a scale that
    grows with K (tests/metrics/test_removal_metrics.py checks the identity). Higher is better."""
    scores = evidence.region_scores
    if not _asked(scores):
        return None
    out = np.full(len(scores), np.nan)
    for row, curve in enumerate(scores):
        curve = curve[~np.isnan(curve)]
        if len(curve) > 1 and curve[0] > 0:
            out[row] = 1.0 - area_under_curve(curve / curve[0])
    return out


@register_metric("infidelity", higher_is_better=False,
                 definition=("Infidelity: mean squared error of the map, optimally scaled, predicting the "
                             "target logit's change under Gaussian input noise (Yeh et al. 2019)"), bounds=(0, None))
def infidelity(evidence: FaithfulnessEvidence) -> np.ndarray | None:
    """Infidelity (Yeh, Hsieh, Suggala, Inouye & Ravikumar 2019, "On the (in)fidelity and
    sensitivity of explanations", NeurIPS, Def. 2.1): ``E_I[(Iᵀa − (f(x) − f(x − I)))²]`` over
    R noise draws I ~ N(0, σ²), f the target's logit (unlike the other metrics here: the
    probability saturates, :func:`~xaibench.explain.removal.infidelity_evidence`); the map is first scaled by the β that minimises it,
    ``β = Σ Iᵀa·Δf / Σ (Iᵀa)²`` (captum's ``infidelity(normalize=True)``, after captum #613:
    without it the score depends on the map's arbitrary scale). Lower is better; NaN for a
    map whose predicted effect is always 0."""
    dots, drops = evidence.infidelity_dots, evidence.infidelity_drops
    if not _asked(dots):
        return None
    power = (dots * dots).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.where(power > 0, (dots * drops).sum(1) / np.where(power > 0, power, 1), np.nan)
    return ((beta[:, None] * dots - drops) ** 2).mean(1)


def evidence_scores(evidence: FaithfulnessEvidence) -> dict[str, np.ndarray]:
    """{metric: [N]} of every registered metric of the evidence that it holds what for (a
    metric returns None for evidence without its part: faithfulness correlation without
    subsets)."""
    return {metric: values for metric, fn in METRICS.items() if (values := fn(evidence)) is not None}
