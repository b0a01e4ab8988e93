"""The attribution-method registry itself (the call shape is in :mod:`xaibench.explain`)."""


from __future__ import annotations

from typing import Callable

from xaibench.registry import registrar

METHODS: dict[str, Callable] = {}
_register = registrar(METHODS, "attribution method")


def _accepts_every_network(net, image_size=None, options=None) -> None:
    return None


def register_method(name: str, refuses: Callable | None = None, axiom: str | None = None):
    """``@register_method("lrp", refuses=lrp_refuses, axiom="conservation")``."""
    if axiom not in (None, "completeness", "conservation"):
        raise ValueError(f"axiom of {name!r}: {axiom!r} (completeness | conservation | None)")

    def decorate(method):
        method.refuses = refuses or _accepts_every_network
        method.axiom = axiom
        return _register(name)(method)

    return decorate


def refusal(method: str, net, image_size: int, options: dict | None = None) -> str | None:
    """Why ``method`` (with its ``options``) cannot explain ``net`` at ``image_size`` px, or None."""
    return METHODS[method].refuses(net, image_size, options or {})
