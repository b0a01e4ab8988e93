"""The attribution-method registry itself (the call shape is in :mod:`xaibench.explain`).

A method's options reach it on one path: the study's params section of the method is
validated by the schema the method declares at registration (pydantic: unknown keys and
bad values are errors naming the key), and that typed object is what the method gets as
``options``. A dict given to a call (a test, a benchmark) is validated the same way, once,
in :meth:`AttributionMethod.options_of`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

from pydantic import BaseModel, ValidationError

from xaibench.registry import registrar

# what a call may pass besides the images: the method gets those it declares
CALL_KEYWORDS = ("seed", "image_indices", "options", "sampling_log")


def _accepts_every_network(net, image_size=None, options=None) -> None:
    return None


@dataclass(frozen=True)
class AttributionMethod:
    """A registered method: ``explain(model, pixels, targets, *, seed, image_indices,
    options, sampling_log, **inputs)`` (it declares the keywords it uses), the schema of its
    ``options`` (None: it has none), ``refuses`` and ``axiom``."""

    name: str
    explain: Callable
    options: type[BaseModel] | None = None
    refuses: Callable = _accepts_every_network
    axiom: str | None = None
    _declared: frozenset = field(default=frozenset(), repr=False)

    def options_of(self, given=None) -> BaseModel | None:
        """``given`` as the method's typed options: an instance of its schema as it is, a
        dict (or None: the schema's defaults) validated by the schema."""
        if self.options is None:
            if given:
                raise ValueError(f"method {self.name} takes no options (given: {given!r})")
            return None
        if isinstance(given, self.options):
            return given
        if isinstance(given, BaseModel):
            given = given.model_dump()
        try:
            return self.options.model_validate(given or {})
        except ValidationError as error:
            raise ValueError(f"options of method {self.name}: {error}") from None

    def __call__(self, model, pixels, targets, *, seed: int = 0, image_indices=None, options=None,
                 sampling_log=None, **inputs):
        offered = {"seed": seed, "image_indices": image_indices, "options": self.options_of(options),
                   "sampling_log": sampling_log}
        return self.explain(model, pixels, targets, **{k: v for k, v in offered.items() if k in self._declared},
                            **inputs)


METHODS: dict[str, AttributionMethod] = {}
_register = registrar(METHODS, "attribution method")


def register_method(name: str, options: type[BaseModel] | None = None, refuses: Callable | None = None,
                    axiom: str | None = None):
    """``@register_method("lime", options=LimeParams)``, ``@register_method("lrp",
    refuses=lrp_refuses, axiom="conservation")``; the function stays importable as it is."""
    if axiom not in (None, "completeness", "conservation"):
        raise ValueError(f"axiom of {name!r}: {axiom!r} (completeness | conservation | None)")

    def decorate(explain: Callable) -> Callable:
        declared = frozenset(k for k in inspect.signature(explain).parameters if k in CALL_KEYWORDS)
        if options is not None and "options" not in declared:
            raise TypeError(f"method {name!r} declares options {options.__name__} but takes no `options`")
        _register(name)(AttributionMethod(name, explain, options, refuses or _accepts_every_network, axiom,
                                          declared))
        return explain

    return decorate


def refusal(method: str, net, image_size: int, options=None) -> str | None:
    """Why ``method`` (with its ``options``) cannot explain ``net`` at ``image_size`` px, or
    None. Without ``options``, a method whose schema requires values is asked with None."""
    entry = METHODS[method]
    try:
        typed = entry.options_of(options)
    except ValueError:
        if options is not None:
            raise
        typed = None
    return entry.refuses(net, image_size, typed)
