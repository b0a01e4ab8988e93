"""Attribution methods for one detection (the detection study, Dreyer 2021).

Registry :data:`BOX_METHODS`; every entry has one call shape:

    method(box, pixels, label, segments, cfg, seed) -> np.ndarray float32 [S, S]

``box`` is a :class:`xaibench.models.ssd.BoxLogit` (normalised image -> the explained
anchor's class logits), ``pixels`` one image [1, 3, S, S] in [0, 1], ``label`` the
detection's class, ``segments`` its SLIC superpixels [S, S], ``cfg`` the study's
``attribute`` params. Maps are channel-summed; larger = more evidence for the box.

Any method of the image-classifier registry (:data:`xaibench.explain.METHODS`) explains a
box too (:func:`explain_box`): the box's class logits are a classifier of the image, and
the method explains the detection's class.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
from torch import nn

from xaibench.explain.gradient_methods import channel_sum
from xaibench.explain.lime_method import sampling_options
from xaibench.explain.perturbation import gaussian_blur, kernel_shap, lime, shapley_sampling
from xaibench.explain.registry import METHODS
from xaibench.models import NormalizedClassifier
from xaibench.models.ssd import BoxLogit, L2Norm
from xaibench.registry import registrar

BOX_METHODS: dict[str, Callable] = {}
register_box_method = registrar(BOX_METHODS, "detection attribution method")


def lrp_composite(gamma: float):
    """zennit composite of the study: Gamma(γ) on convolutions, Flat on the first layer,
    relevance passed through activations and the L2Norm layer; batch norms merged into
    the preceding convolution. Biases take no relevance (``zero_params``), so relevance
    is conserved layer to layer (tests/explain/test_detection.py shows it)."""
    from zennit.canonizers import SequentialMergeBatchNorm  # lazy: zennit
    from zennit.composites import SpecialFirstLayerMapComposite, layer_map_base
    from zennit.rules import Flat, Gamma, Pass  # lazy: zennit
    from zennit.types import Convolution

    return SpecialFirstLayerMapComposite(
        layer_map=layer_map_base() + [(L2Norm, Pass()), (Convolution, Gamma(gamma=gamma, zero_params=["bias"]))],
        first_map=[(Convolution, Flat(zero_params=["bias"]))],
        canonizers=[SequentialMergeBatchNorm()],
    )


def lrp_relevance(box: nn.Module, normalized: torch.Tensor, label: int, gamma: float, record: list | None = None):
    """Input relevance [1, 3, S, S] of the box's class logit (relevance starts as the logit).
    ``record``: if a list, each Conv2d's output relevance sum is appended in backward order."""
    from zennit.attribution import Gradient  # lazy: zennit

    handles = []
    if record is not None:
        def keep(module, _, output):
            output.register_hook(lambda grad: record.append((module, float(grad.sum()))))
        handles = [m.register_forward_hook(keep) for m in box.modules() if isinstance(m, nn.Conv2d)]
    x = normalized.detach().requires_grad_(True)
    try:
        with torch.enable_grad(), Gradient(model=box, composite=lrp_composite(gamma)) as attributor:
            logits = box(x)
            start = torch.zeros_like(logits)
            start[:, label] = logits.detach()[:, label]
            _, relevance = attributor(x, start)
    finally:
        for handle in handles:
            handle.remove()
    return relevance, float(logits.detach()[0, label])


@register_box_method("lrp")
def lrp_gamma_flat(box, pixels, label, segments, cfg, seed=0, **_):
    """LRP (Bach et al. 2015) with the study's rules (:func:`lrp_composite`, γ = ``cfg.lrp_gamma``)."""
    relevance, _ = lrp_relevance(box, box.normalize(pixels), label, cfg.lrp_gamma)
    return channel_sum(relevance)[0]


