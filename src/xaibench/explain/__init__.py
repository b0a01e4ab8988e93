"""Attribution-method registry: every method has one call shape, whatever library is behind it.

    method(model, pixels, targets, seed=..., **options) -> np.ndarray float32 [N, H, W]

``model`` is a :class:`xaibench.models.NormalizedClassifier`; ``pixels`` are images in
[0, 1], [N, 3, H, W]; ``targets`` the class index explained per image (LongTensor [N]).
The map is channel-summed and has the image's height and width; larger = more
evidence for the target. ``options`` are the method's own section of
``studies.<study>.attribute`` (e.g. ``lime``), if it has one.
"""

from __future__ import annotations

from typing import Callable

from xaibench.registry import registrar

METHODS: dict[str, Callable] = {}
register_method = registrar(METHODS, "attribution method")


from xaibench.explain import edge_method, gradient_methods, lime_method, random_method  # noqa: E402,F401
