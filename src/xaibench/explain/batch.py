"""Explain a set of images with one registered method, timing each image: rows for the store."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from xaibench.explain import METHODS
from xaibench.explain.axioms import axiom_errors, target_logits
from xaibench.models import predict_proba
from xaibench.store import store_rows


@dataclass(frozen=True)
class ExplainChunk:
    """One chunk of a method's images (a :func:`xaibench.compute.map_chunks` task): the
    arguments of :func:`explain_images` but the model."""

    pixels: torch.Tensor
    labels: np.ndarray
    ids: np.ndarray
    method: str
    model_name: str
    seed: int
    options: object            # the method's typed options (None: it has none)
    params_hash: str
    explain: Callable | None = None
    offset: int = 0


def explain_chunk(model, chunk: ExplainChunk) -> dict:
    """:func:`explain_images` of one :class:`ExplainChunk`."""
    return explain_images(model, chunk.pixels, chunk.labels, chunk.ids, chunk.method, chunk.model_name, chunk.seed,
                          chunk.options, chunk.params_hash, explain=chunk.explain, offset=chunk.offset)


def explain_images(model, pixels: torch.Tensor, labels: np.ndarray, ids: np.ndarray, method: str, model_name: str,
                   seed: int, options, params_hash: str, explain=None, offset: int = 0) -> dict:
    """Explain the predicted class of every image, one image per call (so
    ``runtime_ms`` is the cost of one explanation). Returns store columns.
    ``explain`` overrides the registry lookup (e.g. SENN's own relevances, [1, 1, k]).
    ``offset``: the index of ``pixels[0]`` in the whole set (a chunk's start), so that
    seeded methods draw per image the same whatever the chunking. Sampling methods
    (LIME) log their samples per image (``sampling_log``): the ``samples`` and
    ``stopped_early`` columns. ``options``: the method's typed options (its params section,
    :meth:`~xaibench.explain.registry.AttributionMethod.options_of`). ``axiom_error``: the registered method's axiom gauge
    (:mod:`xaibench.explain.axioms`), null for an ``explain`` override or no axiom."""
    probs = predict_proba(model, pixels)
    predicted = probs.argmax(-1)
    explain = explain or METHODS[method]
    maps, runtimes, sampling_log = [], [], []
    for i in tqdm(range(len(pixels)), desc=method, unit="img", leave=False, disable=None):
        start = time.perf_counter()
        heat = explain(model, pixels[i:i + 1], predicted[i:i + 1], seed=seed, image_indices=[offset + i],
                       sampling_log=sampling_log, options=options)
        runtimes.append(1000.0 * (time.perf_counter() - start))
        maps.append(np.asarray(heat[0].detach().cpu() if isinstance(heat, torch.Tensor) else heat[0],
                               dtype=np.float32))
    n = len(pixels)
    axiom = None if explain is not METHODS.get(method) else METHODS[method].axiom
    errors = [None] * n
    if axiom:
        logits, baseline = target_logits(model, pixels, predicted)
        errors = axiom_errors(axiom, np.stack(maps).reshape(n, -1).sum(1), logits, baseline).tolist()
    return store_rows(image_ids=ids, labels=labels, targets=predicted.tolist(), predicted=predicted.tolist(),
                      probabilities=probs[torch.arange(n, device=probs.device), predicted].double().cpu().tolist(),
                      method=method, model=model_name, maps=np.stack(maps), runtimes_ms=runtimes,
                      params_hash=params_hash, sampling_log=sampling_log, axiom_errors=errors)
