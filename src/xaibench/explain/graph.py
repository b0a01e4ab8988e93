"""What a network computes, read from its ``torch.fx`` graph: which operations an
attribution method needs a rule for, and the graph rewrites that let a library's rules apply.

Propagation methods (DeepLIFT, LRP, AttnLRP, Guided Backprop) are defined operation by
operation; a library implements them as hooks on module *types* (captum, zennit), so an
operation the hooks never see (a functional ``F.relu``, a ReLU module called twice, a
residual ``+``, a LayerNorm, a product of two activations) silently falls back to the
plain gradient. Each node of the traced graph is put in one :data:`CATEGORIES` class; a
method states the categories it has a rule for (:func:`unsupported_operations`), and one
outside them is refused by name before any stage runs.

The net is traced in eval mode (dropout and stochastic depth vanish). Nodes that do not
depend on the input image (position embeddings, constants) are ``constant``: any rule holds.
"""

from __future__ import annotations

import copy
import math
import operator
import weakref
from collections import Counter

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

# What each operation is, for a propagation rule.
CATEGORIES = {
    "linear": "an affine or index operation (convolution, linear, batch norm, pooling by average, sum, "
              "concatenation, reshape)",
    "relu": "a ReLU",
    "maxpool": "max pooling",
    "activation": "an element-wise nonlinearity other than ReLU (GELU, SiLU, sigmoid, hardswish, ...)",
    "product": "a product of two activations (squeeze-excite gate, attention matmul)",
    "layernorm": "a layer normalisation (divides by the input's own spread)",
    "softmax": "a softmax (attention weights)",
    "attention": "a fused attention block (nn.MultiheadAttention, scaled_dot_product_attention)",
    "other": "an operation with no category here",
}

LINEAR_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d,
                  nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                  nn.AdaptiveAvgPool3d, nn.Dropout, nn.Dropout2d, nn.Identity, nn.Flatten, nn.ZeroPad2d)
MAXPOOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool2d)
ACTIVATION_MODULES = (nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.ELU, nn.LeakyReLU,
                      nn.Softplus, nn.Mish, nn.ReLU6, nn.Hardtanh, nn.SELU, nn.CELU, nn.PReLU)
LAYERNORM_MODULES = (nn.LayerNorm,)

LINEAR_FUNCTIONS = {operator.add, operator.sub, operator.neg, operator.getitem, operator.floordiv, operator.mod,
                    operator.eq, getattr, torch.add, torch.sub, torch.cat, torch.stack, torch.flatten, torch.reshape,
                    torch.transpose, torch.permute, torch.roll, torch.narrow, torch.chunk, torch.split, torch.unbind,
                    torch.squeeze, torch.unsqueeze, torch.mean, torch.sum, F.adaptive_avg_pool2d, F.avg_pool2d,
                    F.dropout, F.pad, F.interpolate, torch._assert}
LINEAR_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "size", "dim", "expand",
                  "expand_as", "mean", "sum", "unbind", "chunk", "split", "squeeze", "unsqueeze", "repeat", "add",
                  "sub", "to", "type_as", "clone", "narrow", "__getitem__"}
RELU_FUNCTIONS = {F.relu, torch.relu}
MAXPOOL_FUNCTIONS = {F.max_pool2d, torch.max_pool2d}
ACTIVATION_FUNCTIONS = {F.gelu, F.silu, torch.sigmoid, F.sigmoid, torch.tanh, F.hardswish, F.hardsigmoid, F.elu,
                        F.leaky_relu, F.softplus, F.mish, F.relu6}
ACTIVATION_METHODS = {"sigmoid", "tanh", "relu"}
PRODUCT_FUNCTIONS = {operator.mul, torch.mul, operator.matmul, torch.matmul, torch.bmm, torch.einsum,
                     operator.truediv, torch.div}
PRODUCT_METHODS = {"mul", "matmul", "div", "__mul__"}
SOFTMAX_FUNCTIONS = {F.softmax, torch.softmax}


class Untraceable(ValueError):
    """A net ``torch.fx`` cannot trace: its operations cannot be checked."""


