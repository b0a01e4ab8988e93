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
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator, model_validator
from torch import nn
from tqdm import tqdm

from xaibench.atomic import write_json
from xaibench.data.images import load_split
from xaibench.explain import METHODS
from xaibench.explain.detection import BOX_METHODS, explain_box, scaled_segments
from xaibench.explain.perturbation import fill_colour
from xaibench.figures import curves_figure, heatmap_grid
from xaibench.metrics import detection as metrics
from xaibench.metrics.detection import box_mask, coco_map
from xaibench.models.ssd import DETECTORS, BoxLogit, build_detector, detect, load_detector, save_detector
from xaibench.schema import ParamsError, Sampled, Strict, check_registered
from xaibench.store import attribution_path, maps_of, read_attributions, store_rows, write_attributions
from xaibench.studies.common import attribute_digest, write_csv
from xaibench.studies.classification import with_method_sections
from xaibench.studies.kind import Citation, StudyInfo, StudyKind, register_study_kind
from xaibench.studies.reliability import excluded_methods, randomisation
from xaibench.training.classifier import to_tensor

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------
# Training (the kind's own training code: dvc.yaml's train stage reruns
# this kind's studies alone when it changes).
#
# Training an SSD detector from scratch (the detection study's twin).
#
# torchvision's SSD computes its own loss in train mode (smooth-L1 box regression +
# cross-entropy with 3:1 hard-negative mining, Liu et al. 2016); here: Adam, a seeded
# shuffle, and a random horizontal flip of image and boxes.
# ----------------------------------------------------------------------------------------


def split_targets(boxes: np.ndarray, box_labels: np.ndarray, box_image: np.ndarray, n_images: int) -> list[dict]:
    """Flat ground truth -> one torchvision target dict per image."""
    return [{"boxes": torch.from_numpy(boxes[box_image == i]).float(),
             "labels": torch.from_numpy(box_labels[box_image == i]).long()} for i in range(n_images)]


def flip_horizontal(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """Mirror [3, H, W] and its xyxy boxes."""
    width = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes}


