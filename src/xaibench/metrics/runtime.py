"""Wall-clock runtime per explanation, kept apart from the science metrics.

Runtimes differ between two runs with the same params, so they never go into
``metrics/<study>.json`` (whose bytes must repeat, for ``dvc metrics diff``); every
evaluate stage writes them to ``metrics/<study>_runtime.json`` and MLflow instead, read
from the ``runtime_ms`` column of the study's attribution store; with them, what a
sampling method (LIME, SHAP) spent in model evaluations (``samples`` / ``stopped_early``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq


def runtime_statistics(runtime_ms) -> dict:
    """The first explanation apart (``runtime_ms_cold``: imports, compilation, caches),
    then mean and standard deviation of the others (all of them if there is only one)."""
    runtime_ms = np.asarray(runtime_ms, np.float64)
    warm = runtime_ms[1:] if len(runtime_ms) > 1 else runtime_ms
    return {"runtime_ms_cold": round(float(runtime_ms[0]), 3), "runtime_ms_mean": round(float(warm.mean()), 3),
            "runtime_ms_std": round(float(warm.std()), 3), "n": int(len(runtime_ms))}


def sampling_statistics(samples, stopped_early) -> dict:
    """A sampling method's cost in model evaluations: ``samples_mean`` per explanation and
    the share that adaptive sampling stopped early (``stopped_early_share``); {} for a
    method that does not sample (null columns)."""
    samples = pd.Series(samples, dtype="Float64").dropna()
    if samples.empty:
        return {}
    stopped = pd.Series(stopped_early, dtype="boolean").dropna()
    return {"samples_mean": round(float(samples.mean()), 3), "stopped_early_share": round(float(stopped.mean()), 4)}


def runtime_report(folder: str | Path) -> dict:
    """:func:`runtime_statistics` (and :func:`sampling_statistics`) of every Parquet file
    under ``folder``, nested by its relative path (``<model>/<method>.parquet`` ->
    ``{model: {method: {...}}}``)."""
    folder = Path(folder)
    report: dict = {}
    for path in sorted(folder.rglob("*.parquet")):
        *parents, leaf = path.relative_to(folder).with_suffix("").parts
        node = report
        for part in parents:
            node = node.setdefault(part, {})
        columns = [c for c in ("runtime_ms", "samples", "stopped_early") if c in pq.read_schema(path).names]
        frame = pd.read_parquet(path, columns=columns)
        node[leaf] = runtime_statistics(frame.runtime_ms.to_numpy())
        if "samples" in frame:
            node[leaf].update(sampling_statistics(frame.samples, frame.stopped_early))
    return report


def flatten(report: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (MLflow metric names)."""
    flat = {}
    for key, value in report.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(flatten(value, name) if isinstance(value, dict) else {name: value})
    return flat


def mlflow_runtime_metrics(report: dict) -> dict:
    """:func:`runtime_report` as MLflow metric names (``runtime.<model>.<method>.<stat>``),
    the image counts left out."""
    return {k: v for k, v in flatten(report, "runtime").items() if not k.endswith(".n")}
