"""Self-explaining neural network (Alvarez-Melis & Jaakkola 2018, "Towards Robust
Interpretability with Self-Explaining Neural Networks", NeurIPS).

    f(x) = g(θ(x), h(x)),   logits_c = Σ_k θ_ck(x) · h_k(x)

* conceptizer h: an autoencoder; its encoder maps x to k concepts h(x) ∈ R^k, its
  decoder reconstructs x from them (the reconstruction loss keeps concepts grounded);
* parameterizer θ: a deeper CNN giving k relevances per class, θ(x) ∈ R^{C×k};
* aggregator g: the linear sum above.

The explanation of class c for image x is the relevance vector θ_c(x) next to the
concept activations h(x).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from xaibench.models.registry import register_model


@dataclass
class SENNOutput:
    logits: torch.Tensor           # [N, C]
    concepts: torch.Tensor         # [N, k]     h(x)
    relevances: torch.Tensor       # [N, C, k]  θ(x)
    reconstruction: torch.Tensor   # like x


class SENN(nn.Module):
    """``conceptizer`` has ``encode(x) -> [N, k]`` and ``decode(h) -> x``;
    ``parameterizer(x) -> [N, C*k]``. ``forward`` returns the logits only, so SENN is a
    drop-in classifier; :meth:`explain` returns everything."""

    def __init__(self, conceptizer: nn.Module, parameterizer: nn.Module, num_classes: int, num_concepts: int):
        super().__init__()
        self.conceptizer = conceptizer
        self.parameterizer = parameterizer
        self.num_classes = num_classes
        self.num_concepts = num_concepts

    def relevances(self, x: torch.Tensor) -> torch.Tensor:
        return self.parameterizer(x).view(len(x), self.num_classes, self.num_concepts)

    def explain(self, x: torch.Tensor) -> SENNOutput:
        concepts = self.conceptizer.encode(x)
        relevances = self.relevances(x)
        logits = (relevances * concepts.unsqueeze(1)).sum(-1)
        return SENNOutput(logits, concepts, relevances, self.conceptizer.decode(concepts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        concepts = self.conceptizer.encode(x)
        return (self.relevances(x) * concepts.unsqueeze(1)).sum(-1)


class ConvConceptizer(nn.Module):
    """Conv autoencoder with a k-dimensional bottleneck, for S x S RGB images (S % 4 == 0)."""

    def __init__(self, num_concepts: int, image_size: int, width: int = 32):
        super().__init__()
        side = image_size // 4
        self.side, self.width = side, width
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width // 2, width, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(width * side * side, num_concepts),
        )
        self.decoder_input = nn.Linear(num_concepts, width * side * side)
        self.decoder = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(width // 2, 3, 4, stride=2, padding=1),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, concepts: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.decoder_input(concepts).view(-1, self.width, self.side, self.side))


def conv_parameterizer(num_classes: int, num_concepts: int, image_size: int) -> nn.Sequential:
    """Three conv blocks (32, 64, 64) and two dense layers -> C*k relevances."""
    side = image_size // 8
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU(), nn.Linear(128, num_classes * num_concepts),
    )


@register_model("senn")
def senn(num_classes: int, image_size: int, num_concepts: int = 5) -> SENN:
    """SENN for small RGB images; 5 concepts as in the study."""
    if image_size % 8:
        raise ValueError(f"senn needs an image size divisible by 8, got {image_size}")
    return SENN(ConvConceptizer(num_concepts, image_size), conv_parameterizer(num_classes, num_concepts, image_size),
                num_classes, num_concepts)
