"""Study-kind registry: what `train`, `attribute` and `evaluate` do for each kind of study.

``studies.<name>.kind`` in params.yaml picks the entry. Each kind module provides

    loss_fn(study) -> callable(model, pixels, labels) -> (total, terms, logits)
    attribute(name, study, params, run) -> None   # writes data/attributions/<name>/
    evaluate(name, study, params, run) -> dict    # the JSON for metrics/<name>.json

where ``run`` is the MLflow stage run (``log_metrics``, ``log_artifact``).
"""

from __future__ import annotations

from xaibench.studies import saliency, senn

STUDY_KINDS = {"saliency": saliency, "senn": senn}