def train_detector(model: nn.Module, pixels: torch.Tensor, targets: list[dict], epochs: int, lr: float,
                   batch_size: int, horizontal_flip: bool, seed: int, on_epoch=None) -> list[dict]:
    """Adam on torchvision's SSD loss; one {epoch, loss, bbox_regression, classification} per epoch."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(pixels), generator=generator)
        flips = torch.rand(len(pixels), generator=generator) < 0.5
        sums = {"bbox_regression": 0.0, "classification": 0.0}
        batches = range(0, len(pixels), batch_size)
        for start in tqdm(batches, desc=f"epoch {epoch}/{epochs}", leave=False, disable=None):
            images, batch_targets = [], []
            for i in order[start:start + batch_size].tolist():
                image, target = pixels[i], targets[i]
                if horizontal_flip and flips[i]:
                    image, target = flip_horizontal(image, target)
                images.append(image)
                batch_targets.append(target)
            losses = model(images, batch_targets)
            loss = losses["bbox_regression"] + losses["classification"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for key in sums:
                sums[key] += losses[key].item() * len(images)
        record = {key: value / len(pixels) for key, value in sums.items()}
        record["loss"] = record["bbox_regression"] + record["classification"]
        history.append({"epoch": epoch, **record})
        log.info("epoch %d/%d loss %.4f (box %.4f, class %.4f)", epoch, epochs, record["loss"],
                 record["bbox_regression"], record["classification"])
        if on_epoch:
            on_epoch(epoch, record)
    return history
COCO_CLASSES = 91  # torchvision's COCO detectors index the 91 original category ids
GRID_BOXES = 6


class DetectionTrain(Strict):
    epochs: int = Field(ge=0)                        # 0 with pretrained: true (no fine-tuning)
    lr: float = Field(gt=0, lt=1)
    batch_size: int = Field(ge=1)
    horizontal_flip: bool
    pretrained: bool                                 # COCO weights (ssd300_vgg16, real profile)


class _DetectionAttributeBase(Strict):
    n_boxes: int = Field(ge=1)                       # explanations (100 in the study)
    min_score: float = Field(ge=0, lt=1)             # explain the top box of an image if it scores this
    methods: list[str] = Field(min_length=1)
    lrp_gamma: float = Field(ge=0)                   # Gamma rule (and the DeepLIFT variant's weight boost)
    deeplift_blur_sigma: float = Field(gt=0)         # on a reference_size image; scaled to the input
    n_segments: int = Field(ge=4)                    # SLIC superpixels on a reference_size image
    reference_size: int = Field(ge=32)
    num_samples: int = Field(ge=10)                  # LIME / KernelSHAP coalitions (1000 in the study)
    kernel_width: float = Field(gt=0)                # LIME cosine-distance kernel
    batch_size: int = Field(ge=1)
    lime: Sampled = Sampled()                        # how LIME spends num_samples (fixed: the study's)
    kernel_shap: Sampled = Sampled()                 # how KernelSHAP spends num_samples

    @field_validator("methods")
    @classmethod
    def _known_box_methods(cls, value):
        return check_registered(value, {**METHODS, **BOX_METHODS}, "detection method")

    def options_for(self, method: str):
        """The typed options of a classifier-registry method explaining a box (its section)."""
        return METHODS[method].options_of(getattr(self, method, None))

    @model_validator(mode="after")
    def _budgets(self):
        for name in ("lime", "kernel_shap"):
            try:
                getattr(self, name).check_budget(self.num_samples, None)
            except ValueError as error:
                raise ValueError(f"{name}.{error}") from None
        return self

    def segments_at(self, image_size: int) -> int:
        """SLIC's requested segment count at ``image_size`` (``n_segments`` is for a
        ``reference_size`` image, scaled by area: explain.detection.scaled_segments)."""
        return max(4, round(self.n_segments * (image_size / self.reference_size) ** 2))


DetectionAttribute = with_method_sections(
    _DetectionAttributeBase, "DetectionAttribute", """The detections explained (the top box of each
    test image scoring ``min_score``, ``n_boxes`` of them) and the methods: those of the
    detection registry (``lrp``, ``deeplift``, ``lime``, ``kernel_shap``, ...: their settings
    are the fields here) and any method of the classifier registry, explaining the box's class
    logits (its options: a section of its name).""", exclude=BOX_METHODS)


class DetectionEvaluate(Strict):
    steps: int = Field(ge=2)                         # pixel-flipping curve points - 1
    batch_size: int = Field(ge=1)


class DetectionStudy(Strict):
    """A detector explained one box at a time (Dreyer 2021)."""

    kind: Literal["detection"]
    dataset: str
    model: str
    train: DetectionTrain
    attribute: DetectionAttribute
    evaluate: DetectionEvaluate

    @field_validator("model")
    @classmethod
    def _known_detector(cls, value):
        return check_registered(value, DETECTORS, "detector")


def _model_path(name: str) -> Path:
    return Path(f"data/models/{name}/model.pt")


def detect_all(model, pixels: torch.Tensor, batch_size: int = 64) -> list[dict]:
    return [d for chunk in pixels.split(batch_size) for d in detect(model, chunk)]


def split_map(model, split: dict, categories) -> dict:
    detections = detect_all(model, to_tensor(split["images"]))
    return coco_map(detections, split["boxes"], split["box_labels"], split["box_image"], len(split["ids"]), categories)


def train(name: str, study, params, run) -> dict:
    """Build (and, for ``epochs`` > 0, train) the detector; save it; mAP per split."""

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

    test = load_split(f"data/prepared/{study.dataset}", "test")
    return load_detector(_model_path(name)), test, to_tensor(test["images"])


def attribute(name: str, study, params, run) -> None:
    """Explain the chosen boxes with every method -> one Parquet file each (+ boxes.json,
    segments.npz, heatmaps.png)."""

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
        maps, runtimes, sampling_log = [], [], []
        for k, c in enumerate(tqdm(chosen, desc=method, leave=False, disable=None)):
            box = BoxLogit(model, c["anchor"]).eval()
            start = time.perf_counter()
            maps.append(explain_box(method, box, pixels[c["row"]:c["row"] + 1], c["label"], segments[k], cfg,
                                    params.seed + k, sampling_log=sampling_log))
            runtimes.append(1000 * (time.perf_counter() - start))
        n = len(chosen)
        labels = [c["label"] for c in chosen]
        write_attributions(attribution_path("data/attributions", name, study.model, method), store_rows(
            image_ids=[test["ids"][c["row"]] for c in chosen], labels=labels, targets=labels, predicted=labels,
            probabilities=[c["score"] for c in chosen], method=method, model=study.model, maps=np.stack(maps),
            runtimes_ms=runtimes, params_hash=digest, boxes=[c["box"] for c in chosen], sampling_log=sampling_log))
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

    cfg = study.evaluate
    model, test, pixels = load_detector_and_test(name, study)
    chosen = json.loads(Path(f"data/attributions/{name}/boxes.json").read_text())
    segments = np.load(f"data/attributions/{name}/segments.npz")["segments"]
    gray = fill_colour("mean", torch.as_tensor(model.transform.image_mean, dtype=torch.float32))  # the study's gray
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


def check(name: str, study, params) -> None:
    """The stopping rules of LIME and KernelSHAP fit the SLIC segment count at the
    dataset's image size."""
    size = params.datasets[study.dataset].preprocess.image_size
    for method in ("lime", "kernel_shap"):
        try:
            getattr(study.attribute, method).check_budget(
                study.attribute.num_samples, study.attribute.segments_at(size),
                f"n_segments {study.attribute.n_segments} at reference_size "
                f"{study.attribute.reference_size}, scaled to {size} px")
        except ValueError as error:
            raise ParamsError(f"params.yaml: studies.{name}.attribute.{method}.{error}") from None


