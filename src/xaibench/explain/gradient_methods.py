"""Adapters over zennit (LRP) and captum (DeepLIFT, Integrated Gradients, gradients).

They attribute ``model.net`` on the *normalised* input, so relevance is not rescaled by
the normalisation, and return channel-summed maps on the pixel grid. The propagation
methods run on a rewritten ``torch.fx`` graph of the net (:mod:`xaibench.explain.graph`),
so that their library's per-module rules see every operation, and refuse a net with an
operation they have no rule for.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from xaibench.explain.graph import (cached_rewrite, functional_to_modules, fuse_batch_norms, separate_hooked_modules,
                                    sums_to_modules, trace, unsupported_operations)
from xaibench.explain.registry import register_method
from xaibench.schema import Strict

# captum and zennit are imported inside the functions: they cost seconds at start-up.


# captum warns on every call that it set requires_grad / hooked the activations; both are expected.
warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
warnings.filterwarnings("ignore", message="Setting forward, backward hooks and attributes on non-linear")


def channel_sum(attribution: torch.Tensor) -> np.ndarray:
    return attribution.detach().sum(1).float().cpu().numpy().astype(np.float32)


def _own_modules(net: nn.Module):
    """``net`` traced with a module per ReLU / pooling call (:func:`functional_to_modules`),
    each ReLU with an input tensor of its own (:func:`separate_hooked_modules`): captum's
    Guided Backprop and Deconvolution hook ReLU modules as its DeepLIFT does."""
    return cached_rewrite(net, "own_modules",
                          lambda n: separate_hooked_modules(functional_to_modules(trace(n)), (nn.ReLU,)))


# --- LRP (zennit) --------------------------------------------------------------------------

def _zennit_activation(module) -> bool:
    from zennit.types import Activation  # lazy: zennit

    return isinstance(module, nn.Module) and isinstance(module, Activation)


def lrp_refuses(net: nn.Module, image_size=None, options=None) -> str | None:
    """zennit's composites have rules for linear layers, (merged) batch norms, pooling, sums
    and element-wise activation *modules* (``Pass``, the identity rule); none for a product
    of two activations, a LayerNorm or attention."""
    missing = unsupported_operations(net, {"linear", "relu", "maxpool"},
                                     exceptions=[("activation", _zennit_activation)])
    return None if missing is None else (
        f"zennit's LRP composite has no rule for {missing}; use attnlrp (AttnLRP's rules for these "
        f"operations, Achtibat et al. 2024)")


def _lrp_graph(net: nn.Module):
    """Canonized for zennit: BatchNorms folded into their convolutions, a module per ReLU
    call, residual sums as zennit ``Sum`` layers (``Norm`` rule)."""
    from zennit.layer import Sum  # lazy: zennit

    return cached_rewrite(net, "lrp", lambda n: sums_to_modules(functional_to_modules(fuse_batch_norms(trace(n))), Sum))


@register_method("lrp", refuses=lrp_refuses, axiom="conservation")
def lrp_epsilon_alpha2beta1_flat(model, pixels, targets):
    """Layer-wise relevance propagation (Bach et al. 2015) with zennit's
    ``EpsilonAlpha2Beta1Flat`` composite: epsilon rule on dense layers, alpha=2/beta=1 on
    convolutions, flat rule on the first layer, ``Pass`` on activations and batch norms,
    ``Norm`` on sums and average pooling. Relevance starts as the target logit (one-hot
    output gradient times the logit), so Σ relevance ≈ the logit (conservation; biases
    absorb a part). The net is canonized first (:func:`_lrp_graph`, Motzkus et al. 2022):
    without it, torchvision's ResNets sum both branches' full relevance at every residual
    connection (Σ R / logit ≈ 250 on ResNet-18)."""
    from zennit.attribution import Gradient  # lazy: zennit
    from zennit.composites import EpsilonAlpha2Beta1Flat

    graph = _lrp_graph(model.net)
    x = model.normalize(pixels).detach().requires_grad_(True)
    with torch.enable_grad():
        with Gradient(model=graph, composite=EpsilonAlpha2Beta1Flat()) as attributor:
            logits = graph(x)
            grad_output = torch.zeros_like(logits)
            grad_output[torch.arange(len(targets)), targets] = 1.0
            _, relevance = attributor(x, grad_output * logits.detach())
    return channel_sum(relevance)


# --- DeepLIFT (captum) -----------------------------------------------------------------------

def _has_captum_rescale_multiplier(module) -> bool:
    """Whether captum's DeepLIFT has a multiplier for this activation. captum (0.7 s to import)
    is loaded only for a net with an activation other than ReLU: every stage checks the
    params, most never explain."""
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR  # lazy: captum

    return isinstance(module, tuple(SUPPORTED_NON_LINEAR))


def deeplift_refuses(net: nn.Module, image_size=None, options=None) -> str | None:
    """captum's DeepLIFT (Rescale rule) has multipliers for linear layers and for the
    element-wise nonlinearities in ``SUPPORTED_NON_LINEAR`` (ReLU, ELU, LeakyReLU, sigmoid,
    tanh, softplus, max pooling); any other operation gets the plain gradient, and the
    summation-to-delta property fails (ConvNeXt: 100 % error)."""
    missing = unsupported_operations(net, {"linear", "relu", "maxpool"},
                                     exceptions=[("activation", _has_captum_rescale_multiplier)])
    return None if missing is None else (
        f"DeepLIFT's Rescale rule (Shrikumar et al. 2017), as captum implements it, covers linear layers and "
        f"element-wise ReLU / sigmoid / tanh / ELU / softplus / max pooling; this net also has {missing}")


@register_method("deeplift", refuses=deeplift_refuses, axiom="completeness")
def deeplift_zero_baseline(model, pixels, targets):
    """DeepLIFT (Shrikumar et al. 2017), captum ``DeepLift`` (Rescale rule) on the target
    logit, zero baseline on the network's (normalised) input, i.e. the training mean
    colour in pixel space. Summation-to-delta: Σ map = f(x) − f(x₀). The net is traced
    and rewritten first (:func:`_deeplift_graph`): captum keeps one input per ReLU module,
    and torchvision's ResNet blocks call one ReLU module two or three times."""
    from captum.attr import DeepLift  # lazy: captum

    x = model.normalize(pixels).detach().requires_grad_(True)
    with _exact_max_pooling():
        attribution = DeepLift(_deeplift_graph(model.net)).attribute(x, baselines=torch.zeros_like(x), target=targets)
    return channel_sum(attribution)


