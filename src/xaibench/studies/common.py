"""Small pieces every study kind needs: loading its model and test images, writing CSVs."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from xaibench.atomic import atomic_path
from xaibench.data.images import load_split
from xaibench.explain.batch import explain_images
from xaibench.models import load_model
from xaibench.params import params_hash
from xaibench.store import attribution_path, write_attributions
from xaibench.training.classifier import to_tensor

log = logging.getLogger(__name__)


def load_model_and_test(name: str, study, n: int | None = None):
    """(model, test split dict, pixels [n, 3, H, W] in [0, 1]) for study ``name``."""
    test = load_split(f"data/prepared/{study.dataset}", "test")
    n = len(test["labels"]) if n is None else min(n, len(test["labels"]))
    return load_model(f"data/models/{name}/model.pt"), test, to_tensor(test["images"][:n])


def write_csv(path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")


def write_insertion_deletion(name: str, fractions: np.ndarray, curves: dict, run) -> None:
    """Mean insertion/deletion curves per method -> metrics/plots/<name>/{insertion,deletion}.csv
    (dvc plots) and data/reports/<name>/curves.png (logged to ``run``)."""
    from xaibench.figures import curves_figure

    for kind in ("insertion", "deletion"):
        write_csv(f"metrics/plots/{name}/{kind}.csv",
                  pd.DataFrame({"fraction": fractions, **{m: c[kind] for m, c in curves.items()}}))
    figure = f"data/reports/{name}/curves.png"
    curves_figure(fractions, curves, figure)
    run.log_artifact(figure)


def explain_and_store(name: str, study, params, run, method: str, options: dict, explain=None):
    """Explain the first ``study.attribute.n_images`` test images with ``method``, write
    its Parquet file, log the mean runtime; returns the store columns."""
    model, test, pixels = load_model_and_test(name, study, study.attribute.n_images)
    n = len(pixels)
    digest = params_hash(params.datasets[study.dataset], study.model, study.train, study.attribute, params.seed)
    rows = explain_images(model, pixels, test["labels"][:n], test["ids"][:n], method, study.model, params.seed,
                          options, digest, explain=explain)
    write_attributions(attribution_path("data/attributions", name, study.model, method), rows)
    runtime = float(np.mean(rows["runtime_ms"]))
    log.info("%s: %d explanations, %.1f ms per image", method, n, runtime)
    run.log_metrics({f"runtime_ms.{method}": runtime})
    return rows
