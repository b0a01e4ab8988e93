"""The GAD study (Mazini Rodrigues, Boutry & Najman 2024): ResNet18/VGG16 on cats-vs-dogs
and CUB warbler-vs-sparrow, support regressions for each α, five gradient methods,
original vs GAD maps, convex-hull complexity RC and sensitivity RS (tables 1 and 2).

A study kind whose study is a grid: one cell per (architecture, dataset), each trained,
explained and checked by the shared stage scripts (``python stages/train.py gad
resnet18_cub``), and one step of its own between train and attribute, the support models
of every cell for one α (``python stages/step.py gad support 4``). Configured by the
top-level ``gad:`` section of params.yaml; dvc.yaml gives the grid its stages
(``gad_train``, ``gad_support``, ``gad_attribute``, ``gad_evaluate``, ``gad_reliability``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from xaibench.data import DATASETS
from xaibench.data.images import load_split
from xaibench.explain import METHODS
from xaibench.explain.gad import gad_map, intersected_alphas
from xaibench.figures import gad_hulls_figure, hull_areas_figure
from xaibench.metrics.complexity import gad_hulls, relative_complexity, relative_sensitivity, supplementary_mask
from xaibench.metrics.reliability import model_above_chance
from xaibench.models import NormalizedClassifier, build_model, load_model, predict_proba, save_model
from xaibench.models.torchvision_models import architecture_options
from xaibench.schema import ParamsError, Strict, params_hash
from xaibench.store import attribution_path, maps_of, read_attributions, store_rows, write_attributions
from xaibench.studies.classification import MethodOptions, with_method_sections
from xaibench.studies.common import write_csv
from xaibench.studies.kind import Citation, StudyInfo, StudyKind, StudyStep, register_study_kind
from xaibench.studies.reliability import (excluded_methods, localisation, randomisation, registry_explainer, study_cues,
                                          with_controls)
from xaibench.training.classifier import accuracy, to_tensor, train_classifier
from xaibench.training.regression import logits_of, support_fit, train_support_model

ROOT = Path("data/models/gad")


class GADTrain(Strict):
    epochs: int = Field(ge=1)
    lr: float = Field(gt=0, lt=1)
    batch_size: int = Field(ge=1)
    max_train_images: int | None = Field(default=None, ge=4)
    pretrained: bool                                   # ImageNet weights (real profile; needs the network)


class GADSupport(Strict):
    alphas: list[float] = Field(min_length=1)
    max_images: int | None = Field(default=None, ge=4)  # training images the regressions see
    epochs: int = Field(ge=1)
    lr: float = Field(gt=0, lt=1)
    batch_size: int = Field(ge=1)

    @field_validator("alphas")
    @classmethod
    def _alphas(cls, value):
        if any(a < 0 for a in value) or len(set(value)) != len(value):
            raise ValueError("alphas must be distinct and >= 0")
        return value


GAD_METHODS = ("saliency", "deconvolution", "input_x_gradient", "guided_backprop", "integrated_gradients")


class _GADAttributeBase(MethodOptions):
    n_per_class: int = Field(ge=1)                     # 256 per class in the paper
    methods: list[Literal[GAD_METHODS]] = Field(min_length=1)


GADAttribute = with_method_sections(_GADAttributeBase, "GADAttribute", """The gradient methods GAD
    explains with, ``n_per_class`` test images of each class; a method's options are its
    section (``integrated_gradients: {n_steps: ...}``).""")


class GADEvaluate(Strict):
    hull_fraction: float = Field(gt=0, le=1)           # hull of each map's own top 50 % of pixels (section 6) ...
    hull_threshold: float = Field(0.1, ge=0, lt=1)    # ... above 10 % of its largest value (Figure 4); 0: the half


class GAD(Strict):
    """The top-level ``gad:`` section (the GAD study's grid)."""

    kind: Literal["gad"] = "gad"
    datasets: list[str] = Field(min_length=1)
    architectures: list[Literal["resnet18", "vgg16"]] = Field(min_length=1)
    image_size: int = Field(ge=32)
    train: GADTrain
    support: GADSupport
    attribute: GADAttribute
    evaluate: GADEvaluate


INFO = StudyInfo(
    "GAD: gradient artificial distancing",
    "Support regression models pull the classes of a ResNet18 / VGG16 apart (α = 0..8), and five "
    "gradient methods keep only the pixels whose relevance survives that distancing. The maps are "
    "scored by the convex-hull complexity RC and the sensitivity RS of the kept region.",
    Citation("Mazini Rodrigues, Boutry & Najman", "2024",
             "Transforming gradient-based techniques into interpretable methods", "gad-gradient-artificial-distancing.md"))


def original_path(arch: str, dataset: str) -> Path:
    return ROOT / "original" / f"{arch}_{dataset}.pt"


def support_path(arch: str, dataset: str, alpha: float) -> Path:
    return ROOT / f"support_alpha{alpha:g}" / f"{arch}_{dataset}.pt"


def load_pixels(dataset: str, split: str, image_size: int, limit: int | None = None):
    """(pixels [N, 3, S, S] in [0, 1] resized to ``image_size``, labels, ids) of a prepared split."""
    data = load_split(f"data/prepared/{dataset}", split)
    n = len(data["labels"]) if limit is None else min(limit, len(data["labels"]))
    pixels = to_tensor(data["images"][:n])
    if pixels.shape[-1] != image_size:
        pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", antialias=True,
                               align_corners=False).clamp(0, 1)
    return pixels, torch.from_numpy(data["labels"][:n]), data["ids"][:n]


