"""Study-kind registry: what `train`, `attribute` and `evaluate` do for each kind of study.

``studies.<name>.kind`` in params.yaml picks the entry. Each kind module provides

    loss_fn(study) -> callable(model, pixels, labels) -> (total, terms, logits)
    attribute(name, study, params, run) -> None   # writes data/attributions/<name>/
    evaluate(name, study, params, run) -> dict    # the JSON for metrics/<name>.json

where ``run`` is the MLflow stage run (``log_metrics``, ``log_artifact``). A kind whose
model is not a classifier provides ``train(name, study, params, run) -> dict`` (the JSON
for metrics/<name>_model.json) instead of ``loss_fn``.

Entries are module names, imported on first use: a stage that needs one study kind does
not pay the start-up cost of the others' libraries.
"""

from __future__ import annotations

import importlib
from types import ModuleType

STUDY_KINDS = {"saliency": "xaibench.studies.saliency", "senn": "xaibench.studies.senn",
               "detection": "xaibench.studies.detection", "imagenet": "xaibench.studies.imagenet"}


def study_kind(kind: str) -> ModuleType:
    """The module that implements study kind ``kind``."""
    if kind not in STUDY_KINDS:
        raise KeyError(f"unknown study kind {kind!r}; known: {sorted(STUDY_KINDS)}")
    return importlib.import_module(STUDY_KINDS[kind])