def blurred_reference(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    """DeepLIFT's reference: a Gaussian-blurred copy (:func:`xaibench.explain.perturbation.gaussian_blur`)."""

    return gaussian_blur(pixels, sigma)


class GradientMaxPool2d(nn.Module):
    """Max-pooling that captum's DeepLIFT does not hook: its multiplier is the gradient
    (routed to the max), as DeepLIFT does for max operations (Shrikumar et al. 2017)."""

    def __init__(self, pool: nn.MaxPool2d):
        super().__init__()
        self.pool = pool

    def forward(self, x):
        return torch.nn.functional.max_pool2d(x, self.pool.kernel_size, self.pool.stride, self.pool.padding,
                                              self.pool.dilation, ceil_mode=self.pool.ceil_mode)


def with_gradient_maxpool(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every MaxPool2d wrapped in :class:`GradientMaxPool2d`.

    Why: captum 0.9's MaxPool2d rule breaks summation-to-delta on the SSD backbones
    (measured on a test image: Σ attributions = 0 for a box logit that moved 0.13 from the
    reference); with the gradient rule the sum is 0.117, near the 0.13 (the L2Norm and the
    max-pools pass gradients, so summation-to-delta is approximate; tests check 25 %)."""
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, GradientMaxPool2d(child))
    return module


def deeplift_attribution(box, pixels, label, cfg, return_delta: bool = False):
    """captum DeepLift (Rescale) of the box logit against the blurred reference: [1, 3, S, S]."""
    from captum.attr import DeepLift  # lazy: captum

    sigma = cfg.deeplift_blur_sigma * pixels.shape[-1] / cfg.reference_size
    x = box.normalize(pixels).detach().requires_grad_(True)
    baseline = box.normalize(blurred_reference(pixels, sigma)).detach()
    return DeepLift(with_gradient_maxpool(box)).attribute(x, baselines=baseline, target=int(label),
                                                          return_convergence_delta=return_delta)


def _deeplift(box, pixels, label, cfg):
    return channel_sum(deeplift_attribution(box, pixels, label, cfg))[0]


@register_box_method("deeplift")
def deeplift_blurred_reference(box, pixels, label, segments, cfg, seed=0, **_):
    """DeepLIFT (Shrikumar et al. 2017; captum, Rescale rule) against a Gaussian-blurred
    copy of the image: σ = ``deeplift_blur_sigma`` (12 on 512 px), scaled to the image."""
    return _deeplift(box, pixels, label, cfg)


def first_conv(module: nn.Module) -> nn.Conv2d:
    """The first ``nn.Conv2d`` in module order: the layer that sees the input."""
    return next(m for m in module.modules() if isinstance(m, nn.Conv2d))


def gamma_weights(module: nn.Module, gamma: float, skip_first: bool = False) -> nn.Module:
    """A copy of ``module`` whose conv weights w become w + γ·max(w, 0); with
    ``skip_first`` the first convolution keeps its weights (it gets the flat rule)."""
    module = copy.deepcopy(module)
    first = first_conv(module) if skip_first else None
    with torch.no_grad():
        for conv in module.modules():
            if isinstance(conv, nn.Conv2d) and conv is not first:
                conv.weight.add_(gamma * conv.weight.clamp(min=0))
    return module


def flat_rule(conv: nn.Conv2d, output_relevance: torch.Tensor, input_shape) -> torch.Tensor:
    """The flat rule (Bach et al. 2016; the study's "♭-rule"): each output neuron j of
    ``conv`` spreads its relevance R_j evenly over the inputs in its receptive field,

        R_i = Σ_j [i ∈ RF(j)] · R_j / |RF(j)|,

    |RF(j)| counting every input channel and kernel position that lies inside the image
    (padding excluded). Conserves Σ R. output_relevance: [N, C_out, H', W'] -> [N, C_in, H, W]."""
    ones = torch.ones(input_shape, dtype=output_relevance.dtype, requires_grad=True)
    with torch.enable_grad():
        counts = torch.nn.functional.conv2d(ones, torch.ones_like(conv.weight), None, conv.stride, conv.padding,
                                            conv.dilation, conv.groups)
        (relevance,) = torch.autograd.grad(counts, ones, grad_outputs=output_relevance / counts)
    return relevance


@register_box_method("deeplift_gamma")
def deeplift_gamma(box, pixels, label, segments, cfg, seed=0, **_):
    """The study's DeepLIFT variant (ssd-coco-lrp-deeplift-lime-shap.md, 3.2.2): positive
    weights of the convolutions scaled by (1 + γ), γ = ``lrp_gamma``, and the flat rule
    ("the b-rule is also applied to the first layer"): DeepLIFT's contributions of the first
    convolution's outputs (captum ``LayerDeepLift``, Rescale, blurred reference) spread
    over their receptive fields by :func:`flat_rule`. Σ map = Σ first-layer contributions."""
    from captum.attr import LayerDeepLift  # lazy: captum

    model = with_gradient_maxpool(gamma_weights(box, cfg.lrp_gamma, skip_first=True))
    sigma = cfg.deeplift_blur_sigma * pixels.shape[-1] / cfg.reference_size
    x = box.normalize(pixels).detach().requires_grad_(True)
    baseline = box.normalize(blurred_reference(pixels, sigma)).detach()
    conv = first_conv(model)
    contributions = LayerDeepLift(model, conv).attribute(x, baselines=baseline, target=int(label),
                                                         attribute_to_layer_input=False)
    return channel_sum(flat_rule(conv, contributions.detach(), x.shape))[0]


def _captum_surrogate(explainer, box, pixels, label, segments, cfg, seed, n_samples: int):
    torch.manual_seed(seed)
    x = box.normalize(pixels).detach()
    mask = torch.from_numpy(segments).long().view(1, 1, *segments.shape)
    with torch.no_grad():
        attribution = explainer.attribute(x, baselines=0.0, target=int(label), feature_mask=mask,
                                          n_samples=n_samples, perturbations_per_eval=cfg.batch_size)
    return channel_sum(attribution)[0] / 3.0  # captum repeats the segment weight on each channel


def _engine_surrogate(estimator, box, pixels, label, segments, cfg, seed, sampling_log=None, **options):
    x = box.normalize(pixels)[0].detach()

    def logit(batch):
        return box(batch)[:, int(label)]

    estimate = estimator(logit, x, segments, torch.zeros_like(x), batch_size=cfg.batch_size, seed=seed, **options)
    if sampling_log is not None:
        sampling_log.append((estimate.samples, estimate.stopped_early))
    return np.asarray(estimate.values, np.float32)[segments]


@register_box_method("lime")
def lime_superpixels(box, pixels, label, segments, cfg, seed=0, sampling_log=None, **_):
    """LIME (Ribeiro et al. 2016) on the SLIC superpixels through the batched engine
    (:func:`xaibench.explain.perturbation.lime`): absent segments take the dataset mean
    (gray; 0 after normalisation), ``num_samples`` coalitions, lime's kernel on the cosine
    distance with width ``kernel_width``, ridge surrogate (α = 1) of the box logit.
    Map = each superpixel's weight."""

    return _engine_surrogate(lime, box, pixels, label, segments, cfg, seed, sampling_log,
                             num_samples=cfg.num_samples, kernel_width=cfg.kernel_width, **sampling_options(cfg.lime))


def shapley_permutations(segments: np.ndarray, cfg) -> int:
    """Permutations of the K superpixels that cost LIME's ``num_samples`` forward passes:
    num_samples // K, at least 1 (the study: 1000 // 250 = 4)."""
    return max(1, cfg.num_samples // (int(segments.max()) + 1))


@register_box_method("shap")
def shapley_sampling_superpixels(box, pixels, label, segments, cfg, seed=0, sampling_log=None, **_):
    """The study's SHAP (ssd-coco-lrp-deeplift-lime-shap.md, 2.4 and 3.2.4): Shapley value
    sampling (Štrumbelj & Kononenko 2014; captum ``ShapleyValueSampling``) on the SLIC
    superpixels through the batched engine
    (:func:`xaibench.explain.perturbation.shapley_sampling`): starting from the gray image,
    superpixels are added one by one along random permutations and each one's score
    differences averaged. The study runs 4 permutations of 250 superpixels = 1000 forward
    passes, LIME's count; here ``num_samples // K`` permutations of the K superpixels (at
    least 1), the same forward passes as LIME. Map = each superpixel's Shapley value of the box logit."""

    return _engine_surrogate(shapley_sampling, box, pixels, label, segments, cfg, seed, sampling_log,
                             n_permutations=shapley_permutations(segments, cfg))


@register_box_method("kernel_shap")
def kernel_shap_superpixels(box, pixels, label, segments, cfg, seed=0, sampling_log=None, **_):
    """KernelSHAP (Lundberg & Lee 2017) on the SLIC superpixels through the batched engine
    (:func:`xaibench.explain.perturbation.kernel_shap`), same gray baseline and sample count
    as LIME. Map = each superpixel's Shapley value of the box logit. Not the study's SHAP
    (that is ``shap``, permutation sampling); kept as its own method."""

    return _engine_surrogate(kernel_shap, box, pixels, label, segments, cfg, seed, sampling_log,
                             num_samples=cfg.num_samples, **sampling_options(cfg.kernel_shap))


@register_box_method("lime_captum")
def lime_captum(box, pixels, label, segments, cfg, seed=0, **_):
    """Reference for ``lime``: captum ``Lime`` (ridge α = 1, exp(−d²/w²) cosine kernel)."""
    from captum._utils.models.linear_model import SkLearnRidge  # lazy: captum
    from captum.attr import Lime
    from captum.attr._core.lime import get_exp_kernel_similarity_function  # lazy: captum

    lime = Lime(box, interpretable_model=SkLearnRidge(alpha=1.0),
                similarity_func=get_exp_kernel_similarity_function("cosine", kernel_width=cfg.kernel_width))
    return _captum_surrogate(lime, box, pixels, label, segments, cfg, seed, cfg.num_samples)


@register_box_method("shap_captum")
def shapley_sampling_captum(box, pixels, label, segments, cfg, seed=0, **_):
    """Reference for ``shap``: captum ``ShapleyValueSampling`` with the same permutation count."""
    from captum.attr import ShapleyValueSampling  # lazy: captum

    return _captum_surrogate(ShapleyValueSampling(box), box, pixels, label, segments, cfg, seed,
                             shapley_permutations(segments, cfg))


@register_box_method("kernel_shap_captum")
def kernel_shap_captum(box, pixels, label, segments, cfg, seed=0, **_):
    """Reference for ``kernel_shap``: captum ``KernelShap``."""
    from captum.attr import KernelShap  # lazy: captum

    return _captum_surrogate(KernelShap(box), box, pixels, label, segments, cfg, seed, cfg.num_samples)


@register_box_method("random")
def random_map(box, pixels, label, segments, cfg, seed=0, **_):
    """Uniform noise: the baseline every method should beat."""
    return np.random.default_rng(seed).random(pixels.shape[-2:]).astype(np.float32)


def explain_box(method: str, box: BoxLogit, pixels, label: int, segments, cfg, seed: int = 0,
                sampling_log=None) -> np.ndarray:
    """The map [S, S] of one detection by ``method``: an entry of :data:`BOX_METHODS`, or
    any method of the classifier registry, given the box as a classifier (its class logits
    on the pixels, the detector's own normalisation in front) and the detection's class as
    target, with its options from the study's section of that name (``cfg.options_for``)."""
    if method in BOX_METHODS:
        return BOX_METHODS[method](box, pixels, label, segments, cfg, seed, sampling_log=sampling_log)
    transform = box.detector.transform
    classifier = NormalizedClassifier(box, transform.image_mean, transform.image_std).to(pixels.device).eval()
    maps = METHODS[method](classifier, pixels, torch.tensor([int(label)], device=pixels.device), seed=seed,
                           image_indices=[0], options=cfg.options_for(method), sampling_log=sampling_log)
    return np.asarray(maps[0], dtype=np.float32)


def scaled_segments(image: np.ndarray, n_segments: int, reference_size: int) -> np.ndarray:
    """SLIC superpixels (scikit-image; compactness 10, σ 1) with the study's count scaled
    by area: n = n_segments · (S / reference_size)², at least 4. image: uint8 [S, S, 3]."""
    from skimage.segmentation import slic  # lazy: scikit-image

    n = max(4, round(n_segments * (image.shape[0] / reference_size) ** 2))
    return slic(image, n_segments=n, compactness=10, sigma=1, start_label=0).astype(np.int32)
