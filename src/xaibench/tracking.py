"""MLflow helpers: one experiment per study, one run per stage execution.

Tracking URI: ``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///mlflow.db`` in the
project root (open it with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``).
Set ``XAIBENCH_MLFLOW=0`` to switch tracking off (the pipeline's outputs don't depend
on it).
"""

from __future__ import annotations

import logging
import os
import subprocess
from contextlib import contextmanager

log = logging.getLogger(__name__)
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become their string form."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class _NoRun:
    """Stands in for an MLflow run when tracking is switched off."""

    def log_metrics(self, metrics, step=None):
        pass

    def log_artifact(self, path):
        pass


class _Run:
    def __init__(self, mlflow):
        self._mlflow = mlflow

    def log_metrics(self, metrics: dict, step: int | None = None):
        clean = {k: float(v) for k, v in metrics.items() if v == v}  # drop NaN
        self._mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path):
        self._mlflow.log_artifact(str(path))


@contextmanager
def stage_run(study: str, stage: str, params: dict, source: str):
    """Open an MLflow run for one stage execution; yields an object with
    ``log_metrics(dict, step=None)`` and ``log_artifact(path)``."""
    if os.environ.get("XAIBENCH_MLFLOW", "1") == "0":
        yield _NoRun()
        return
    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
    mlflow.set_experiment(study)
    with mlflow.start_run(run_name=stage):
        mlflow.set_tags({"git_commit": git_commit(), "stage": stage, "data_source": source, "study": study})
        flat = {k: str(v)[:500] for k, v in flatten(params).items()}
        items = list(flat.items())
        for start in range(0, len(items), 100):
            mlflow.log_params(dict(items[start:start + 100]))
        yield _Run(mlflow)
