"""ImageNet classifiers explained by LIME and SHAP (the fifth study): LIME with quickshift
superpixels on InceptionV3 (top-5 predictions, top-10 superpixels drawn), SHAP's
GradientExplainer (black baseline) on ResNet50, with a PartitionExplainer (blur masker)
for comparison; runtime per explanation and insertion/deletion AUC (the catsdogs
metrics registry) and, on the twin, the share of positive relevance on the object's mask,
so the study joins the others' tables.

Real profile: ``train.pretrained: true`` (ImageNet weights, 1000 classes; ``epochs: 0``)
and ``datasets.imagenet.source: real`` with ``real.folder`` = your images. Twin: both
architectures from scratch on the ten-class imagenet twin.
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
from pydantic import Field
from tqdm import tqdm

from xaibench.data import DATASETS
from xaibench.data.images import load_split
from xaibench.explain import METHODS
from xaibench.explain.lime_method import QuickshiftLimeParams
from xaibench.explain.perturbation import fill_colour
from xaibench.explain.shap_methods import ShapGradientParams, ShapPartitionParams
from xaibench.figures import lime_top_superpixels_figure
from xaibench.metrics.detection import relevance_in_mask
from xaibench.metrics.faithfulness import collect_evidence, evidence_scores, model_evidence
from xaibench.metrics.map_statistics import map_scores
from xaibench.metrics.registry import reported
from xaibench.models import NormalizedClassifier, build_model, load_model, predict_proba, save_model
from xaibench.schema import Strict, params_hash
from xaibench.store import attribution_path, maps_of, read_attributions, store_rows, write_attributions
from xaibench.studies.classification import Evaluate
from xaibench.studies.common import images_to_explain, write_csv, write_insertion_deletion
from xaibench.studies.kind import Citation, StudyInfo, StudyKind, register_study_kind
from xaibench.studies.reliability import (classification_checks, excluded_methods, n_outputs, registry_explainer,
                                          stored_daucs, stored_scores, with_controls)
from xaibench.training.classifier import accuracy, to_tensor, train_classifier

log = logging.getLogger(__name__)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FIGURE_IMAGES = 2


class ImagenetTrain(Strict):
    epochs: int = Field(ge=0)                        # 0 with pretrained: true
    lr: float = Field(gt=0, lt=1)
    batch_size: int = Field(ge=1)
    pretrained: bool                                 # ImageNet weights (real profile)


class ImagenetAttribute(Strict):
    """The first ``n_images`` test images; each method's options: ``lime`` (the study's
    LIME: the registered ``lime_quickshift``), ``shap_gradient``, ``shap_partition``."""

    n_images: int = Field(ge=1)
    lime: QuickshiftLimeParams
    shap_gradient: ShapGradientParams
    shap_partition: ShapPartitionParams


# the study's method names -> the registered methods that compute them
REGISTERED = {"lime": "lime_quickshift", "shap_gradient": "shap_gradient", "shap_partition": "shap_partition"}


class ImagenetModels(Strict):
    lime: Literal["inception_v3"]                    # the study's LIME model
    shap: Literal["resnet50"]                        # the study's SHAP model


class ImagenetStudy(Strict):
    """LIME (InceptionV3) and SHAP (ResNet50) on ImageNet classifiers."""

    kind: Literal["imagenet"]
    dataset: str
    model: ImagenetModels
    train: ImagenetTrain
    attribute: ImagenetAttribute
    evaluate: Evaluate


def model_path(name: str, arch: str) -> Path:
    """Where the train stage saves study ``name``'s classifier ``arch``."""
    return Path(f"data/models/{name}/{arch}.pt")


def _architectures(study) -> tuple[str, str]:
    return study.model.lime, study.model.shap


def methods_by_architecture(study) -> dict[str, tuple[str, ...]]:
    """architecture -> the methods explaining it (LIME on one model, SHAP on the other)."""
    return {study.model.lime: ("lime", "random"), study.model.shap: ("shap_gradient", "shap_partition", "random")}


