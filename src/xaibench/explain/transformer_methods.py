"""Methods for attention models: AttnLRP, attention rollout, gradient-weighted rollout.

* ``attnlrp``: AttnLRP (Achtibat et al. 2024, "AttnLRP: Attention-Aware Layer-wise
  Relevance Propagation for Transformers", ICML), with the rules of the ``lxt`` package in
  its Gradient x Input form (lxt's "efficient" implementation: relevance = input x
  modified gradient): the identity rule on element-wise nonlinearities (eq. 9; GELU, SiLU,
  sigmoid, ...), the identity rule on LayerNorm (its spread is held constant), the uniform
  rule on a product of two activations (eq. 7: each factor gets half), and, inside
  attention, lxt's choice for vision transformers: CP-LRP (Ali et al. 2022), the attention
  weights held constant, so relevance flows through the values. Linear layers get the
  epsilon rule (ε → 0, the plain gradient). lxt patches classes in place for the whole
  process (``monkey_patch``); here the rules are put on a ``torch.fx`` copy of the graph
  instead, so no other method in the process sees them. The rules apply to CNNs too
  (on a ReLU network AttnLRP is Gradient x Input); conservation: Σ R = f(x) minus what
  biases and position embeddings absorb.
* ``attention_rollout`` (Abnar & Zuidema 2020, "Quantifying attention flow in
  transformers", ACL): the product over blocks of (head-mean attention + identity)/2,
  rows renormalised; the map is the class token's row over the patch tokens. It does not
  depend on the explained class.
* ``gradient_rollout`` (Chefer, Gur & Wolf 2021, "Generic attention-model explainability
  for interpreting bi-modal and encoder-decoder transformers", ICCV, eq. 5-6): R = I,
  then per block R += mean_heads[(∇A ⊙ A)⁺] R, ∇A the gradient of the target logit;
  the map is the class token's row of R over the patch tokens.

The two rollouts need global self-attention with a class token: timm's and torchvision's
ViT / DeiT. A Swin's window attention is refused.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from xaibench.explain.gradcam import _family, _prefix_tokens
from xaibench.explain.graph import (as_module, cached_rewrite, categorised, insert_after, patch_grid, trace,
                                    unsupported_operations)
from xaibench.explain.registry import register_method

# lxt (which imports transformers: about 5 s) is imported inside the rules' functions.


def stop_gradient(x: torch.Tensor) -> torch.Tensor:
    """lxt's ``stop_gradient`` (CP-LRP): the value passes, the relevance does not."""
    from lxt.efficient.rules import stop_gradient as lxt_stop_gradient  # lazy: lxt

    return lxt_stop_gradient(x)


def divide_gradient(x: torch.Tensor, factor: int) -> torch.Tensor:
    """lxt's ``divide_gradient``: AttnLRP's uniform rule (eq. 7) on a product of ``factor`` activations."""
    from lxt.efficient.rules import divide_gradient as lxt_divide_gradient  # lazy: lxt

    return lxt_divide_gradient(x, factor)


class IdentityRule(nn.Module):
    """AttnLRP's identity rule (eq. 9) on an element-wise nonlinearity ``function``: lxt's
    ``identity_rule_implicit`` (the gradient becomes f(x)/x, so x·gradient = f(x)·upstream)."""

    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        from lxt.efficient.rules import identity_rule_implicit  # lazy: lxt

        return identity_rule_implicit(self.function, x)


def layer_norm_identity_rule(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """``F.layer_norm`` with the spread held constant (lxt's ``layer_norm_forward``, over
    any number of normalised dims): the identity rule on normalisation (AttnLRP sec. 3.3)."""
    dims = tuple(range(-len(normalized_shape), 0))
    mean = x.mean(dim=dims, keepdim=True)
    spread = ((x - mean) ** 2).mean(dim=dims, keepdim=True).add(eps).sqrt()
    y = (x - mean) / stop_gradient(spread)
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


class LayerNormIdentityRule(nn.Module):
    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x):
        return layer_norm_identity_rule(x, self.norm.normalized_shape, self.norm.weight, self.norm.bias, self.norm.eps)


class ConservativeAttention(nn.Module):
    """``nn.MultiheadAttention`` with CP-LRP: query and key detached (lxt's
    ``cp_multi_head_attention_forward``), so the attention weights are constants."""

    def __init__(self, attention: nn.MultiheadAttention):
        super().__init__()
        self.attention = attention

    def forward(self, query, key, value, *args, **kwargs):
        return self.attention(stop_gradient(query), stop_gradient(key), value, *args, **kwargs)


