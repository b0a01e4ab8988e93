"""Metric registry: each metric maps the evidence gathered for one (model, method) to one
value per image; stages report the mean over images.

    metric(evidence: FaithfulnessEvidence) -> np.ndarray [N]

Adding a metric = one decorated function (formula + source in its docstring) + one test.
"""

from __future__ import annotations

from typing import Callable

METRICS: dict[str, Callable] = {}


def register_metric(name: str):
    def decorate(function):
        if name in METRICS:
            raise ValueError(f"metric {name!r} registered twice")
        METRICS[name] = function
        return function

    return decorate


from xaibench.metrics import faithfulness  # noqa: E402,F401