def train(name: str, study, params, run) -> dict:
    """Train (twin) or fetch (pretrained) both classifiers; save them; accuracies."""

    cfg = study.train
    prepared = Path(f"data/prepared/{study.dataset}")
    stats = json.loads((prepared / "stats.json").read_text())
    splits = {s: load_split(prepared, s) for s in ("train", "val", "test") if (prepared / f"{s}.npz").exists()}
    size = int(splits["test"]["images"].shape[1])
    result = {}
    for arch in _architectures(study):
        if cfg.pretrained:
            net, classes = build_model(arch, 1000, size, pretrained=True), 1000
            model = NormalizedClassifier(net, IMAGENET_MEAN, IMAGENET_STD)
            options = {"transform_input": True} if arch == "inception_v3" else {}
        else:
            classes = len(DATASETS[study.dataset].classes)
            model = NormalizedClassifier(build_model(arch, classes, size), stats["mean"], stats["std"])
            options = {}
            if cfg.epochs:
                if "train" not in splits:
                    raise FileNotFoundError(f"{prepared}/train.npz not found: a real image folder has no training "
                                            f"split; use train.pretrained: true and train.epochs: 0")
                train_classifier(model, to_tensor(splits["train"]["images"]), torch.from_numpy(splits["train"]["labels"]),
                                 to_tensor(splits["val"]["images"]), torch.from_numpy(splits["val"]["labels"]),
                                 cfg.epochs, cfg.lr, cfg.batch_size, 0.0, True, params.seed,
                                 on_epoch=lambda epoch, record, a=arch: run.log_metrics(
                                     {f"{a}.{k}": v for k, v in record.items()}, step=epoch))
        save_model(model_path(name, arch), model, arch, classes, size, options)
        labels = splits["test"]["labels"]
        if (labels >= 0).all():
            result[f"{arch}_test_accuracy"] = round(accuracy(model.eval(), to_tensor(splits["test"]["images"]),
                                                             torch.from_numpy(labels)), 6)
    run.log_metrics(result)
    return result


def _class_names(study) -> list[str]:
    """ImageNet's 1000 category names (pretrained; shipped with torchvision's weights
    metadata, no download) or the twin's classes."""
    if study.train.pretrained:
        from torchvision.models import Inception_V3_Weights  # lazy

        return list(Inception_V3_Weights.IMAGENET1K_V1.meta["categories"])
    return list(DATASETS[study.dataset].classes)


def attribute(name: str, study, params, run) -> None:
    """LIME (InceptionV3) and SHAP Gradient / Partition (ResNet50) maps of the predicted
    class, random maps for both; Parquet per (model, method); the top-superpixel figure."""

    cfg = study.attribute
    test = load_split(f"data/prepared/{study.dataset}", "test")
    n = images_to_explain(name, cfg.n_images, len(test["ids"]))
    pixels = to_tensor(test["images"][:n])
    digest = params_hash(params.datasets[study.dataset], study.train, cfg, params.seed)
    models = {arch: load_model(model_path(name, arch)) for arch in _architectures(study)}
    figure_rows = []
    for arch, names in methods_by_architecture(study).items():
        model = models[arch]
        probs = predict_proba(model, pixels)
        predicted = probs.argmax(-1)
        for method in names:
            maps, runtimes, sampling_log = [], [], []
            for i in tqdm(range(n), desc=f"{arch}/{method}", leave=False, disable=None):
                target = int(predicted[i])
                start = time.perf_counter()
                if method in REGISTERED:
                    explanations = []
                    heat = METHODS[REGISTERED[method]](model, pixels[i:i + 1], torch.tensor([target]),
                                                       seed=params.seed, options=getattr(cfg, method),
                                                       sampling_log=sampling_log,
                                                       **({"explanations": explanations} if method == "lime" else {}))[0]
                    if method == "lime" and i < FIGURE_IMAGES:
                        figure_rows.append((test["images"][i], *explanations[0]))
                else:  # the study's random control, seeded per image as the committed run's
                    heat = np.random.default_rng(params.seed + i).random(pixels.shape[-2:]).astype(np.float32)
                runtimes.append(1000 * (time.perf_counter() - start))
                maps.append(heat)
            write_attributions(attribution_path("data/attributions", name, arch, method), store_rows(
                image_ids=test["ids"][:n], labels=test["labels"][:n], targets=predicted.tolist(),
                predicted=predicted.tolist(), probabilities=probs[torch.arange(n), predicted].double().tolist(),
                method=method, model=arch, maps=np.stack(maps), runtimes_ms=runtimes, params_hash=digest,
                sampling_log=sampling_log))
            log.info("%s/%s: %.0f ms per explanation", arch, method, float(np.mean(runtimes)))
            run.log_metrics({f"runtime_ms.{arch}.{method}": float(np.mean(runtimes))})
    figure = Path(f"data/attributions/{name}/lime_top_superpixels.png")
    lime_top_superpixels_figure(figure_rows, cfg.lime.top_superpixels, figure, _class_names(study))
    run.log_artifact(figure)