def conservative_attention(query, key, value, *args, **kwargs):
    """``F.scaled_dot_product_attention`` with CP-LRP (query and key detached)."""
    return F.scaled_dot_product_attention(stop_gradient(query), stop_gradient(key), value, *args, **kwargs)


ATTNLRP_CATEGORIES = {"linear", "relu", "maxpool", "activation", "product", "layernorm", "softmax", "attention"}


GATES = (nn.Sigmoid, nn.Hardsigmoid, nn.Softplus)


def attnlrp_refuses(net: nn.Module, image_size=None, options=None) -> str | None:
    """Refused: an operation outside :data:`ATTNLRP_CATEGORIES`; a sigmoid-like gate (the
    identity rule needs f(0) = 0: on EfficientNet's squeeze-excite sigmoid, f(x)/x at
    x ≈ 0 blew Σ R up to 1e28); a BatchNorm network (AttnLRP's ε-rule lets every bias
    absorb relevance: Σ R / logit of 35-150 on DenseNet / ResNet-50 with batch statistics;
    zennit's canonized ``lrp`` is the LRP for those)."""
    missing = unsupported_operations(net, ATTNLRP_CATEGORIES - {"activation"},
                                     exceptions=[("activation", lambda m: not isinstance(m, GATES)
                                                  and m not in (torch.sigmoid, F.sigmoid, F.hardsigmoid, F.softplus))])
    if missing:
        return f"AttnLRP (lxt's rules) has no rule for {missing}"
    norms = [name for name, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        return (f"AttnLRP's rules are for LayerNorm networks (transformers, ConvNeXt); this net has {len(norms)} "
                f"BatchNorm layers (e.g. {norms[0]}), whose shifts absorb most relevance under its ε-rule: use lrp")
    return None


def _elementwise(node) -> object:
    """The function a call_function / call_method node applies to its first argument."""
    if node.op == "call_method":
        return getattr(torch, node.target)
    return partial(node.target, *node.args[1:], **node.kwargs) if (node.args[1:] or node.kwargs) else node.target


def attnlrp_graph(net: nn.Module):
    """``net`` traced, with AttnLRP's rules on its nodes (see the module docstring)."""
    gm = trace(net)
    for node, category in categorised(gm):
        module = gm.get_submodule(node.target) if node.op == "call_module" else None
        if category == "activation":
            as_module(gm, node, IdentityRule(module if module is not None else _elementwise(node)), "identity_rule")
        elif category == "layernorm" and module is not None:
            as_module(gm, node, LayerNormIdentityRule(module), "layernorm_rule")
        elif category == "layernorm":
            node.target = layer_norm_identity_rule
        elif category == "attention" and module is not None:
            as_module(gm, node, ConservativeAttention(module), "attention_rule", keep_arguments=True)
        elif category == "attention":
            node.target = conservative_attention
        elif category == "softmax":
            insert_after(gm, node, stop_gradient)
    for node, category in categorised(gm, cuts={stop_gradient}):  # products of two activations still carrying relevance
        if category == "product":
            insert_after(gm, node, divide_gradient, 2)
    gm.graph.lint()
    gm.recompile()
    return gm


@register_method("attnlrp", refuses=attnlrp_refuses, axiom="conservation")
def attnlrp(model, pixels, targets):
    """AttnLRP: relevance = input x gradient of the target logit through
    :func:`attnlrp_graph`, on the normalised input, channel-summed."""
    graph = cached_rewrite(model.net, "attnlrp", attnlrp_graph)
    x = model.normalize(pixels).detach().requires_grad_(True)
    with torch.enable_grad():
        logits = graph(x)
        (gradient,) = torch.autograd.grad(logits[torch.arange(len(targets)), targets].sum(), x)
    return (x * gradient).detach().sum(1).float().cpu().numpy()


# --- attention maps of a ViT ---------------------------------------------------------------

def rollout_refuses(net: nn.Module, image_size=None, options=None) -> str | None:
    if _family(net) != "vit":
        return ("attention rollout needs global self-attention over one token sequence with a class token "
                f"(timm or torchvision ViT / DeiT); {type(net).__name__} has none"
                + (" (a Swin attends within windows)" if _family(net) == "swin" else ""))
    return None


def _attention_modules(net: nn.Module) -> list[nn.Module]:
    if hasattr(net, "blocks"):
        return [block.attn for block in net.blocks]
    return [layer.self_attention for layer in net.encoder.layers]


@contextmanager
def recorded_attention(net: nn.Module):
    """Yields a list that fills with each block's attention probabilities [N, heads, T, T]
    during a forward pass (timm: its unfused path, read at ``attn_drop``; torchvision:
    ``need_weights=True, average_attn_weights=False``), in the autograd graph."""
    probabilities: list[torch.Tensor] = []
    handles, fused = [], []
    keep = probabilities.append

    for attention in _attention_modules(net):
        if isinstance(attention, nn.MultiheadAttention):
            def ask_weights(module, args, kwargs):
                return args, {**kwargs, "need_weights": True, "average_attn_weights": False}

            handles.append(attention.register_forward_pre_hook(ask_weights, with_kwargs=True))
            handles.append(attention.register_forward_hook(lambda module, args, output: keep(output[1])))
        else:
            fused.append((attention, attention.fused_attn))
            attention.fused_attn = False
            handles.append(attention.attn_drop.register_forward_hook(lambda module, args, output: keep(output)))
    try:
        yield probabilities
    finally:
        for handle in handles:
            handle.remove()
        for attention, value in fused:
            attention.fused_attn = value


def _patch_map(rows: torch.Tensor, net: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """The class token's rollout row [N, T] over the patch tokens, as [N, H, W] pixels (bilinear)."""
    prefix = _prefix_tokens(net)
    height, width = pixels.shape[-2:]
    grid_rows, grid_cols = patch_grid(rows.shape[1], prefix, height, width)
    grid = rows[:, prefix:].reshape(len(rows), 1, grid_rows, grid_cols)
    return F.interpolate(grid.float(), size=(height, width), mode="bilinear", align_corners=False)[:, 0]


def rollout(probabilities: list[torch.Tensor]) -> torch.Tensor:
    """Abnar & Zuidema's rollout [N, T, T]: Π_l normalise((mean_h A_l + I) / 2), last block left-most."""
    result = None
    for attention in probabilities:
        mixed = attention.mean(1)
        mixed = 0.5 * mixed + 0.5 * torch.eye(mixed.shape[-1], dtype=mixed.dtype, device=mixed.device)
        mixed = mixed / mixed.sum(-1, keepdim=True)
        result = mixed if result is None else mixed @ result
    return result


@register_method("attention_rollout", refuses=rollout_refuses)
def attention_rollout(model, pixels, targets):
    """Attention rollout of the class token (class-agnostic: ``targets`` are not used)."""
    with torch.no_grad(), recorded_attention(model.net) as probabilities:
        model.net(model.normalize(pixels))
    return _patch_map(rollout(probabilities)[:, 0], model.net, pixels).cpu().numpy().astype("float32")


def gradient_weighted_rollout(probabilities: list[torch.Tensor], gradients: list[torch.Tensor]) -> torch.Tensor:
    """Chefer et al. (2021b) eq. 5-6: R = I; R ← R + mean_h[(∇A ⊙ A)⁺] R per block, in forward order."""
    first = probabilities[0]
    relevance = torch.eye(first.shape[-1], dtype=first.dtype, device=first.device).expand(len(first), -1, -1)
    for attention, gradient in zip(probabilities, gradients):
        weighted = (gradient * attention).clamp_min(0).mean(1)
        relevance = relevance + weighted @ relevance
    return relevance


def gradient_rollout_refuses(net: nn.Module, image_size=None, options=None) -> str | None:
    """Also refused: torchvision's ViT, whose ``nn.MultiheadAttention`` returns the attention
    weights beside its output, not as a step of it, so they have no gradient."""
    reason = rollout_refuses(net)
    if reason is None and not hasattr(net, "blocks"):
        reason = ("gradient-weighted rollout needs the attention probabilities inside the autograd graph: timm's "
                  "ViT / DeiT; torchvision's nn.MultiheadAttention computes its returned weights apart")
    return reason


@register_method("gradient_rollout", refuses=gradient_rollout_refuses)
def gradient_rollout(model, pixels, targets):
    """Gradient-weighted attention rollout (Chefer et al. 2021b) for the target class."""
    x = model.normalize(pixels).detach()
    with torch.enable_grad(), recorded_attention(model.net) as probabilities:
        logits = model.net(x)
        gradients = torch.autograd.grad(logits[torch.arange(len(targets)), targets].sum(), probabilities)
    with torch.no_grad():
        relevance = gradient_weighted_rollout([p.detach() for p in probabilities], gradients)
    return _patch_map(relevance[:, 0].detach(), model.net, pixels).cpu().numpy().astype("float32")
