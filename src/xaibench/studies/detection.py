"""Detection studies (Dreyer 2021): an SSD on COCO explained one predicted box at a time
by LRP, DeepLIFT (and its γ variant), LIME and KernelSHAP on SLIC superpixels, random.

train: the twin SSD from scratch (or the COCO-pretrained SSD300 with ``pretrained``),
mAP on val/test. attribute: the top detection of each test image scoring at least
``min_score``, until ``n_boxes``; one Parquet file per method with the box. evaluate:
entropy, pixel flipping, relevance in the box (tables 1-3); runtime (table 4) in
``metrics/<study>_runtime.json`` (:mod:`xaibench.metrics.runtime`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from xaibench.atomic import write_json
from xaibench.data.images import load_split
from xaibench.training.classifier import to_tensor

log = logging.getLogger(__name__)
COCO_CLASSES = 91  # torchvision's COCO detectors index the 91 original category ids
GRID_BOXES = 6


def _model_path(name: str) -> Path:
    return Path(f"data/models/{name}/model.pt")


def detect_all(model, pixels: torch.Tensor, batch_size: int = 64) -> list[dict]:
    from xaibench.models.ssd import detect

    return [d for chunk in pixels.split(batch_size) for d in detect(model, chunk)]


def split_map(model, split: dict, categories) -> dict:
    from xaibench.metrics.detection import coco_map

    detections = detect_all(model, to_tensor(split["images"]))
    return coco_map(detections, split["boxes"], split["box_labels"], split["box_image"], len(split["ids"]), categories)


def train(name: str, study, params, run) -> dict:
    """Build (and, for ``epochs`` > 0, train) the detector; save it; mAP per split."""
    from xaibench.models.ssd import build_detector, save_detector
    from xaibench.training.detector import split_targets, train_detector

    prepared = Path(f"data/prepared/{study.dataset}")
    cfg = study.train
    stats = json.loads((prepared / "stats.json").read_text())
    categories = [int(c) for c in json.loads((prepared / "categories.json").read_text())]
    num_classes = COCO_CLASSES if study.model == "ssd300_vgg16" else max(categories) + 1
    splits = {s: load_split(prepared, s) for s in ("train", "val", "test") if (prepared / f"{s}.npz").exists()}
    image_size = int(splits["test"]["images"].shape[1])
    model = build_detector(study.model, num_classes, image_size, stats["mean"], stats["std"], pretrained=cfg.pretrained)
    if cfg.epochs:
        if "train" not in splits:
            raise FileNotFoundError(f"{prepared}/train.npz not found: the real COCO profile has no training split; "
                                    f"use the pretrained detector (train.pretrained: true, train.epochs: 0)")
        train_split = splits["train"]
        targets = split_targets(train_split["boxes"], train_split["box_labels"], train_split["box_image"],
                                len(train_split["ids"]))
        train_detector(model, to_tensor(train_split["images"]), targets, cfg.epochs, cfg.lr, cfg.batch_size,
                       cfg.horizontal_flip, params.seed, on_epoch=lambda epoch, record: run.log_metrics(record, epoch))
    save_detector(_model_path(name), model, study.model, num_classes, image_size, {"pretrained": cfg.pretrained})
    result = {}
    for split in ("val", "test"):
        if split in splits:
            scores = split_map(model.eval(), splits[split], categories)
            result.update({f"{split}_{k}": v for k, v in scores.items()})
            result[f"n_{split}"] = int(len(splits[split]["ids"]))
    log.info("detector: %s", result)
    run.log_metrics(result)
    return result


def choose_boxes(detections: list[dict], n_boxes: int, min_score: float) -> list[dict]:
    """The top detection of each image (in split order) scoring >= ``min_score``, until ``n_boxes``."""
    chosen = []
    for row, found in enumerate(detections):
        if len(found["scores"]) and float(found["scores"][0]) >= min_score:
            chosen.append({"row": row, "anchor": int(found["anchors"][0]), "label": int(found["labels"][0]),
                           "score": float(found["scores"][0]), "box": [float(v) for v in found["boxes"][0]]})
            if len(chosen) == n_boxes:
                break
    return chosen


def load_detector_and_test(name: str, study):
    """(the trained detector, the test split, its pixels [N, 3, H, W] in [0, 1])."""
    from xaibench.models.ssd import load_detector

    test = load_split(f"data/prepared/{study.dataset}", "test")
    return load_detector(_model_path(name)), test, to_tensor(test["images"])


def attribute(name: str, study, params, run) -> None:
    """Explain the chosen boxes with every method -> one Parquet file each (+ boxes.json,
    segments.npz, heatmaps.png)."""
    from xaibench.explain.detection import BOX_METHODS, scaled_segments
    from xaibench.figures import heatmap_grid
    from xaibench.models.ssd import BoxLogit
    from xaibench.studies.common import attribute_digest
    from xaibench.store import attribution_path, sampling_columns, write_attributions

    cfg = study.attribute
    model, test, pixels = load_detector_and_test(name, study)
    chosen = choose_boxes(detect_all(model, pixels), cfg.n_boxes, cfg.min_score)
    if not chosen:
        raise ValueError(f"no test detection scores >= studies.{name}.attribute.min_score ({cfg.min_score})")
    if len(chosen) < cfg.n_boxes:
        log.warning("only %d of %d boxes score >= %g", len(chosen), cfg.n_boxes, cfg.min_score)
    out = Path(f"data/attributions/{name}")
    segments = np.stack([scaled_segments(test["images"][c["row"]], cfg.n_segments, cfg.reference_size)
                         for c in chosen])
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "boxes.json", chosen)
    np.savez_compressed(out / "segments.npz", segments=segments)
    digest = attribute_digest(study, params)
    grid = {}
    for method in cfg.methods:
        explain = BOX_METHODS[method]
        maps, runtimes, sampling_log = [], [], []
        for k, c in enumerate(tqdm(chosen, desc=method, leave=False, disable=None)):
            box = BoxLogit(model, c["anchor"]).eval()
            start = time.perf_counter()
            maps.append(explain(box, pixels[c["row"]:c["row"] + 1], c["label"], segments[k], cfg, params.seed + k,
                                sampling_log=sampling_log))
            runtimes.append(1000 * (time.perf_counter() - start))
        n = len(chosen)
        write_attributions(attribution_path("data/attributions", name, study.model, method), {
            "image_id": [str(test["ids"][c["row"]]) for c in chosen], "label": [c["label"] for c in chosen],
            "target": [c["label"] for c in chosen], "predicted": [c["label"] for c in chosen],
            "probability": [c["score"] for c in chosen], "method": [method] * n, "model": [study.model] * n,
            "attribution": np.stack(maps), "runtime_ms": runtimes, "params_hash": [digest] * n,
            "box": [c["box"] for c in chosen], **sampling_columns(sampling_log, n)})
        grid[method] = np.stack(maps[:GRID_BOXES])
        log.info("%s: %d boxes, %.1f ms per explanation", method, n, float(np.mean(runtimes)))
        run.log_metrics({f"runtime_ms.{method}": float(np.mean(runtimes))})
    shown = chosen[:GRID_BOXES]
    figure = out / "heatmaps.png"
    heatmap_grid(np.stack([test["images"][c["row"]] for c in shown]) / 255.0, grid, figure,
                 titles=[f"{test['ids'][c['row']]} cls {c['label']} {c['score']:.2f}" for c in shown],
                 boxes=[c["box"] for c in shown])
    run.log_artifact(figure)


def evaluate(name: str, study, params, run) -> dict:
    """Per method: the study's entropy and the mass entropy (pixels, superpixels),
    pixel-flipping AUC (pixels, superpixels),
    positive relevance in the box (runtimes: metrics/<study>_runtime.json, from the
    store); mean flipping curves as CSV + PNG; every box's scores in
    data/reports/<study>/per_image_scores.csv (for the reliability stage's bootstrap)."""
    from xaibench.figures import curves_figure
    from xaibench.metrics import detection as metrics
    from xaibench.models.ssd import BoxLogit
    from xaibench.store import attribution_path, maps_of, read_attributions
    from xaibench.studies.common import write_csv

    cfg = study.evaluate
    model, test, pixels = load_detector_and_test(name, study)
    chosen = json.loads(Path(f"data/attributions/{name}/boxes.json").read_text())
    segments = np.load(f"data/attributions/{name}/segments.npz")["segments"]
    gray = torch.as_tensor(model.transform.image_mean, dtype=torch.float32)
    fractions = np.linspace(0, 1, cfg.steps + 1)
    results, curves, per_box = {}, {}, []
    for method in study.attribute.methods:
        frame = read_attributions(attribution_path("data/attributions", name, study.model, method))
        maps = maps_of(frame)
        pixel_curves, superpixel_curves, rows = [], [], []
        for k, c in enumerate(tqdm(chosen, desc=method, leave=False, disable=None)):
            box = BoxLogit(model, c["anchor"]).eval()

            def score_model(px, box=box):
                return box(box.normalize(px))

            image = pixels[c["row"]]
            pixel_curves.append(metrics.flipping_curve(score_model, image, maps[k], c["label"], gray, cfg.steps,
                                                       cfg.batch_size))
            superpixel_curves.append(metrics.flipping_curve(
                score_model, image, metrics.superpixel_mean_map(maps[k], segments[k]), c["label"], gray, cfg.steps,
                cfg.batch_size))
            rows.append({"entropy_pixels": metrics.value_entropy_bits(maps[k]),
                         "entropy_superpixels": metrics.superpixel_value_entropy_bits(maps[k], segments[k]),
                         "mass_entropy_pixels": metrics.mass_entropy_bits(maps[k]),
                         "mass_entropy_superpixels": metrics.superpixel_mass_entropy_bits(maps[k], segments[k]),
                         "relevance_in_box": metrics.relevance_in_box(maps[k], c["box"])})
        table = pd.DataFrame(rows)
        pixel_curves, superpixel_curves = np.stack(pixel_curves), np.stack(superpixel_curves)
        table["flipping_auc_pixels"] = metrics.flipping_auc(pixel_curves)
        table["flipping_auc_superpixels"] = metrics.flipping_auc(superpixel_curves)
        per_box += [{"method": method, "image_id": f"box{k}", "metric": metric, "value": float(table[metric][k])}
                    for metric in table.columns for k in range(len(table))]
        results[method] = {f"{k}": round(float(np.nanmean(table[k])), 6) for k in table.columns}
        curves[method] = {"pixels": pixel_curves.mean(0), "superpixels": superpixel_curves.mean(0)}
        log.info("%s: %s", method, results[method])
        run.log_metrics({f"{k}.{method}": v for k, v in results[method].items()})
    for kind in ("pixels", "superpixels"):
        write_csv(f"metrics/plots/{name}/flipping_{kind}.csv",
                  pd.DataFrame({"fraction": fractions, **{m: c[kind] for m, c in curves.items()}}))
    write_csv(f"data/reports/{name}/per_image_scores.csv", pd.DataFrame(per_box))  # per box, for reliability
    figure = f"data/reports/{name}/flipping.png"
    curves_figure(fractions, curves, figure, kinds=("pixels", "superpixels"),
                  title="mean flipping curve ({kind})", y_label="detection score")
    run.log_artifact(figure)
    return {"n_boxes": len(chosen), "methods": results}
