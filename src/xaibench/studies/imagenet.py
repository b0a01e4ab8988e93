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
from pydantic import Field, model_validator
from torchvision.models import Inception_V3_Weights
from tqdm import tqdm

from xaibench.data import DATASETS
from xaibench.data.images import load_split
from xaibench.explain.lime_method import sampling_options, segment_weights_to_map
from xaibench.explain.perturbation import fill_colour, fill_image, lime
from xaibench.figures import lime_top_superpixels_figure
from xaibench.metrics import METRICS
from xaibench.metrics.detection import relevance_in_mask
from xaibench.metrics.faithfulness import collect_evidence
from xaibench.models import NormalizedClassifier, build_model, load_model, predict_proba, save_model
from xaibench.schema import Sampled, Strict, params_hash
from xaibench.store import attribution_path, maps_of, read_attributions, store_rows, write_attributions
from xaibench.studies.classification import Evaluate
from xaibench.studies.common import images_to_explain, write_csv, write_insertion_deletion
from xaibench.studies.kind import Citation, StudyInfo, StudyKind, register_study_kind
from xaibench.studies.reliability import (classification_checks, excluded_methods, n_outputs, registry_explainer,
                                          with_controls)
from xaibench.training.classifier import accuracy, to_tensor, train_classifier

log = logging.getLogger(__name__)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FIGURE_IMAGES = 2


class ImagenetTrain(Strict):
    epochs: int = Field(ge=0)                        # 0 with pretrained: true
    lr: float = Field(gt=0, lt=1)
    batch_size: int = Field(ge=1)
    pretrained: bool                                 # ImageNet weights (real profile)


class QuickshiftLime(Sampled):
    num_samples: int = Field(ge=10)
    batch_size: int = Field(ge=1)
    kernel_size: float = Field(gt=0)                 # lime's quickshift defaults: 4, 200, 0.2
    max_dist: float = Field(gt=0)
    ratio: float = Field(ge=0, le=1)
    top_labels: int = Field(ge=1)                    # 5 in the study
    top_superpixels: int = Field(ge=1)               # 10 in the study's figure

    @model_validator(mode="after")
    def _budget(self):
        self.check_budget(self.num_samples, None)  # quickshift's segment count is the image's
        return self


class ShapParams(Strict):
    nsamples: int = Field(ge=1)                      # GradientExplainer samples per image
    partition_max_evals: int = Field(ge=10)          # PartitionExplainer budget per image
    blur: int = Field(ge=1)                          # blur(k, k) masker kernel


class ImagenetAttribute(Strict):
    n_images: int = Field(ge=1)
    lime: QuickshiftLime
    shap: ShapParams


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
        return list(Inception_V3_Weights.IMAGENET1K_V1.meta["categories"])

    return list(DATASETS[study.dataset].classes)


def quickshift_segments(image: np.ndarray, cfg, seed: int) -> np.ndarray:
    """lime's quickshift wrapper (``kernel_size``, ``max_dist``, ``ratio``) on [H, W, 3] in [0, 1]."""
    from lime.wrappers.scikit_image import SegmentationAlgorithm  # lazy: lime

    algorithm = SegmentationAlgorithm("quickshift", kernel_size=cfg.kernel_size, max_dist=cfg.max_dist,
                                      ratio=cfg.ratio, random_seed=seed)
    return algorithm(image.astype(np.float64)).astype(np.int64)


def lime_top_labels(model, image: torch.Tensor, segments: np.ndarray, cfg, seed: int, sampling_log=None):
    """(top labels [L], segment weights [K, L]) with lime_image's defaults: hidden
    superpixels take their own mean colour (``hide_color=None``); one sampling for all L
    (``cfg.sampling``: fixed, or adaptive until every label's top segments are stable).
    ``sampling_log`` gets (samples, stopped_early)."""

    with torch.no_grad():
        labels = model(image[None]).softmax(-1)[0].topk(cfg.top_labels).indices

    def probs(batch):
        return model(batch).softmax(-1)[:, labels]

    fill = fill_image(image, "segment_mean", segments=segments)
    estimate = lime(probs, image, segments, fill, cfg.num_samples, cfg.batch_size, seed=seed,
                    **sampling_options(cfg))
    if sampling_log is not None:
        sampling_log.append((estimate.samples, estimate.stopped_early))
    return labels.numpy(), np.asarray(estimate.values)


class _Output(torch.nn.Module):
    """The model's logit ``target`` as a one-output model (GradientExplainer otherwise
    differentiates every class: C backward passes per sample)."""

    def __init__(self, model, target: int):
        super().__init__()
        self.model, self.target = model, target

    def forward(self, x):
        return self.model(x)[:, self.target:self.target + 1]


