"""Saliency studies (cats-vs-dogs): heatmap methods scored by perturbation faithfulness."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from xaibench.figures import heatmap_grid
from xaibench.metrics import METRICS
from xaibench.metrics.faithfulness import collect_evidence
from xaibench.store import attribution_path, maps_of, read_attributions
from xaibench.studies.common import explain_and_store, load_model_and_test, write_csv, write_insertion_deletion
from xaibench.training.classifier import cross_entropy_loss

log = logging.getLogger(__name__)
GRID_IMAGES = 6


def loss_fn(study):
    return cross_entropy_loss


def attribute(name: str, study, params, run) -> None:
    """Explain the first ``n_images`` test images with every method -> one Parquet each."""
    cfg = study.attribute
    _, test, pixels = load_model_and_test(name, study, cfg.n_images)
    n = len(pixels)
    grid = {}
    for method in cfg.methods:
        rows = explain_and_store(name, study, params, run, method, cfg.model_dump().get(method, {}))
        grid[method] = rows["attribution"][:GRID_IMAGES]
    figure = f"data/attributions/{name}/heatmaps.png"
    shown = min(GRID_IMAGES, n)
    heatmap_grid(test["images"][:shown] / 255.0, grid, figure, titles=list(test["ids"][:shown]))
    run.log_artifact(figure)


def evaluate(name: str, study, params, run) -> dict:
    """IAUC, DAUC, IC, DC, AD, IIC per method; mean curves as CSV (dvc plots) and PNG; every
    image's value of every metric in data/reports/<study>/per_image_scores.csv (for the
    reliability stage's bootstrap)."""
    cfg = study.evaluate
    model, test, _ = load_model_and_test(name, study)
    results, curves, per_image = {}, {}, []
    fractions = np.linspace(0, 1, cfg.steps + 1)
    fill = model.mean.flatten() if cfg.deletion_fill == "mean" else torch.zeros(3)
    for method in study.attribute.methods:
        frame = read_attributions(attribution_path("data/attributions", name, study.model, method))
        if list(frame.image_id) != [str(i) for i in test["ids"][: len(frame)]]:
            raise ValueError(f"{method}: stored image ids do not match the test split; rerun attribute")
        pixels = torch.from_numpy(test["images"][: len(frame)]).permute(0, 3, 1, 2).float() / 255.0
        evidence = collect_evidence(model, pixels, maps_of(frame), torch.tensor(frame.target.to_numpy()),
                                    cfg.steps, cfg.insertion_blur_sigma, fill, cfg.batch_size)
        values = {metric: fn(evidence) for metric, fn in METRICS.items()}
        results[method] = {metric: round(float(np.nanmean(v)), 6) for metric, v in values.items()}
        per_image += [{"method": method, "image_id": image_id, "metric": metric, "value": float(v[k])}
                      for metric, v in values.items() for k, image_id in enumerate(frame.image_id)]
        curves[method] = {"insertion": evidence.insertion_scores.mean(0), "deletion": evidence.deletion_scores.mean(0)}
        log.info("%s: %s", method, results[method])
        run.log_metrics({f"{k}.{method}": v for k, v in results[method].items()})
    write_insertion_deletion(name, fractions, curves, run)
    write_csv(f"data/reports/{name}/per_image_scores.csv", pd.DataFrame(per_image))
    return results

