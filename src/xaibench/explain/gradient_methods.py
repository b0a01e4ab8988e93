"""Adapters over zennit (LRP) and captum (DeepLIFT, Grad-CAM).

They attribute ``model.net`` on the *normalised* input, so relevance is not rescaled by
the normalisation, and return channel-summed maps on the pixel grid.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from xaibench.explain import register_method
from xaibench.models import last_conv_layer

# captum and zennit are imported inside the functions: they cost seconds at start-up.


# captum warns on every call that it set requires_grad / hooked the activations; both are expected.
warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
warnings.filterwarnings("ignore", message="Setting forward, backward hooks and attributes on non-linear")


def channel_sum(attribution: torch.Tensor) -> np.ndarray:
    return attribution.detach().sum(1).float().cpu().numpy().astype(np.float32)


@register_method("lrp")
def lrp_epsilon_alpha2beta1_flat(model, pixels, targets, seed=0, **_):
    """Layer-wise relevance propagation (Bach et al. 2015) with zennit's
    ``EpsilonAlpha2Beta1Flat`` composite: epsilon rule on dense layers, alpha=2/beta=1 on
    convolutions, flat rule on the first layer. Relevance starts as the target logit
    (one-hot output gradient)."""
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonAlpha2Beta1Flat

    x = model.normalize(pixels).detach().requires_grad_(True)
    with torch.enable_grad():
        with Gradient(model=model.net, composite=EpsilonAlpha2Beta1Flat()) as attributor:
            logits = model.net(x)
            grad_output = torch.zeros_like(logits)
            grad_output[torch.arange(len(targets)), targets] = 1.0
            _, relevance = attributor(x, grad_output * logits.detach())
    return channel_sum(relevance)


@register_method("deeplift")
def deeplift_zero_baseline(model, pixels, targets, seed=0, **_):
    """DeepLIFT (Shrikumar et al. 2017), captum ``DeepLift`` (Rescale rule) on the target
    logit, zero baseline on the network's (normalised) input, i.e. the training mean
    colour in pixel space."""
    from captum.attr import DeepLift

    x = model.normalize(pixels).detach().requires_grad_(True)
    attribution = DeepLift(model.net).attribute(x, baselines=torch.zeros_like(x), target=targets)
    return channel_sum(attribution)


@register_method("gradcam")
def gradcam_last_conv(model, pixels, targets, seed=0, **_):
    """Grad-CAM (Selvaraju et al. 2017) on the last conv layer: ReLU of the
    gradient-weighted channel sum, bilinearly upsampled to the image, divided by its max
    (so the map is in [0, 1]; an all-zero map stays zero)."""
    from captum.attr import LayerAttribution, LayerGradCam

    x = model.normalize(pixels).detach()
    cam = LayerGradCam(model.net, last_conv_layer(model.net)).attribute(x, target=targets, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, tuple(pixels.shape[-2:]), interpolate_mode="bilinear").clamp_min(0)
    peak = cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return channel_sum(cam / peak)


@register_method("ig")
def integrated_gradients(model, pixels, targets, seed=0, n_steps=50, **_):
    """Integrated Gradients (Sundararajan et al. 2017), captum ``IntegratedGradients``
    (Gauss-Legendre, ``n_steps``) on the target logit, zero baseline on the normalised
    input (the training mean colour)."""
    from captum.attr import IntegratedGradients

    x = model.normalize(pixels).detach()
    attribution = IntegratedGradients(model.net).attribute(x, baselines=torch.zeros_like(x), target=targets,
                                                           n_steps=n_steps)
    return channel_sum(attribution)


def _captum_on_normalised(class_name: str, model, pixels, targets, **kwargs):
    import captum.attr

    x = model.normalize(pixels).detach().requires_grad_(True)
    method = getattr(captum.attr, class_name)(model.net)
    return channel_sum(method.attribute(x, target=targets, **kwargs))


@register_method("saliency")
def saliency(model, pixels, targets, seed=0, **_):
    """Saliency (Simonyan et al. 2014): |∂ output_target / ∂ input|, captum ``Saliency``."""
    return _captum_on_normalised("Saliency", model, pixels, targets)


@register_method("deconvolution")
def deconvolution(model, pixels, targets, seed=0, **_):
    """Deconvolution (Zeiler & Fergus 2014): ReLUs pass only positive output gradients,
    captum ``Deconvolution``."""
    return _captum_on_normalised("Deconvolution", model, pixels, targets)


@register_method("input_x_gradient")
def input_x_gradient(model, pixels, targets, seed=0, **_):
    """Input x Gradient (Shrikumar et al. 2016) on the normalised input, captum ``InputXGradient``."""
    return _captum_on_normalised("InputXGradient", model, pixels, targets)


@register_method("guided_backprop")
def guided_backprop(model, pixels, targets, seed=0, **_):
    """Guided Backpropagation (Springenberg et al. 2015), captum ``GuidedBackprop``."""
    return _captum_on_normalised("GuidedBackprop", model, pixels, targets)


@register_method("integrated_gradients")
def integrated_gradients_long_name(model, pixels, targets, seed=0, n_steps=50, **_):
    """The GAD study's name for :func:`integrated_gradients` (same computation)."""
    return integrated_gradients(model, pixels, targets, n_steps=n_steps)
