"""The cats-vs-dogs study's CNN: a plain conv stack, LRP- and Grad-CAM-friendly.

Four blocks of Conv3x3 -> ReLU -> MaxPool2 (16, 32, 64, 64 channels), then
Flatten -> Linear(64*(S/16)^2, 128) -> ReLU -> Dropout -> Linear(128, classes) for S px
inputs (S = 128 in the study). Separate ReLU instances (DeepLIFT needs them), no BatchNorm (zennit's rules
apply without a canonizer); the last Conv2d is the Grad-CAM layer.
"""

from __future__ import annotations

from torch import nn

from xaibench.models.registry import register_model


@register_model("catsdogs_cnn")
def catsdogs_cnn(num_classes: int, image_size: int, widths=(16, 32, 64, 64)) -> nn.Sequential:
    if image_size % 2 ** len(widths):
        raise ValueError(f"catsdogs_cnn needs an image size divisible by {2 ** len(widths)}, got {image_size}")
    layers: list[nn.Module] = []
    channels = 3
    for width in widths:
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        channels = width
    side = image_size // 2 ** len(widths)
    return nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(channels * side * side, 128),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(128, num_classes),
    )
