"""The one shape every registry here has: a dict filled by a name-keyed decorator."""

from __future__ import annotations


def registrar(registry: dict, family: str):
    """``register = registrar(METHODS, "attribution method")``; ``@register("lrp")``."""

    def register(name: str):
        def decorate(entry):
            if name in registry:
                raise ValueError(f"{family} {name!r} registered twice")
            registry[name] = entry
            return entry

        return decorate

    return register
