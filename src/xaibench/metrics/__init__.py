"""Metrics: every score a study reports, declared once with its direction and definition
(:mod:`xaibench.metrics.registry`), and the functions that compute them.

Adding a metric = one decorated function (formula + source in its docstring) + one test.
"""

from __future__ import annotations

import importlib
import pkgutil

from xaibench.metrics.registry import (MAP_METRICS, METRIC_INFO, METRICS, declare_metric, metric_info, register_map_metric,
                                       register_metric)

# Every module of this package is imported here, so each declares its metrics: a new
# metric is a function in a module here, with no list to extend.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["MAP_METRICS", "METRICS", "METRIC_INFO", "declare_metric", "metric_info", "register_map_metric",
           "register_metric"]
