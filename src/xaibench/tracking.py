"""MLflow helpers: one experiment per study, one run per stage execution.

Tracking URI: ``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///mlflow.db`` in the
project root (open it with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``).
Set ``XAIBENCH_MLFLOW=0`` to switch tracking off (the pipeline's outputs don't depend
on it).
"""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import threading
import time
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


def metric_name(name: str) -> str:
    """``name`` as MLflow takes it: a character it refuses (the ``+`` of ``lrp+gad``) -> ``_``."""
    return re.sub(r"[^\w\-. :/]", "_", name)


def defined_metrics(metrics: dict) -> tuple[dict[str, float], list[str]]:
    """({name: float} of the finite numbers in ``metrics``, [names of the undefined ones]):
    None, NaN and ±inf are undefined on this data (MLflow would refuse None and store NaN
    as a number); bools count as 0/1, strings are not metrics. Names are made ones MLflow
    takes (:func:`metric_name`)."""
    clean, undefined = {}, []
    for key, value in metrics.items():
        key = metric_name(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            clean[key] = float(value)
        elif value is None or isinstance(value, float):
            undefined.append(key)
    return clean, undefined


class _NoRun:
    """Stands in for an MLflow run when tracking is switched off."""

    def log_metrics(self, metrics, step=None):
        pass

    def log_artifact(self, path):
        pass

    def log_artifacts(self, folder, artifact_path=None):
        pass


class _BackgroundRun:
    """An MLflow run opened by a background thread.

    Importing MLflow and opening its sqlite store costs ~3 s of start-up per stage; the
    thread does it while the stage loads data and trains (torch releases the GIL), so a
    short stage does not wait for it. Metrics and artifacts logged before the run is open
    are queued and sent once it is; ``close`` waits for the thread, flushes, and marks the
    run FINISHED or FAILED. A tracking failure is logged and never fails the stage: the
    pipeline's outputs do not depend on it.
    """

    def __init__(self, study: str, stage: str, params: dict, tags: dict):
        self._lock = threading.Lock()
        self._undefined: set[str] = set()
        self._pending: list[tuple[str, object]] = []
        self._client = None
        self._run_id = None
        self._uri = self.absolute_uri(os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
        self._thread = threading.Thread(target=self._open, args=(study, stage, params, tags), daemon=True)
        self._thread.start()

    @staticmethod
    def absolute_uri(uri: str) -> str:
        """A relative ``sqlite:///<path>`` made absolute against the directory the stage
        starts in, so that a stage that works in another directory a while (``seeds@``)
        still writes to the project's store."""
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not os.path.isabs(uri[len(prefix):]):
            return prefix + os.path.abspath(uri[len(prefix):])
        return uri

    def _open(self, study, stage, params, tags):
        try:
            from mlflow import MlflowClient  # lazy: MLflow
            from mlflow.entities import Param

            client = MlflowClient(tracking_uri=self._uri)
            experiment = client.get_experiment_by_name(study)
            experiment_id = experiment.experiment_id if experiment else client.create_experiment(study)
            from mlflow.tracking.context.registry import resolve_tags  # lazy: MLflow

            run_id = client.create_run(experiment_id, run_name=stage, tags=resolve_tags(tags)).info.run_id
            flat = [Param(k, str(v)[:500]) for k, v in flatten(params).items()]
            for start in range(0, len(flat), 100):
                client.log_batch(run_id, params=flat[start:start + 100])
            with self._lock:
                self._client, self._run_id = client, run_id
                for kind, payload in self._pending:
                    self._send(kind, payload)
                self._pending.clear()
        except Exception as error:  # tracking must never cost the stage its outputs
            log.warning("MLflow tracking failed (%s); the stage goes on untracked. "
                        "Set XAIBENCH_MLFLOW=0 to switch tracking off.", error)

    def _send(self, kind, payload):
        if kind == "metrics":
            from mlflow.entities import Metric  # lazy: MLflow

            metrics, step, timestamp = payload
            self._client.log_batch(self._run_id, metrics=[Metric(k, v, timestamp, step) for k, v in metrics.items()])
        elif kind == "tag":
            self._client.set_tag(self._run_id, *payload)
        elif kind == "artifacts":
            folder, artifact_path = payload
            self._client.log_artifacts(self._run_id, folder, artifact_path)
        else:
            self._client.log_artifact(self._run_id, payload)

    def _submit(self, kind, payload):
        with self._lock:
            if self._client is None:
                self._pending.append((kind, payload))
                return
            try:
                self._send(kind, payload)
            except Exception as error:
                log.warning("MLflow logging failed: %s", error)

    def log_metrics(self, metrics: dict, step: int | None = None):
        """Log the defined numbers of ``metrics``; an undefined one (null, NaN, ±inf) is not
        a number MLflow can hold: its name goes to the run's tag ``undefined_metrics``."""
        clean, undefined = defined_metrics(metrics)
        self._submit("metrics", (clean, step or 0, int(time.time() * 1000)))
        if undefined:
            self._undefined.update(undefined)
            self._submit("tag", ("undefined_metrics", ", ".join(sorted(self._undefined))[:5000]))

    def log_artifact(self, path):
        self._submit("artifact", str(path))

    def log_artifacts(self, folder, artifact_path=None):
        """Every file under ``folder`` (kept as a tree), under ``artifact_path`` in the run."""
        self._submit("artifacts", (str(folder), artifact_path))

    def close(self, status: str) -> None:
        self._thread.join()
        with self._lock:
            if self._client is not None:
                try:
                    self._client.set_terminated(self._run_id, status)
                except Exception as error:
                    log.warning("MLflow could not close the run: %s", error)


@contextmanager
def stage_run(study: str, stage: str, params: dict, source: str):
    """Open an MLflow run for one stage execution; yields an object with
    ``log_metrics(dict, step=None)``, ``log_artifact(path)`` and ``log_artifacts(folder)``."""
    if os.environ.get("XAIBENCH_MLFLOW", "1") == "0":
        yield _NoRun()
        return
    run = _BackgroundRun(study, stage, params,
                         {"git_commit": git_commit(), "stage": stage, "data_source": source, "study": study})
    try:
        yield run
    except BaseException:
        run.close("FAILED")
        raise
    run.close("FINISHED")