def trace(net: nn.Module) -> fx.GraphModule:
    """The eval-mode ``torch.fx`` graph of ``net`` (submodules shared with ``net``, not copied)."""
    training = net.training
    net.eval()
    try:
        return fx.symbolic_trace(net)
    except Exception as error:  # fx raises many types (TraceError, TypeError on data-dependent control flow)
        message = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise Untraceable(f"torch.fx cannot trace {type(net).__name__} ({type(error).__name__}: {message}), so "
                          f"its operations cannot be checked against the method's rules") from None
    finally:
        net.train(training)


def _input_dependent(graph: fx.Graph, cuts=()) -> set[fx.Node]:
    """Nodes whose value depends on the input image (the first placeholder), through any op
    but a call of a function in ``cuts`` (a stop-gradient: its output counts as constant)."""
    dependent: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder":
            if not dependent:
                dependent.add(node)
        elif node.op != "get_attr" and not (node.op == "call_function" and node.target in cuts) \
                and not _is_metadata(node) and any(arg in dependent for arg in node.all_input_nodes):
            dependent.add(node)
    return dependent


def _is_metadata(node: fx.Node) -> bool:
    """A tensor's shape, size or dtype (and arithmetic on them is not on the image)."""
    if node.op == "call_method" and node.target in ("size", "dim"):
        return True
    return node.op == "call_function" and node.target is getattr and len(node.args) > 1 and \
        node.args[1] in ("shape", "dtype", "device", "ndim")


def _category(gm: fx.GraphModule, node: fx.Node, dependent: set[fx.Node]) -> str | None:
    """The :data:`CATEGORIES` key of ``node``; None for a node with no computation on the input."""
    if node.op in ("placeholder", "output", "get_attr") or node not in dependent:
        return None
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        for kinds, category in ((LINEAR_MODULES, "linear"), ((nn.ReLU,), "relu"), (MAXPOOL_MODULES, "maxpool"),
                                (ACTIVATION_MODULES, "activation"), (LAYERNORM_MODULES, "layernorm"),
                                ((nn.Softmax,), "softmax"), ((nn.MultiheadAttention,), "attention")):
            if isinstance(module, kinds):
                return category
        return "other"
    target = node.target
    two_inputs = sum(arg in dependent for arg in node.all_input_nodes) >= 2
    if node.op == "call_function":
        if target in (operator.truediv, torch.div) and len(node.args) > 1 and node.args[1] in dependent:
            return "other"  # division by an activation
        if target in PRODUCT_FUNCTIONS:
            return "product" if two_inputs else "linear"
        for functions, category in ((LINEAR_FUNCTIONS, "linear"), (RELU_FUNCTIONS, "relu"),
                                    (MAXPOOL_FUNCTIONS, "maxpool"), (ACTIVATION_FUNCTIONS, "activation"),
                                    (SOFTMAX_FUNCTIONS, "softmax"), ({F.layer_norm}, "layernorm"),
                                    ({F.scaled_dot_product_attention}, "attention")):
            if target in functions:
                return category
        if getattr(target, "__name__", "") == "stochastic_depth":  # torchvision.ops: identity in eval mode
            return "linear"
        return "other"
    if target in PRODUCT_METHODS:
        return "product" if two_inputs else "linear"
    if target in LINEAR_METHODS:
        return "linear"
    if target == "softmax":
        return "softmax"
    if target in ACTIVATION_METHODS:
        return "relu" if target == "relu" else "activation"
    return "other"


def _describe(gm: fx.GraphModule, node: fx.Node) -> str:
    if node.op == "call_module":
        return f"{type(gm.get_submodule(node.target)).__name__} ({node.target})"
    return f"{getattr(node.target, '__name__', node.target)} ({node.name})"


def categorised(gm: fx.GraphModule, cuts=()) -> list[tuple[fx.Node, str]]:
    """(node, category) of every node that computes on the input, in graph order
    (``cuts``: see :func:`_input_dependent`)."""
    dependent = _input_dependent(gm.graph, cuts)
    return [(node, category) for node in gm.graph.nodes
            if (category := _category(gm, node, dependent)) is not None]