def shap_gradient(model, image: torch.Tensor, target: int, nsamples: int, seed: int) -> np.ndarray:
    """SHAP GradientExplainer (expected gradients) of the target logit against a black
    image: map [H, W]."""
    import shap  # lazy: shap

    explainer = shap.GradientExplainer(_Output(model, target), torch.zeros_like(image[None]))
    values = np.asarray(explainer.shap_values(image[None].clone(), nsamples=nsamples, rseed=seed))
    return values.reshape(3, *image.shape[-2:]).sum(0).astype(np.float32)  # [1, 3, H, W, 1] -> [H, W]


def shap_partition(model, image: torch.Tensor, target: int, max_evals: int, blur: int, batch_size: int) -> np.ndarray:
    """SHAP PartitionExplainer with a ``blur(k, k)`` image masker: map [H, W]."""
    import shap  # lazy: shap

    def f(batch_hwc):
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(batch_hwc)).permute(0, 3, 1, 2).float()
            return model(x).softmax(-1)[:, target:target + 1].numpy()

    hwc = image.permute(1, 2, 0).numpy().astype(np.float32)
    masker = shap.maskers.Image(f"blur({blur},{blur})", hwc.shape)
    explanation = shap.PartitionExplainer(f, masker)(hwc[None], max_evals=max_evals, batch_size=batch_size,
                                                     silent=True)
    return np.asarray(explanation.values)[0, ..., 0].sum(-1).astype(np.float32)


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
                if method == "lime":
                    segments = quickshift_segments(test["images"][i] / 255.0, cfg.lime, params.seed)
                    labels, weights = lime_top_labels(model, pixels[i], segments, cfg.lime, params.seed, sampling_log)
                    heat = segment_weights_to_map(segments, dict(enumerate(weights[:, 0])))
                    if i < FIGURE_IMAGES:
                        figure_rows.append((test["images"][i], segments, labels, weights))
                elif method == "shap_gradient":
                    heat = shap_gradient(model, pixels[i], target, cfg.shap.nsamples, params.seed)
                elif method == "shap_partition":
                    heat = shap_partition(model, pixels[i], target, cfg.shap.partition_max_evals, cfg.shap.blur,
                                          cfg.lime.batch_size)
                else:
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
        for method in names:
            frame = read_attributions(attribution_path("data/attributions", name, arch, method))
            pixels = to_tensor(test["images"][: len(frame)])
            maps = maps_of(frame)
            evidence = collect_evidence(model, pixels, maps, torch.tensor(frame.target.to_numpy()),
                                        cfg.steps, cfg.insertion_blur_sigma, fill, cfg.batch_size)
            values = {metric: fn(evidence) for metric, fn in METRICS.items()}
            scores = {metric: round(float(np.nanmean(v)), 6) for metric, v in values.items()}
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
    explainers re-run as the attribute stage runs them, for the randomisation."""
    test = load_split(f"data/prepared/{study.dataset}", "test")
    cfg_a, seed = study.attribute, params.seed

    def study_explainer(method, images, pixels, targets):
        def one(model, i):
            if method == "lime":
                segments = quickshift_segments(images[i] / 255.0, cfg_a.lime, seed)
                _, weights = lime_top_labels(model, pixels[i], segments, cfg_a.lime, seed)
                return segment_weights_to_map(segments, dict(enumerate(weights[:, 0])))
            if method == "shap_gradient":
                return shap_gradient(model, pixels[i], int(targets[i]), cfg_a.shap.nsamples, seed)
            return shap_partition(model, pixels[i], int(targets[i]), cfg_a.shap.partition_max_evals,
                                           cfg_a.shap.blur, cfg_a.lime.batch_size)

        return lambda model: np.stack([one(model, i) for i in range(len(pixels))])

    rows, sections, plots = [], {}, {}
    ev = study.evaluate
    by_architecture = methods_by_architecture(study)
    excluded = excluded_methods(cfg, name, {*cfg.controls, *(m for names in by_architecture.values() for m in names)})
    for arch, names in by_architecture.items():
        model = load_model(model_path(name, arch))
        frames = {m: read_attributions(attribution_path("data/attributions", name, arch, m)) for m in names}
        first = next(iter(frames.values()))
        ids, targets = list(first.image_id), torch.tensor(first.target.to_numpy())
        pixels = to_tensor(test["images"][: len(ids)])
        maps = with_controls({m: maps_of(f) for m, f in frames.items()}, pixels, targets, cfg.controls, seed)
        n = min(cfg.randomisation.n_images, len(ids))
        explainers = {m: (registry_explainer(m, pixels[:n], targets[:n], seed, {}) if m in cfg.controls
                          else study_explainer(m, test["images"][:n], pixels[:n], targets[:n])) for m in maps}
        arch_rows, arch_sections, arch_plots = classification_checks(
            model, pixels, targets, ids, maps, explainers, study.dataset, test["ids"], cfg, seed,
            n_outputs(model, pixels),
            faithfulness=(ev.steps, ev.insertion_blur_sigma, ev.batch_size), excluded=excluded)
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