def reliability(name: str, study, params, cfg, run):
    """SSD study: randomisation of every method on the first ``n_images`` explained
    boxes (the detector's layers, head first; the explained box keeps its anchor and
    class; Spearman over the pixels of the box: outside it, the anchor's receptive field
    makes even a random detector's map zero, which would count as agreement); the per-box
    scores of evaluate get the intervals. No cue masks: the boxes are
    the detection study's ground truth (``relevance_in_box``)."""
    model, test, pixels = load_detector_and_test(name, study)
    chosen = json.loads(Path(f"data/attributions/{name}/boxes.json").read_text())
    segments = np.load(f"data/attributions/{name}/segments.npz")["segments"]
    n = min(cfg.randomisation.n_images, len(chosen))

    def explainer(method):
        def explain(detector):
            return np.stack([explain_box(method, BoxLogit(detector, c["anchor"]).eval(), pixels[c["row"]:c["row"] + 1],
                                         c["label"], segments[k], study.attribute, params.seed + k)
                             for k, c in enumerate(chosen[:n])])
        return explain

    boxes = np.stack([box_mask(c["box"], *pixels.shape[-2:]) for c in chosen[:n]])
    explainers = {m: explainer(m) for m in study.attribute.methods}
    section, curves, _ = randomisation(model, explainers, cfg.randomisation.steps, cfg.randomisation.fail_threshold,
                                    params.seed, net_of=lambda detector: detector, regions=boxes,
                                    excluded=excluded_methods(cfg, name, explainers))
    return [], {"localisation": {"available": False, "reason": "detection: see relevance_in_box (the box is the "
                                                               "ground truth)"},
                "randomisation": section}, {"randomisation": curves}


KIND = register_study_kind(StudyKind(
    name="detection", schema=DetectionStudy, train=train, attribute=attribute, evaluate=evaluate,
    reliability=reliability, check=check,
    info=StudyInfo(
        "Explaining an SSD object detector on COCO",
        "One predicted box at a time of an SSD detector is explained by LRP (γ + flat rules), DeepLIFT "
        "with a blurred reference, LIME and SHAP on SLIC superpixels. The maps are scored by their "
        "entropy, pixel-flipping AUC, the share of relevance inside the box and their runtime.",
        Citation("Dreyer", "2021", "Comparison of Explainable AI Methods for Object Detection (University of "
                 "Potsdam research seminar)", "ssd-coco-lrp-deeplift-lime-shap.md"), "coco"),
    scores="entropy, pixel-flipping AUC and the share of relevance inside the box"))