def _routed(values: torch.Tensor, indices: torch.Tensor, shape) -> torch.Tensor:
    """Sum ``values`` [N, C, h, w] into zeros of ``shape`` [N, C, H, W] at max-pooling ``indices``
    (accumulating: with overlapping windows one input can be the maximum of several)."""
    out = torch.zeros(shape[0], shape[1], shape[2] * shape[3], dtype=values.dtype, device=values.device)
    out.scatter_add_(2, indices.flatten(2), values.flatten(2))
    return out.view(shape)


def maxpool2d_multipliers(module, inputs, outputs, grad_input, grad_output, eps=1e-10):
    """DeepLIFT's multipliers through ``nn.MaxPool2d``, captum's rule with two faults mended.
    As in captum, each window's Δy = y − y₀ is split at m = max(y, y₀): m − y₀ goes to the
    input's arg-max, y − m to the reference's, each divided by that position's Δx. Captum
    0.9 writes the split with ``max_unpool2d``, which *assigns* (an input that is the
    maximum of several overlapping windows keeps one share: ResNet's 3x3 / stride 2 stem
    pool), and adds the reference half's routed gradient, whose sign is the opposite, to
    the input half's (and falls back to ``grad_input[0]``, captum #1276). Here shares are
    summed and each half routes its own gradient: Σ multiplier·Δx = Σ_windows g·Δy."""
    with torch.no_grad():
        x, reference = inputs.chunk(2)
        y, y_reference = outputs.chunk(2)
        _, indices = F.max_pool2d(inputs, module.kernel_size, module.stride, module.padding, module.dilation,
                                  module.ceil_mode, True)
        at_input, at_reference = indices.chunk(2)
        split = torch.max(y, y_reference)
        delta = x - reference
        halves = []
        for gradient, fallback in zip(grad_output.chunk(2), grad_input.chunk(2)):
            routed = _routed(gradient * (split - y_reference), at_input, x.shape) + \
                _routed(gradient * (y - split), at_reference, x.shape)
            halves.append(torch.where(delta.abs() < eps, fallback, routed / delta))
    return torch.cat(halves)


