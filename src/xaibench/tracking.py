"""MLflow helpers: one experiment per study, one run per stage execution.

Tracking URI: ``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///mlflow.db`` in the
project root (open it with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``).
Set ``XAIBENCH_MLFLOW=0`` to switch tracking off (the pipeline's outputs don't depend
on it).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager

from xaibench.process_exit import exit_process

log = logging.getLogger("xaibench.tracking")   # the worker runs as __main__
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



class PrefixedRun:
    """A stage's run as one part of the stage sees it: metric names prefixed ``<prefix>.``
    (a grid's cells explained in one stage keep their metrics apart); artifacts unchanged."""

    def __init__(self, run, prefix: str):
        self.run, self.prefix = run, prefix

    def log_metrics(self, metrics, step=None):
        self.run.log_metrics({f"{self.prefix}.{k}": v for k, v in metrics.items()}, step=step)

    def log_artifact(self, path):
        self.run.log_artifact(path)

    def log_artifacts(self, folder, artifact_path=None):
        self.run.log_artifacts(folder, artifact_path)

_SQLITE = "sqlite:///"


def _sqlite_path(uri: str) -> str | None:
    """The file path of a ``sqlite:///<path>`` store; None for any other URI."""
    return uri[len(_SQLITE):] if uri.startswith(_SQLITE) else None


def absolute_uri(uri: str) -> str:
    """A relative ``sqlite:///<path>`` made absolute against the directory the stage starts
    in, so that a stage that works in another directory a while (``seeds@``) still writes to
    the project's store."""
    path = _sqlite_path(uri)
    if path is not None and not os.path.isabs(path):
        return _SQLITE + os.path.abspath(path)
    return uri


def tracking_on() -> bool:
    return os.environ.get("XAIBENCH_MLFLOW", "1") != "0"


_started: subprocess.Popen | None = None   # this process's worker, started by start_worker()
_PYTHON = os.path.abspath(sys.executable)    # at import: a stage may change directory later (seeds@)


def start_worker() -> None:
    """Start this process's MLflow worker now, before the stage imports torch.

    Importing MLflow and opening its sqlite store cost ~3 s of Python. In a thread of the
    stage they took the GIL turn about with the stage's own imports, so a short stage
    (a download, a preprocess) waited for them: 9.5 s with tracking against 5.9 s without.
    In a process of its own, started first, MLflow loads on the other core while torch
    loads on this one. A stage script calls this before its other imports; a process that
    does not (a test, a notebook) gets its worker when :func:`stage_run` opens.
    """
    global _started
    if tracking_on() and _started is None:
        _started = _spawn_worker()


def _spawn_worker() -> subprocess.Popen | None:
    uri = absolute_uri(os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
    try:
        return subprocess.Popen([_PYTHON, "-m", "xaibench.tracking", uri], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, text=True)
    except OSError as error:
        log.warning("MLflow tracking could not start (%s); the stage goes on untracked.", error)
        return None


class _WorkerRun:
    """An MLflow run kept by a worker process (``python -m xaibench.tracking <uri>``).

    The stage sends it one JSON line per call (open, metrics, tag, artifact, close) and goes
    on; what it logs before MLflow is loaded waits in the pipe. ``close`` sends the status
    and waits for the worker. The run's start and end times are the stage's own, taken
    here. A stage that dies before closing leaves its run FAILED (the worker sees the pipe
    close). A tracking failure is logged and never fails the stage: the pipeline's outputs
    do not depend on it.
    """

    def __init__(self, study: str, stage: str, params: dict, tags: dict, worker: subprocess.Popen | None):
        self._worker = worker
        self._undefined: set[str] = set()
        self._send({"op": "open", "study": study, "stage": stage, "start_ms": _now_ms(), "tags": tags,
                    "params": {k: str(v)[:500] for k, v in flatten(params).items()}})

    def _send(self, message: dict) -> None:
        if self._worker is None:
            return
        try:
            self._worker.stdin.write(json.dumps(message) + "\n")
            self._worker.stdin.flush()
        except (OSError, ValueError) as error:   # the worker is gone: say so once, go on untracked
            log.warning("MLflow tracking stopped (%s); the stage goes on untracked.", error)
            self._worker = None

    def log_metrics(self, metrics: dict, step: int | None = None):
        """Log the defined numbers of ``metrics``; an undefined one (null, NaN, ±inf) is not
        a number MLflow can hold: its name goes to the run's tag ``undefined_metrics``."""
        clean, undefined = defined_metrics(metrics)
        self._send({"op": "metrics", "metrics": clean, "step": step or 0, "timestamp": _now_ms()})
        if undefined:
            self._undefined.update(undefined)
            self._send({"op": "tag", "key": "undefined_metrics",
                        "value": ", ".join(sorted(self._undefined))[:5000]})

    def log_artifact(self, path):
        self._send({"op": "artifact", "path": os.path.abspath(path)})

    def log_artifacts(self, folder, artifact_path=None):
        """Every file under ``folder`` (kept as a tree), under ``artifact_path`` in the run."""
        self._send({"op": "artifacts", "path": os.path.abspath(folder), "artifact_path": artifact_path})

    def close(self, status: str) -> None:
        self._send({"op": "close", "status": status, "end_ms": _now_ms()})
        if self._worker is None:
            return
        try:
            self._worker.stdin.close()
            self._worker.wait(timeout=600)
        except (OSError, subprocess.TimeoutExpired) as error:
            log.warning("MLflow worker did not finish (%s); its run may stay open.", error)
            self._worker.kill()


def _now_ms() -> int:
    return int(time.time() * 1000)


@contextmanager
def _store_lock(uri: str):
    """An exclusive lock on the directory of a ``sqlite:///`` store (nothing for other URIs):
    two stages that open a store not yet created would otherwise both create its tables, and
    the second fails on "table ... already exists"."""
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    folder = os.path.dirname(os.path.abspath(path))
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)   # releases the lock


def open_client(uri: str, attempts: int = 8, wait_s: float = 0.5):
    """An ``MlflowClient`` on ``uri``; a sqlite store is created (or migrated) under
    :func:`_store_lock`. A process that does not take the lock (``mlflow ui``, a notebook's
    client) may be creating the same store: then opening fails until it is done, so a
    sqlite store is tried ``attempts`` times, ``wait_s`` × attempt apart."""
    from mlflow import MlflowClient  # lazy: MLflow, in the worker only

    for attempt in range(1, attempts + 1):
        try:
            with _store_lock(uri):
                return MlflowClient(tracking_uri=uri)
        except OSError:   # the store's folder is missing or unreadable: no retry mends it
            raise
        except Exception:
            if attempt == attempts or _sqlite_path(uri) is None:
                raise
            time.sleep(wait_s * attempt)


def _experiment_id(client, name: str) -> str:
    """The id of experiment ``name``, created if missing; a stage that created it meanwhile
    (two stages of one study started together) makes the creation fail: then it is read."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def serve(uri: str, lines) -> None:
    """The worker: open an MLflow client on ``uri`` and carry out each JSON line of
    ``lines`` (see :class:`_WorkerRun`). A failure is logged; what follows it is read and
    dropped, so that the stage never blocks on a full pipe."""
    client, run_id = None, None
    try:
        from mlflow.entities import Metric, Param  # lazy: MLflow, in the worker only
        from mlflow.tracking.context.registry import resolve_tags

        client = open_client(uri)
    except Exception as error:
        log.warning("MLflow tracking failed (%s); the stage goes on untracked. "
                    "Set XAIBENCH_MLFLOW=0 to switch tracking off.", error)
    for line in lines:
        message = json.loads(line)
        op = message["op"]
        if client is None:
            if op == "close":
                break
            continue
        try:
            if op == "open":
                experiment_id = _experiment_id(client, message["study"])
                run_id = client.create_run(experiment_id, start_time=message["start_ms"], run_name=message["stage"],
                                           tags=resolve_tags(message["tags"])).info.run_id
                flat = [Param(k, v) for k, v in message["params"].items()]
                for start in range(0, len(flat), 100):
                    client.log_batch(run_id, params=flat[start:start + 100])
            elif op == "metrics":
                client.log_batch(run_id, metrics=[Metric(k, v, message["timestamp"], message["step"])
                                                  for k, v in message["metrics"].items()])
            elif op == "tag":
                client.set_tag(run_id, message["key"], message["value"])
            elif op == "artifact":
                client.log_artifact(run_id, message["path"])
            elif op == "artifacts":
                client.log_artifacts(run_id, message["path"], message["artifact_path"])
            elif op == "close":
                client.set_terminated(run_id, message["status"], end_time=message["end_ms"])
                return   # not waiting for the pipe to close: a child the stage forked may hold it
        except Exception as error:  # tracking must never cost the stage its outputs
            log.warning("MLflow logging failed (%s): %s", op, error)
            if op == "open":
                client = None
    if client is not None and run_id is not None:
        client.set_terminated(run_id, "FAILED")   # the stage ended without closing its run


@contextmanager
def stage_run(study: str, stage: str, params: dict, source: str):
    """Open an MLflow run for one stage execution; yields an object with
    ``log_metrics(dict, step=None)``, ``log_artifact(path)`` and ``log_artifacts(folder)``."""
    global _started
    if not tracking_on():
        yield _NoRun()
        return
    worker, _started = (_started or _spawn_worker()), None
    tags = {"git_commit": git_commit(), "stage": stage, "data_source": source, "study": study,
            "mlflow.source.name": sys.argv[0] or "<python>"}   # the stage script, not the worker's
    run = _WorkerRun(study, stage, params, tags, worker)
    try:
        yield run
    except BaseException:
        run.close("FAILED")
        raise
    run.close("FINISHED")


if __name__ == "__main__":   # the worker of a stage's run (see start_worker)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    serve(sys.argv[1], sys.stdin)
    exit_process(0)   # every call is in the store: skip tearing MLflow and SQLAlchemy down (0.9 s)
