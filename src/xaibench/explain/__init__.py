"""Attribution-method registry: every method has one call shape, whatever library is behind it.

    method(model, pixels, targets, seed=..., **options) -> np.ndarray float32 [N, H, W]

``model`` is a :class:`xaibench.models.NormalizedClassifier`; ``pixels`` are images in
[0, 1], [N, 3, H, W]; ``targets`` the class index explained per image (LongTensor [N]).
The map is channel-summed and has the image's height and width; larger = more
evidence for the target. ``options`` are the method's own section of
``studies.<study>.attribute`` (e.g. ``lime``), if it has one.

Each method also states, at registration:

* ``refuses(net, image_size, options) -> str | None``: why it cannot explain this network
  (an operation it has no rule for, no spatial layer for a CAM), or None. Params validation
  asks it for every (method, model) pair of a study before any stage runs.
* ``axiom``: the sum its paper says the map adds up to, gauged on every map
  (:mod:`xaibench.explain.axioms`): ``"completeness"`` (Σ map = f(x) − f(x₀)),
  ``"conservation"`` (Σ map = f(x)), or None.
"""

from __future__ import annotations

import importlib
import pkgutil

from xaibench.explain.registry import METHODS, refusal, register_method

# Every module of this package is imported here, so each registers its methods: a new
# method is a new module (or a function in one), with no list to extend.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "refusal", "register_method"]