def balanced_first(labels: torch.Tensor, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` images of each class (in split order)."""
    labels = labels.numpy()
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]))


def new_model(arch: str, dataset: str, image_size: int, pretrained: bool) -> NormalizedClassifier:
    stats = json.loads(Path(f"data/prepared/{dataset}/stats.json").read_text())
    net = build_model(arch, len(DATASETS[dataset].classes), image_size, pretrained=pretrained)
    return NormalizedClassifier(net, stats["mean"], stats["std"])


def load_family(arch: str, dataset: str, alphas: list[float]):
    """(original model, [support model per α]) in eval mode."""
    original = load_model(original_path(arch, dataset))
    return original, [load_model(support_path(arch, dataset, a)) for a in alphas]


def train_original(arch: str, dataset: str, gad, seed: int, run) -> dict:
    """Train the classifier of one (architecture, dataset) cell; save it; return accuracies."""

    cfg = gad.train
    train_x, train_y, _ = load_pixels(dataset, "train", gad.image_size, cfg.max_train_images)
    val_x, val_y, _ = load_pixels(dataset, "val", gad.image_size)
    test_x, test_y, _ = load_pixels(dataset, "test", gad.image_size)
    model = new_model(arch, dataset, gad.image_size, cfg.pretrained)
    train_classifier(model, train_x, train_y, val_x, val_y, cfg.epochs, cfg.lr, cfg.batch_size, 0.0, True, seed,
                     on_epoch=lambda epoch, record: run.log_metrics(record, step=epoch))
    save_model(original_path(arch, dataset), model, arch, len(DATASETS[dataset].classes),
               gad.image_size, architecture_options(arch, cfg.pretrained))
    result = {f"{name}_accuracy": round(accuracy(model, x, y), 6)
              for name, x, y in (("train", train_x, train_y), ("val", val_x, val_y), ("test", test_x, test_y))}
    run.log_metrics(result)
    return result


def train_support(arch: str, dataset: str, alpha: float, gad, seed: int, run) -> dict:
    """Fine-tune the support regression model of one cell for one α; save it; return its
    training MSE per epoch and its fit (:func:`xaibench.training.regression.support_fit`:
    final MSE, the untrained copy's MSE, the achieved shift of the other-class logit).
    Metrics go to ``run`` as ``<arch>_<dataset>.<name>``."""

    cfg = gad.support
    original = load_model(original_path(arch, dataset))
    limits = [n for n in (gad.train.max_train_images, cfg.max_images) if n is not None]
    limit = min(limits) if limits else None
    pixels, labels, _ = load_pixels(dataset, "train", gad.image_size, limit)
    mse = {}

    def on_epoch(epoch, record):
        mse[f"epoch_{epoch}"] = round(record["mse"], 6)
        run.log_metrics({f"{arch}_{dataset}.train_mse": record["mse"]}, step=epoch)

    before = logits_of(original, pixels)     # the targets' and the fit's: computed once
    support = train_support_model(original, pixels, labels, alpha, cfg.epochs, cfg.lr, cfg.batch_size, seed,
                                  on_epoch=on_epoch, original_logits=before)
    checkpoint = torch.load(original_path(arch, dataset), map_location="cpu", weights_only=True)
    save_model(support_path(arch, dataset, alpha), support, arch, checkpoint["num_classes"], gad.image_size,
               checkpoint.get("options"))
    fit = {k: round(v, 6) for k, v in support_fit(original, support, pixels, labels, alpha, before).items()}
    run.log_metrics({f"{arch}_{dataset}.{k}": v for k, v in fit.items() if v == v})
    return {**fit, "n_images": len(labels), "train_mse": mse}


def attribute(arch: str, dataset: str, gad, seed: int, run) -> None:
    """Original and GAD maps of every method, for both classes of each image -> Parquet."""


    cfg = gad.attribute
    pixels, labels, ids = load_pixels(dataset, "test", gad.image_size)
    keep = balanced_first(labels, cfg.n_per_class)
    pixels, labels, ids = pixels[keep], labels[keep], ids[keep]
    original, supports = load_family(arch, dataset, intersected_alphas(gad.support.alphas))
    probs = predict_proba(original, pixels)
    predicted = probs.argmax(-1)
    digest = params_hash(gad, seed)
    n = len(pixels)
    for method in cfg.methods:
        explain = METHODS[method]
        options = cfg.options_for(method)
        columns = {key: [] for key in ("image_id", "label", "target", "predicted", "probability", "variant",
                                       "attribution", "runtime_ms")}
        for target_class in range(probs.shape[1]):
            targets = torch.full((n,), target_class)
            start = time.perf_counter()
            original_maps = explain(original, pixels, targets, seed=seed, options=options)
            original_ms = 1000 * (time.perf_counter() - start) / n
            support_maps = [explain(s, pixels, targets, seed=seed, options=options) for s in supports]
            gad_maps = np.stack([gad_map(original_maps[i], [m[i] for m in support_maps]) for i in range(n)])
            gad_ms = 1000 * (time.perf_counter() - start) / n
            for variant, maps, ms in (("original", original_maps, original_ms), ("gad", gad_maps, gad_ms)):
                columns["image_id"] += [str(i) for i in ids]
                columns["label"] += labels.tolist()
                columns["target"] += [target_class] * n
                columns["predicted"] += predicted.tolist()
                columns["probability"] += probs[:, target_class].double().tolist()
                columns["variant"] += [variant] * n
                columns["attribution"] += list(maps)
                columns["runtime_ms"] += [ms] * n
        write_attributions(attribution_path("data/attributions/gad", f"{arch}_{dataset}", arch, method), store_rows(
            image_ids=columns["image_id"], labels=columns["label"], targets=columns["target"],
            predicted=columns["predicted"], probabilities=columns["probability"], method=method, model=arch,
            maps=np.stack(columns["attribution"]), runtimes_ms=columns["runtime_ms"], params_hash=digest,
            variant=columns["variant"]))
        run.log_metrics({f"runtime_ms.{method}": float(np.mean(columns["runtime_ms"]))})


def defined_mean(values) -> float | None:
    """Mean of the defined (non-NaN) values, rounded to 6 places; None where none is."""
    values = np.asarray(values, np.float64)
    return None if np.isnan(values).all() else round(float(np.nanmean(values)), 6)


def evaluate(gad, seed: int, run) -> tuple[dict, list, list, list]:
    """Tables 1 and 2: RC counts (< 1 vs >= 1) and mean RS (GAD hull, supplementary mask)
    per architecture, dataset, method and class, with the quartiles of both hulls' areas.
    Also returns figure panels, every image's RC and RS rows (cell, method, image_id =
    ``<id>/<class>``, metric, value) and its hull areas (cell, method, image_id, original, gad:
    shares of the image)."""

    results, panels, per_image, hull_areas = {}, [], [], []
    for arch in gad.architectures:
        for dataset in gad.datasets:
            pixels, labels, ids = load_pixels(dataset, "test", gad.image_size)
            position = {str(i): k for k, i in enumerate(ids)}
            original = load_model(original_path(arch, dataset))
            classes = DATASETS[dataset].classes
            for method in gad.attribute.methods:
                frame = read_attributions(attribution_path("data/attributions/gad", f"{arch}_{dataset}", arch, method))
                cell = {}
                for target_class in sorted(frame.target.unique()):
                    rows = frame[frame.target == target_class]
                    orig = rows[rows.variant == "original"]
                    gadf = rows[rows.variant == "gad"]
                    orig_maps, gad_maps = maps_of(orig), maps_of(gadf)
                    rc, rs_gad, rs_supp, areas = [], [], [], ([], [])
                    for k, image_id in enumerate(orig.image_id):
                        hull_orig, hull_gad = gad_hulls(orig_maps[k], gad_maps[k], gad.evaluate.hull_fraction,
                                                        gad.evaluate.hull_threshold)
                        areas[0].append(hull_orig.mean())
                        areas[1].append(hull_gad.mean())
                        rc.append(relative_complexity(hull_gad, hull_orig))
                        image = pixels[position[image_id]]
                        rs_gad.append(relative_sensitivity(original, image, hull_gad, int(target_class)))
                        rs_supp.append(relative_sensitivity(original, image, supplementary_mask(hull_orig, hull_gad),
                                                           int(target_class)))
                        if len(panels) < 6 and method == gad.attribute.methods[0] and k == 0:
                            panels.append((f"{arch}/{dataset}/{classes[int(target_class)]}", image, orig_maps[k],
                                           gad_maps[k], hull_orig, hull_gad))
                    per_image += [{"cell": f"{arch}_{dataset}", "method": method,
                                   "image_id": f"{image_id}/{classes[int(target_class)]}", "metric": metric,
                                   "value": float(values[k])}
                                  for metric, values in (("RC", rc), ("RS_gad", rs_gad),
                                                         ("RS_supplementary", rs_supp))
                                  for k, image_id in enumerate(orig.image_id)]
                    hull_areas += [{"cell": f"{arch}_{dataset}", "method": method,
                                    "image_id": f"{image_id}/{classes[int(target_class)]}",
                                    "original": float(areas[0][k]), "gad": float(areas[1][k])}
                                   for k, image_id in enumerate(orig.image_id)]
                    rc = np.asarray(rc)
                    cell[classes[int(target_class)]] = {
                        "rc_below_1": int((rc < 1).sum()), "rc_at_least_1": int((rc >= 1).sum()),
                        "rc_mean": defined_mean(rc), "rs_gad": defined_mean(rs_gad),
                        "rs_supplementary": defined_mean(rs_supp),
                        # RS of an empty supplementary set (GAD's hull covers the original's) is undefined
                        "rs_supplementary_images": int(np.isfinite(rs_supp).sum()),
                        # share of the image each hull covers: quartiles over the images
                        "hull_area_original": area_quartiles(areas[0]), "hull_area_gad": area_quartiles(areas[1]),
                    }
                results.setdefault(arch, {}).setdefault(dataset, {})[method] = cell
    return results, panels, per_image, hull_areas


def area_quartiles(areas) -> dict[str, float | None]:
    """{min, q1, median, q3, max} of hull areas (shares of the image), 4 decimals."""
    values = np.asarray(areas, float)
    if not len(values):
        return {k: None for k in ("min", "q1", "median", "q3", "max")}
    q = np.quantile(values, [0, 0.25, 0.5, 0.75, 1])
    return dict(zip(("min", "q1", "median", "q3", "max"), (round(float(v), 4) for v in q)))


def _grid(gad) -> dict[str, tuple[str, str]]:
    """Cell ``<architecture>_<dataset>`` -> (architecture, dataset), for every pair."""
    return {f"{arch}_{dataset}": (arch, dataset) for arch in gad.architectures for dataset in gad.datasets}


def grid_cells(name: str, gad) -> dict[str, str]:
    """The grid: one cell ``<architecture>_<dataset>`` per pair, mapped to its dataset."""
    return {cell: dataset for cell, (_, dataset) in _grid(gad).items()}


def cell_parts(cell: str, gad) -> tuple[str, str]:
    """(architecture, dataset) of the cell ``<architecture>_<dataset>``."""
    parts = _grid(gad)
    if cell not in parts:
        raise ParamsError(f"params.yaml: gad: no cell {cell!r} in the grid of gad.architectures x gad.datasets "
                          f"(cells: {sorted(parts)})")
    return parts[cell]


def train_cell(cell: str, gad, params, run) -> dict:
    """The train stage of a cell: its classifier (:func:`train_original`)."""
    return train_original(*cell_parts(cell, gad), gad, params.seed, run)


def support_step(name: str, gad, params, run, alpha: float) -> dict:
    """The support step for one α: the support model of every cell (:func:`train_support`);
    one step per α, so adding an α fits only the new models."""
    result = {"alpha": alpha}
    for arch in gad.architectures:
        for dataset in gad.datasets:
            result.setdefault(arch, {})[dataset] = train_support(arch, dataset, alpha, gad, params.seed, run)
    return result


def attribute_cell(cell: str, gad, params, run) -> None:
    """The attribute stage of a cell: original and GAD maps (:func:`attribute`)."""
    attribute(*cell_parts(cell, gad), gad, params.seed, run)


def evaluate_grid(name: str, gad, params, run) -> dict:
    """The evaluate stage: tables 1 and 2 (:func:`evaluate`) as the JSON of
    metrics/<name>.json; every image's RC and RS -> data/reports/<name>/per_image_scores.csv
    (with its cell), the original and GAD maps with their hulls -> .../hulls.png, every hull's
    area -> .../hull_areas.csv and their distribution per cell and method -> .../hull_areas.png."""
    results, panels, per_image, hull_areas = evaluate(gad, params.seed, run)
    write_csv(f"data/reports/{name}/per_image_scores.csv", pd.DataFrame(per_image))
    write_csv(f"data/reports/{name}/hull_areas.csv", pd.DataFrame(hull_areas))
    figures = {f"data/reports/{name}/hulls.png": lambda path: gad_hulls_figure(panels, path),
               f"data/reports/{name}/hull_areas.png": lambda path: hull_areas_figure(pd.DataFrame(hull_areas), path)}
    for path, draw in figures.items():
        draw(path)
        run.log_artifact(path)
    return results


def reliability(cell: str, gad, params, cfg, run) -> tuple[list, dict, dict]:
    """The reliability checks of one cell: the localisation of the original and the GAD maps
    of the predicted class (``<method>+gad``) and of the controls against the dataset's cue
    masks, and the randomisation of every gradient method on the original classifier (the
    intervals of RC and RS come from the evaluate stage's per-image scores). Returns
    (per-image rows, sections, plots)."""
    arch, dataset = cell_parts(cell, gad)
    seed = params.seed
    pixels, labels, ids = load_pixels(dataset, "test", gad.image_size)
    position = {str(i): k for k, i in enumerate(ids)}
    model = load_model(original_path(arch, dataset))
    correct = int((predict_proba(model, pixels).argmax(-1) == labels).sum())
    learned = model_above_chance(correct, len(labels), len(DATASETS[dataset].classes), cfg.level)
    maps, picked, targets = {}, None, None
    for method in gad.attribute.methods:
        frame = read_attributions(attribution_path("data/attributions/gad", cell, arch, method))
        frame = frame[frame.target == frame.predicted]
        for variant, name in (("original", method), ("gad", f"{method}+gad")):
            rows = frame[frame.variant == variant]
            maps[name] = maps_of(rows)
            picked = [position[str(i)] for i in rows.image_id]
            targets = torch.tensor(rows.target.to_numpy())
    image_ids = [str(ids[k]) for k in picked]
    images = pixels[picked]
    maps = with_controls(maps, images, targets, cfg.controls, seed)
    rows, localisation_section = localisation(maps, image_ids, study_cues(dataset, image_ids))
    n = min(cfg.randomisation.n_images, len(picked))
    explainers = {m: registry_explainer(m, images[:n], targets[:n], seed,
                                        gad.attribute.options_for(m) if m in gad.attribute.methods else None)
                  for m in [*gad.attribute.methods, *cfg.controls]}
    section, curves, _ = randomisation(model, explainers, cfg.randomisation.steps, cfg.randomisation.fail_threshold,
                                    seed, excluded=excluded_methods(cfg, "gad", explainers))
    return (rows, {"model": learned, "localisation": localisation_section, "randomisation": section},
            {"randomisation": curves})


KIND = register_study_kind(StudyKind(
    name="gad", schema=GAD, info=INFO, section="gad", cells=grid_cells, train=train_cell,
    steps={"support": StudyStep(support_step, "alpha", float)}, attribute=attribute_cell, evaluate=evaluate_grid,
    reliability=reliability, evaluate_folders=("data/reports/{name}",),
    scores="the convex-hull complexity RC and the sensitivity RS of the region GAD keeps"))
