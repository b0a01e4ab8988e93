"""Model registry: builders keyed by the names used in ``params.yaml`` (``studies.*.model``).

Every builder returns a plain ``nn.Module`` that maps *normalised* images
[N, 3, H, W] to class logits [N, C]. :class:`NormalizedClassifier` puts the
normalisation in front so that perturbation code can work on [0, 1] pixels, while
gradient and LRP methods use ``.net`` on the normalised input.
"""

from __future__ import annotations

import torch
from torch import nn

from xaibench.atomic import atomic_path
from xaibench.models.external import build_external, is_external, torch_load
from xaibench.models.registry import MODELS, register_model  # noqa: F401

# each module registers its builders when imported
from xaibench.models import cnn, senn, torchvision_models  # noqa: F401  isort:skip


class NormalizedClassifier(nn.Module):
    """``net((x - mean) / std)``: takes [N, 3, H, W] pixels in [0, 1], returns logits."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.mean) / self.std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        inputs = self.normalize(pixels)
        if inputs.dim() == 4 and (self.training or not torch.is_grad_enabled()):
            # Scoring passes (perturbation metrics, LIME, SHAP) run channels-last: oneDNN's
            # convolutions are 2-3x faster so on the CPU for the small twin CNNs (benchmarks/
            # bench_channels_last.py); so do training steps (forward and backward, batch 32: the
            # cats-vs-dogs CNN 1.37x, VGG16/4 1.20x, InceptionV3 and ResNet50 1.15x, ResNet18 1.0x).
            # Explanations' gradient passes (eval mode) keep the default layout that captum and zennit expect.
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.net(inputs)


@torch.no_grad()
def predict_proba(model: nn.Module, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Softmax probabilities [N, C] of ``model`` on [0, 1] pixels [N, 3, H, W], ``batch_size``
    images at a time (with the models: explaining needs it, training need not be imported)."""
    model.eval()
    return torch.cat([model(chunk).softmax(-1) for chunk in pixels.split(batch_size)])


def build_model(name: str, num_classes: int, image_size: int, **options) -> nn.Module:
    """The registered builder ``name``, or a ``torchvision:``/``timm:`` model by name
    (:mod:`xaibench.models.external`; ``options``: ``weights``)."""

    if is_external(name):
        return build_external(name, num_classes, image_size, **options)
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](num_classes=num_classes, image_size=image_size, **options)


def last_conv_layer(net: nn.Module) -> nn.Conv2d:
    """The last ``nn.Conv2d`` in module order (the Grad-CAM layer)."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("model has no Conv2d layer for Grad-CAM")
    return convs[-1]


def save_model(path, model: NormalizedClassifier, name: str, num_classes: int, image_size: int,
               options: dict | None = None) -> None:
    """Save weights with what rebuilds the architecture (``options``: builder keywords)."""

    with atomic_path(path) as tmp:
        torch.save({"name": name, "num_classes": num_classes, "image_size": image_size, "options": options or {},
                    "mean": model.mean.flatten().tolist(),
                    "std": model.std.flatten().tolist(), "state_dict": model.state_dict()}, tmp)


def load_model(path) -> NormalizedClassifier:
    """Rebuild a saved :class:`NormalizedClassifier` in eval mode.

    The architecture is built on the meta device and the checkpoint's tensors are assigned
    to it (made contiguous, as copying them into a built model would leave them): the
    builder's weight initialisation, overwritten at once, is not run. It is most of a load
    for VGG16, whose torchvision constructor initialises a 120M-parameter head before the
    builder replaces it (2.4 s per load here, 0.02 s on meta). An architecture that keeps a
    tensor outside its state dict, or cannot be built on meta, is built the usual way."""

    checkpoint = torch_load(path)
    args = (checkpoint["name"], checkpoint["num_classes"], checkpoint["image_size"])
    options = checkpoint.get("options", {})
    state = {key: value.contiguous() for key, value in checkpoint["state_dict"].items()}
    try:
        with torch.device("meta"):
            net = build_model(*args, **options)
        model = NormalizedClassifier(net, checkpoint["mean"], checkpoint["std"])
        model.load_state_dict(state, assign=True)
        on_meta = any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    except Exception:  # noqa: BLE001  the usual build below raises what is really wrong
        on_meta = True  # a builder that computes with its tensors (or loads weights) while building
    if on_meta:
        model = NormalizedClassifier(build_model(*args, **options), checkpoint["mean"], checkpoint["std"])
        model.load_state_dict(state)
    return model.eval()

