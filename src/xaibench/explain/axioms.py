"""The axiom gauge: how far each map is from the sum its method's paper says it adds up to.

* completeness (Integrated Gradients: Sundararajan et al. 2017, sec. 3, "Completeness";
  DeepLIFT: Shrikumar et al. 2017, sec. 2.2, "summation-to-delta"):
  error = |Σ a − (f(x) − f(x₀))| / |f(x) − f(x₀)|, x₀ the baseline (zero on the
  normalised input, as the methods use);
* conservation (LRP: Bach et al. 2015, eq. 2; AttnLRP: Achtibat et al. 2024, eq. 1):
  error = |Σ R − f(x)| / |f(x)|;

f the target logit. Undefined (NaN) when the denominator is below 1e-6 of the logit scale,
and for methods without such an axiom (Grad-CAM, LIME, ...: the column is null).

Tolerances (:data:`TOLERANCES`): what a correct implementation stays within on the
support matrix's networks (``tests/test_support_matrix.py``, docs/reference/benchmarks.md): IG's
quadrature error at 50 steps and DeepLIFT's float error are far below 5 %; LRP's
relevance leaks to biases, position embeddings and the stabilisers, which on trained and
random networks stays below 30 % where the rules hold, and is orders of magnitude off where
they do not (Σ R / logit = 253 on an uncanonized ResNet-18). A median above its tolerance
is flagged in the report.
"""

from __future__ import annotations

import numpy as np
import torch

TOLERANCES = {"completeness": 0.05, "conservation": 0.3}


@torch.no_grad()
def target_logits(model, pixels: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, float | np.ndarray]:
    """(f(x) [N], f(x₀) [N]) of the target logits, x₀ = zero normalised input."""
    logits = model.net(model.normalize(pixels))
    baseline = model.net(torch.zeros_like(pixels[:1])).expand(len(pixels), -1)
    index = torch.arange(len(pixels), device=logits.device)
    return (logits[index, targets].double().cpu().numpy(), baseline[index, targets].double().cpu().numpy())


def axiom_errors(axiom: str | None, sums: np.ndarray, logits: np.ndarray, baseline_logits: np.ndarray) -> np.ndarray:
    """The relative error per map [N] of ``axiom`` given each map's sum; NaN where undefined."""
    sums = np.asarray(sums, np.float64)
    if axiom is None:
        return np.full(len(sums), np.nan)
    expected = np.asarray(logits, np.float64) - (np.asarray(baseline_logits, np.float64)
                                                 if axiom == "completeness" else 0.0)
    scale = np.maximum(np.abs(logits), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.abs(sums - expected) / np.abs(expected)
    return np.where(np.abs(expected) > 1e-6 * scale, error, np.nan)


def axiom_summary(axiom: str | None, errors) -> dict | None:
    """``{"axiom", "median_error", "max_error", "tolerance", "above_tolerance", "n"}`` of a
    method's per-map errors (NaNs left out); None for a method without an axiom."""
    if axiom is None:
        return None
    values = np.asarray([e for e in errors if e is not None], np.float64)
    values = values[np.isfinite(values)]
    median = float(np.median(values)) if len(values) else None
    return {"axiom": axiom, "median_error": None if median is None else round(median, 6),
            "max_error": round(float(values.max()), 6) if len(values) else None,
            "tolerance": TOLERANCES[axiom], "above_tolerance": None if median is None else median > TOLERANCES[axiom],
            "n": int(len(values))}