def unsupported_operations(net: nn.Module, handled: set[str], exceptions=()) -> str | None:
    """None if every input-dependent operation of ``net`` is in a ``handled`` category; else
    what is not, as one line: counts per category with the first example of each.
    ``exceptions``: (category, predicate(module or function)) pairs also accepted. A net
    ``torch.fx`` cannot trace is not checked: the reason says so."""
    try:
        gm = trace(net)
    except Untraceable as error:
        return f"operations it cannot read: {error}"
    missing: Counter = Counter()
    examples: dict[str, str] = {}
    for node, category in categorised(gm):
        if category in handled:
            continue
        target = gm.get_submodule(node.target) if node.op == "call_module" else node.target
        if any(category == c and accept(target) for c, accept in exceptions):
            continue
        missing[category] += 1
        examples.setdefault(category, _describe(gm, node))
    if not missing:
        return None
    return "; ".join(f"{count} × {CATEGORIES[c].split(' (')[0]} (e.g. {examples[c]})" for c, count in missing.items())


# --- rewrites -----------------------------------------------------------------------------

def _fresh_name(gm: fx.GraphModule, stem: str) -> str:
    names = dict(gm.named_modules())
    index = 0
    while f"{stem}_{index}" in names:
        index += 1
    return f"{stem}_{index}"


def as_module(gm: fx.GraphModule, node: fx.Node, module: nn.Module, stem: str, keep_arguments=False) -> None:
    """Make ``node`` a call of ``module`` (added to ``gm``): on the node's first argument
    alone, or (``keep_arguments``) on all of them."""
    name = _fresh_name(gm, stem)
    gm.add_submodule(name, module)
    node.op, node.target = "call_module", name
    if not keep_arguments:
        node.args, node.kwargs = (node.args[0],), {}


def insert_after(gm: fx.GraphModule, node: fx.Node, function, *extra) -> fx.Node:
    """Put ``function(node, *extra)`` after ``node`` and make every other user of ``node`` read it."""
    with gm.graph.inserting_after(node):
        new = gm.graph.call_function(function, (node, *extra))
    node.replace_all_uses_with(new, delete_user_cb=lambda user: user is not new)
    return new


def functional_to_modules(gm: fx.GraphModule) -> fx.GraphModule:
    """Give every ReLU and pooling its own module, so that hooks keyed on module types
    (captum's DeepLIFT and Guided Backprop, zennit's rules) see every use: a functional
    ``F.relu`` / ``F.max_pool2d`` / ``F.avg_pool2d`` becomes a module, and a
    ReLU or max pooling module called at several places (torchvision's ResNet blocks call
    ``self.relu`` two or three times) gets a copy per call. Same outputs (tested)."""
    seen: set[str] = set()
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target in RELU_FUNCTIONS:
            as_module(gm, node, nn.ReLU(), "relu_call")
        elif node.op == "call_function" and node.target in MAXPOOL_FUNCTIONS:
            names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
            options = dict(zip(names, node.args[1:]), **node.kwargs)
            options.pop("return_indices", None)
            as_module(gm, node, nn.MaxPool2d(**options), "maxpool_call")
        elif node.op == "call_function" and node.target is F.avg_pool2d:
            names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
            as_module(gm, node, nn.AvgPool2d(**dict(zip(names, node.args[1:]), **node.kwargs)), "avgpool_call")
        elif node.op == "call_module" and isinstance(gm.get_submodule(node.target), (nn.ReLU, *MAXPOOL_MODULES)):
            if node.target in seen:
                module = copy.deepcopy(gm.get_submodule(node.target))
                name = _fresh_name(gm, node.target.replace(".", "_") + "_call")
                gm.add_submodule(name, module)
                node.target = name
            seen.add(node.target)
    for module in gm.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    gm.graph.lint()
    gm.recompile()
    return gm


