"""Metric registry: each metric maps the evidence gathered for one (model, method) to one
value per image; stages report the mean over images.

    metric(evidence: FaithfulnessEvidence) -> np.ndarray [N]

Adding a metric = one decorated function (formula + source in its docstring) + one test.
"""

from __future__ import annotations

from typing import Callable

from xaibench.registry import registrar

METRICS: dict[str, Callable] = {}
register_metric = registrar(METRICS, "metric")


from xaibench.metrics import faithfulness  # noqa: E402,F401
