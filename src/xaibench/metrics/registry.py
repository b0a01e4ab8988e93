"""The metric registry itself: every score a study reports, with which way is better and
one line saying what it measures and whose it is, declared where the score is defined.

Two kinds of entry:

* ``@register_metric(name, higher_is_better=..., definition=...)`` on a function
  ``metric(evidence: FaithfulnessEvidence) -> np.ndarray [N]``: a metric read from the
  perturbation evidence of one (model, method), in :data:`METRICS` (the saliency and
  ImageNet studies score every entry);
* ``@register_map_metric(name, ...)`` on a function ``metric(maps [N, H, W]) -> [N]``: a
  property of the maps alone (no model call), in :data:`MAP_METRICS` (the saliency studies
  score every entry beside the perturbation metrics);
* :func:`declare_metric` for a score another module computes (localisation, detection,
  complexity, stability), so that the reliability layer and the report know its
  direction and definition.

A score name may carry a variant after a colon (``DAUC:black``, ``removal_drop:0.1``):
it has its base name's direction and definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    definition: str          # one line for a reader of the report: what it measures, whose it is
    bounds: tuple = (None, None)   # the values the score cannot leave by construction (None: open side)


METRIC_INFO: dict[str, MetricInfo] = {}
METRICS: dict[str, Callable] = {}
MAP_METRICS: dict[str, Callable] = {}


def declare_metric(name: str, higher_is_better: bool, definition: str, bounds=(None, None)) -> MetricInfo:
    """Record a score's direction, definition and ``bounds`` (lowest, highest value its
    construction allows; None for an open side), each name once. The bounds let the
    reliability layer say when every method sits at one (the metric has no room here)."""
    if name in METRIC_INFO:
        raise ValueError(f"metric {name!r} declared twice")
    if not definition:
        raise ValueError(f"metric {name!r}: give a one-line definition")
    low, high = bounds
    if low is not None and high is not None and not low < high:
        raise ValueError(f"metric {name!r}: bounds {bounds} are not (low, high)")
    METRIC_INFO[name] = MetricInfo(name, bool(higher_is_better), definition, (low, high))
    return METRIC_INFO[name]


def _registering(table: dict[str, Callable], name: str, higher_is_better: bool, definition: str, bounds):
    def decorate(metric: Callable) -> Callable:
        declare_metric(name, higher_is_better, definition, bounds)
        table[name] = metric
        return metric

    return decorate


def register_metric(name: str, higher_is_better: bool, definition: str, bounds=(None, None)):
    """``@register_metric("IAUC", higher_is_better=True, definition="Insertion AUC: ...", bounds=(0, 1), bounds=(0, 1))``."""
    return _registering(METRICS, name, higher_is_better, definition, bounds)


def register_map_metric(name: str, higher_is_better: bool, definition: str, bounds=(None, None)):
    """``@register_map_metric("sparseness", higher_is_better=True, definition="...", bounds=(0, 1), bounds=(0, 1))``."""
    return _registering(MAP_METRICS, name, higher_is_better, definition, bounds)


def reported(value: float) -> float:
    """A score as the metrics files give it: 6 decimals, or 6 significant digits for a value
    under 1 in magnitude (identical for values down to 0.1; infidelity's squared probability
    changes of order 1e-6 keep their digits). NaN stays NaN."""
    value = float(value)
    return float(f"{value:.6g}") if abs(value) < 1 else round(value, 6)


def metric_info(metric: str) -> MetricInfo:
    """The declared entry of ``metric`` (``NAME:variant`` has NAME's)."""
    base = metric.split(":", 1)[0]
    if base not in METRIC_INFO:
        raise KeyError(f"no metric {metric!r} is declared; declare it where it is computed "
                       f"(xaibench.metrics.registry.declare_metric)")
    return METRIC_INFO[base]