@contextmanager
def _exact_max_pooling():
    """captum's DeepLIFT with :func:`maxpool2d_multipliers` for ``nn.MaxPool2d`` (restored after)."""
    from captum.attr._core import deep_lift  # lazy: captum

    original = deep_lift.SUPPORTED_NON_LINEAR[nn.MaxPool2d]
    deep_lift.SUPPORTED_NON_LINEAR[nn.MaxPool2d] = maxpool2d_multipliers
    try:
        yield
    finally:
        deep_lift.SUPPORTED_NON_LINEAR[nn.MaxPool2d] = original


def _deeplift_graph(net: nn.Module):
    """A module per ReLU / pooling call, each hooked module with an input tensor of its own
    (:func:`separate_hooked_modules`: captum loses the other users' gradients of a shared one)."""
    from captum.attr._core.deep_lift import SUPPORTED_NON_LINEAR  # lazy: captum

    return cached_rewrite(net, "deeplift", lambda n: separate_hooked_modules(functional_to_modules(trace(n)),
                                                                            tuple(SUPPORTED_NON_LINEAR)))


# --- Integrated Gradients and plain gradients (any differentiable net) ----------------------

class IntegratedGradientsParams(Strict):
    """``n_steps``: the Gauss-Legendre points of the path integral."""

    n_steps: int = Field(50, ge=2)


@register_method("ig", options=IntegratedGradientsParams, axiom="completeness")
def integrated_gradients(model, pixels, targets, options: IntegratedGradientsParams):
    """Integrated Gradients (Sundararajan et al. 2017), captum ``IntegratedGradients``
    (Gauss-Legendre, ``n_steps``) on the target logit, zero baseline on the normalised
    input (the training mean colour). Completeness: Σ map = f(x) − f(x₀), up to the
    quadrature error of ``n_steps`` steps."""
    from captum.attr import IntegratedGradients  # lazy: captum

    x = model.normalize(pixels).detach()
    attribution = IntegratedGradients(model.net).attribute(x, baselines=torch.zeros_like(x), target=targets,
                                                           n_steps=options.n_steps)
    return channel_sum(attribution)


def _captum_on_normalised(class_name: str, net, model, pixels, targets, **kwargs):
    import captum.attr  # lazy: captum

    x = model.normalize(pixels).detach().requires_grad_(True)
    method = getattr(captum.attr, class_name)(net)
    return channel_sum(method.attribute(x, target=targets, **kwargs))


def relu_backward_refuses(net: nn.Module, image_size=None, options=None) -> str | None:
    """Guided Backpropagation and Deconvolution change how gradients pass ReLUs (captum
    hooks ``nn.ReLU`` modules); through any other nonlinearity they would pass the plain
    gradient, which is another method."""
    missing = unsupported_operations(net, {"linear", "relu", "maxpool", "product"})
    return None if missing is None else (
        f"Guided Backpropagation / Deconvolution are defined for ReLU networks (Springenberg et al. 2015; "
        f"Zeiler & Fergus 2014); this net has {missing}")


@register_method("saliency")
def saliency(model, pixels, targets):
    """Saliency (Simonyan et al. 2014): |∂ output_target / ∂ input|, captum ``Saliency``."""
    return _captum_on_normalised("Saliency", model.net, model, pixels, targets)


@register_method("deconvolution", refuses=relu_backward_refuses)
def deconvolution(model, pixels, targets):
    """Deconvolution (Zeiler & Fergus 2014): ReLUs pass only positive output gradients,
    captum ``Deconvolution`` (on a graph with a module per ReLU call)."""
    return _captum_on_normalised("Deconvolution", _own_modules(model.net), model, pixels, targets)


@register_method("input_x_gradient")
def input_x_gradient(model, pixels, targets):
    """Input x Gradient (Shrikumar et al. 2016) on the normalised input, captum ``InputXGradient``."""
    return _captum_on_normalised("InputXGradient", model.net, model, pixels, targets)


@register_method("guided_backprop", refuses=relu_backward_refuses)
def guided_backprop(model, pixels, targets):
    """Guided Backpropagation (Springenberg et al. 2015), captum ``GuidedBackprop`` (on a
    graph with a module per ReLU call)."""
    return _captum_on_normalised("GuidedBackprop", _own_modules(model.net), model, pixels, targets)


@register_method("integrated_gradients", options=IntegratedGradientsParams, axiom="completeness")
def integrated_gradients_long_name(model, pixels, targets, options: IntegratedGradientsParams):
    """The GAD study's name for :func:`integrated_gradients` (same computation)."""
    return integrated_gradients(model, pixels, targets, options)