def separate_hooked_modules(gm: fx.GraphModule, kinds: tuple) -> fx.GraphModule:
    """Give each module of ``kinds`` an input tensor of its own: a ``clone()`` before it
    when its input also feeds another operation (an Inception block's max-pooling branch
    beside its convolutions) or is a hooked module's output (a ReLU feeding a max pooling).
    captum 0.9's DeepLIFT replaces the gradient *of the input tensor* by its multipliers,
    so the other users' gradients through a shared tensor are lost: on GoogLeNet every
    attribution was 0 past its second Inception block; on Conv -> ReLU -> MaxPool -> Linear
    Σ attributions was -0.166 for f(x) - f(x₀) = -0.202. Exact (to 1e-7) with the clones;
    a clone changes no value and no gradient."""
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), kinds):
            continue
        for argument in node.all_input_nodes:
            shared = len(argument.users) > 1
            chained = argument.op == "call_module" and isinstance(gm.get_submodule(argument.target), kinds)
            if shared or chained:
                with gm.graph.inserting_before(node):
                    copied = gm.graph.call_method("clone", (argument,))
                node.replace_input_with(argument, copied)
    gm.graph.lint()
    gm.recompile()
    return gm


def sums_to_modules(gm: fx.GraphModule, make_sum) -> fx.GraphModule:
    """Every ``a + b`` of two input-dependent tensors (a residual connection) becomes
    ``make_sum()(torch.stack([a, b], -1))``, e.g. zennit's ``Sum`` layer, which its
    composites give the ``Norm`` rule: the relevance of the sum is split between the
    branches in proportion to their contributions (zennit's ``ResNetCanonizer`` does this
    for torchvision's ResNet blocks alone)."""
    dependent = _input_dependent(gm.graph)
    for node in list(gm.graph.nodes):
        if not (node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add)
                and len(node.args) == 2 and all(arg in dependent for arg in node.args) and not node.kwargs):
            continue
        with gm.graph.inserting_before(node):
            stacked = gm.graph.call_function(torch.stack, (list(node.args), -1))
        name = _fresh_name(gm, "residual_sum")
        gm.add_submodule(name, make_sum())
        node.op, node.target, node.args = "call_module", name, (stacked,)
    gm.graph.lint()
    gm.recompile()
    return gm


def fuse_batch_norms(gm: fx.GraphModule) -> fx.GraphModule:
    """A copy of ``gm`` with every BatchNorm that directly follows a convolution folded into
    it (``torch.fx.experimental.optimization.fuse``; zennit's canonizers do the same for
    ``nn.Sequential`` pairs only): the LRP rules then see one affine layer, as the
    canonization of Motzkus et al. (2022) prescribes."""
    from torch.fx.experimental.optimization import fuse  # lazy: torch.fx's optimiser

    return fuse(gm.eval(), inplace=False)


def patch_grid(tokens: int, prefix: int, height: int, width: int) -> tuple[int, int]:
    """The (rows, columns) of the patch grid behind ``tokens - prefix`` patch tokens of an
    image of ``height`` x ``width`` pixels (square patches)."""
    patches = tokens - prefix
    side = math.sqrt(patches * height / width)
    rows = max(1, round(side))
    if patches % rows:
        raise ValueError(f"{patches} patch tokens do not form a grid for a {height}x{width} image")
    return rows, patches // rows


# --- a cache: the rewritten graph of a net, while its weights are the same ----------------

_REWRITES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _weights_state(net: nn.Module) -> tuple:
    """Changes when any parameter or buffer is replaced or modified in place (the
    randomisation test re-initialises layers in place: tensor version counters move)."""
    return tuple((id(t), t._version) for t in (*net.parameters(), *net.buffers()))


def cached_rewrite(net: nn.Module, key: str, rewrite) -> fx.GraphModule:
    """``rewrite(net)``, computed once per (net, key) while ``net``'s weights stay the same."""
    entries = _REWRITES.setdefault(net, {})
    state = _weights_state(net)
    if key not in entries or entries[key][0] != state:
        entries[key] = (state, rewrite(net))
    return entries[key][1]
