"""Where a stage's per-image work runs: in this process, or sharded over Ray workers.

A stage cuts its images into chunks of ``compute.chunk_images`` (the bound on memory) and
hands :func:`map_chunks` a *task*, a picklable function ``task(model, payload) -> result``
of one chunk. Results come back in chunk order whatever the backend, so the stage writes
the same outputs either way (DVC keeps owning the DAG and its cache):

* ``local``: chunk after chunk in this process;
* ``ray``: ``compute.workers`` Ray actors each receive the model once through Ray's object
  store (no shared file system), then chunks round-robin, at most two in flight per
  worker; the chunks travel through the object store too. ``compute.address`` null starts
  a local Ray for the stage (or joins ``$RAY_ADDRESS`` when set); otherwise it is a
  cluster address (``ray://head:10001`` or ``head:6379``). Every worker uses the stage's
  thread count (``$XAIBENCH_THREADS``, default 2) and deterministic algorithms, as the
  local backend does: float reductions depend on them.

``compute.gpus_per_worker`` > 0 reserves that share of a GPU per actor and moves the model
and each chunk's tensors onto it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from typing import Callable, Iterable, Iterator

import torch
from tqdm import tqdm

from xaibench.stage_setup import deterministic_algorithms

log = logging.getLogger(__name__)
IN_FLIGHT_PER_WORKER = 2


def chunk_bounds(n: int, chunk: int) -> list[tuple[int, int]]:
    """[(start, stop)] covering range(n) in pieces of ``chunk``."""
    return [(start, min(start + chunk, n)) for start in range(0, n, chunk)]


def _worker_setup() -> None:
    torch.set_num_threads(int(os.environ.get("XAIBENCH_THREADS", "2")))
    deterministic_algorithms()


def _to_device(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value


class ChunkWorker:
    """Holds a model; runs tasks on chunks (a Ray actor under the ray backend, kept for the
    stage: each :func:`map_chunks` call hands it its model once)."""

    def __init__(self, gpus: float = 0):
        _worker_setup()
        self.device = torch.device("cuda" if gpus > 0 and torch.cuda.is_available() else "cpu")
        self.model = None

    def set_model(self, model) -> str:
        """Hold ``model`` on this worker's device; returns the device type (``cuda`` / ``cpu``)."""
        self.model = model.to(self.device).eval()
        return self.device.type

    def run(self, task: Callable, payload):
        return task(self.model, _to_device(payload, self.device))


def map_chunks(task: Callable, model, payloads: Iterable, compute=None, total: int | None = None,
               desc: str = "chunks") -> Iterator:
    """``task(model, payload)`` for every payload, results in payload order, on the backend
    ``compute`` (a :class:`xaibench.params.Compute`; None: local)."""
    payloads = tqdm(payloads, total=total, desc=desc, unit="chunk", leave=False, disable=None)
    if compute is None or compute.backend == "local":
        for payload in payloads:
            yield task(model, payload)
        return
    yield from _map_on_ray(task, model, payloads, compute)


def host_and_port(address: str) -> tuple[str, int]:
    """(host, port) of a Ray address: ``ray://head:10001`` (Ray Client) or ``head:6379``
    (the GCS); a missing port is the form's default."""
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://").rstrip("/")
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
    try:
        return host, int(port) if port else (10001 if client else 6379)
    except ValueError:
        raise ValueError(f"compute.address: {address!r} is not host:port or ray://host:port") from None


def wait_for_address(address: str, timeout_s: float) -> None:
    """Return once a TCP connection to ``address`` opens; a ValueError naming it after
    ``timeout_s`` seconds (Ray itself retries an unreachable GCS for minutes, printing
    retries, before it gives up)."""

    host, port = host_and_port(address)
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(2.0, deadline - time.monotonic()))):
                return
        except OSError as error:
            last = error
        if time.monotonic() >= deadline:
            raise ValueError(f"compute.address: cannot reach the Ray cluster at {address} ({host}:{port}) within "
                             f"{timeout_s:g} s ({type(last).__name__}: {last}); check the address and that the "
                             f"head node is running (ray status on it), or raise compute.connect_timeout_s")
        time.sleep(0.2)


def start_ray(compute):
    """``ray.init`` for ``compute``: the cluster at ``compute.address`` / ``$RAY_ADDRESS``
    (reached within ``compute.connect_timeout_s``), or a local Ray of ``compute.workers``
    CPUs (``gpus_per_worker`` x workers GPUs: refused on a machine without a CUDA GPU,
    where Ray would never schedule the workers)."""
    import ray  # lazy: Ray

    if ray.is_initialized():
        return ray
    address = compute.address or os.environ.get("RAY_ADDRESS")
    if address:
        wait_for_address(address, compute.connect_timeout_s)
        log.info("joining the Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=False)
    else:
        if compute.gpus_per_worker > 0 and not torch.cuda.is_available():
            raise ValueError(f"compute.gpus_per_worker: {compute.gpus_per_worker:g} but this machine has no CUDA GPU "
                             f"(torch.cuda.is_available() is False) for the local Ray: set it to 0, or give "
                             f"compute.address of a cluster with GPUs")
        log.info("starting a local Ray with %d workers", compute.workers)
        ray.init(num_cpus=compute.workers, num_gpus=int(round(compute.gpus_per_worker * compute.workers)) or None,
                 include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"XAIBENCH_THREADS": os.environ.get("XAIBENCH_THREADS", "2")}})
    return ray


_WORKERS: dict = {}  # (workers, gpus_per_worker) -> the stage's Ray actors (started once per process)


def _ray_workers(ray, compute) -> list:
    key = (compute.workers, compute.gpus_per_worker)
    if key not in _WORKERS:
        actor_class = ray.remote(num_cpus=1, num_gpus=compute.gpus_per_worker)(ChunkWorker)
        _WORKERS[key] = [actor_class.remote(compute.gpus_per_worker) for _ in range(compute.workers)]
    return _WORKERS[key]


def _map_on_ray(task: Callable, model, payloads: Iterable, compute) -> Iterator:
    ray = start_ray(compute)
    workers = _ray_workers(ray, compute)
    model_ref = ray.put(model.cpu())     # through the object store, once per worker
    devices = ray.get([worker.set_model.remote(model_ref) for worker in workers])
    if compute.gpus_per_worker > 0 and "cpu" in devices:
        log.warning("compute.gpus_per_worker is %g but %d of %d Ray workers found no CUDA GPU and run on the CPU",
                    compute.gpus_per_worker, devices.count("cpu"), len(devices))
    task_ref = ray.put(task)
    pending: deque = deque()
    for k, payload in enumerate(payloads):
        if len(pending) >= IN_FLIGHT_PER_WORKER * len(workers):
            yield ray.get(pending.popleft())
        pending.append(workers[k % len(workers)].run.remote(task_ref, ray.put(payload)))
    while pending:
        yield ray.get(pending.popleft())
