"""The model-builder registry itself (what a builder returns: :mod:`xaibench.models`)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from xaibench.registry import registrar

MODELS: dict[str, Callable[..., nn.Module]] = {}
register_model = registrar(MODELS, "model")
