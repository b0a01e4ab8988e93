"""Metrics: every score a study reports, declared once with its direction and definition
(:mod:`xaibench.metrics.registry`), and the functions that compute them.

Adding a metric = one decorated function (formula + source in its docstring) + one test.
"""

from __future__ import annotations

# each module declares its scores when imported
from xaibench.metrics import complexity, detection, faithfulness, localisation, stability  # noqa: F401
from xaibench.metrics.registry import METRIC_INFO, METRICS, declare_metric, metric_info, register_metric

__all__ = ["METRICS", "METRIC_INFO", "declare_metric", "metric_info", "register_metric"]