def evaluate(name: str, study, params, run) -> dict:
    """Per model and method: the faithfulness metrics (IAUC, DAUC, ...), the share of
    positive relevance on the object (where masks exist); every image's faithfulness
    scores in data/reports/<study>/per_image_scores.csv (methods as ``<arch>/<method>``). Runtimes (cold, then warm) go to
    metrics/<study>_runtime.json (:mod:`xaibench.metrics.runtime`)."""


    cfg = study.evaluate
    test = load_split(f"data/prepared/{study.dataset}", "test")
    results, curves, per_image = {}, {}, []
    for arch, names in methods_by_architecture(study).items():
        model = load_model(model_path(name, arch))
        fill = fill_colour(cfg.deletion_fill, model.mean)
        shared = None   # the model calls no map enters (faithfulness.ModelEvidence), run once per model
        for method in names:
            frame = read_attributions(attribution_path("data/attributions", name, arch, method))
            pixels = to_tensor(test["images"][: len(frame)])
            maps = maps_of(frame)
            evidence = collect_evidence(model, pixels, maps, torch.tensor(frame.target.to_numpy()),
                                        cfg.steps, cfg.insertion_blur_sigma, fill, cfg.batch_size,
                                        cfg.evidence_options(params.seed), shared=shared)
            shared = model_evidence(evidence, frame.target.to_numpy())
            values = {**evidence_scores(evidence),
                      **map_scores(maps)}
            scores = {metric: reported(np.nanmean(v)) for metric, v in values.items()}
            per_image += [{"method": f"{arch}/{method}", "image_id": image_id, "metric": metric, "value": float(v[k])}
                          for metric, v in values.items() for k, image_id in enumerate(frame.image_id)]
            masks = test["masks"][: len(frame)]
            if masks.any():  # the twin's object masks (a real folder may have none)
                inside = [relevance_in_mask(m, k) for m, k in zip(maps, masks) if k.any()]
                scores["relevance_in_object"] = round(float(np.nanmean(inside)), 6)
            results.setdefault(arch, {})[method] = scores
            curves[f"{arch}/{method}"] = {"insertion": evidence.insertion_scores.mean(0),
                                          "deletion": evidence.deletion_scores.mean(0)}
            log.info("%s/%s: %s", arch, method, scores)
            run.log_metrics({f"{k}.{arch}.{method}": v for k, v in scores.items()})
    fractions = np.linspace(0, 1, cfg.steps + 1)
    write_insertion_deletion(name, fractions, curves, run)
    write_csv(f"data/reports/{name}/per_image_scores.csv", pd.DataFrame(per_image))  # for the reliability stage
    return results


def reliability(name: str, study, params, cfg, run):
    """Per architecture (methods named ``<arch>/<method>``): the classification checks,
    the edge control added to each model's methods; LIME (quickshift) and the two SHAP
    explainers re-run through the registry as the attribute stage runs them, on the same
    targets, for the randomisation."""
    test = load_split(f"data/prepared/{study.dataset}", "test")
    cfg_a, seed = study.attribute, params.seed

    rows, sections, plots = [], {}, {}
    ev = study.evaluate
    by_architecture = methods_by_architecture(study)
    stored = stored_scores(name, name)   # evaluate's DAUCs: its deletion fill is not run again
    excluded = excluded_methods(cfg, name, {*cfg.controls, *(m for names in by_architecture.values() for m in names)})
    for arch, names in by_architecture.items():
        model = load_model(model_path(name, arch))
        frames = {m: read_attributions(attribution_path("data/attributions", name, arch, m)) for m in names}
        first = next(iter(frames.values()))
        ids, targets = list(first.image_id), torch.tensor(first.target.to_numpy())
        pixels = to_tensor(test["images"][: len(ids)])
        maps = with_controls({m: maps_of(f) for m, f in frames.items()}, pixels, targets, cfg.controls, seed)
        n = min(cfg.randomisation.n_images, len(ids))
        explainers = {m: (registry_explainer(m, pixels[:n], targets[:n], seed) if m in cfg.controls
                          else registry_explainer(REGISTERED[m], pixels[:n], targets[:n], seed, getattr(cfg_a, m)))
                      for m in maps}
        arch_rows, arch_sections, arch_plots = classification_checks(
            model, pixels, targets, ids, maps, explainers, study.dataset, test["ids"], cfg, seed,
            n_outputs(model, pixels),
            faithfulness=(ev.steps, ev.insertion_blur_sigma, ev.batch_size), excluded=excluded, study=name,
            scored=stored_daucs(stored, ids, ev.deletion_fill, prefix=f"{arch}/"))
        rows += [{**r, "method": f"{arch}/{r['method']}"} for r in arch_rows]
        for key, value in arch_sections.items():
            sections.setdefault(key, {})[arch] = value
        plots[f"randomisation_{arch}"] = arch_plots["randomisation"]
    return rows, sections, plots


KIND = register_study_kind(StudyKind(
    name="imagenet", schema=ImagenetStudy, train=train, attribute=attribute, evaluate=evaluate,
    reliability=reliability,
    info=StudyInfo(
        "LIME and SHAP on ImageNet classifiers",
        "InceptionV3 is explained by LIME on quickshift segments, ResNet50 by SHAP (gradient and "
        "partition explainers). The maps are scored by the insertion/deletion metrics of the "
        "cats-vs-dogs study and by how much relevance falls on the object.",
        Citation("Khalid", "2025",
                 "Assignment 1: Interpretability with LIME and SHAP (Advanced Topics in Deep Learning, "
                 "FAU Erlangen-Nürnberg)", "imagenet-lime-shap.md"), "imagenet"),
    scores="insertion and deletion curves and the share of relevance on the object"))
