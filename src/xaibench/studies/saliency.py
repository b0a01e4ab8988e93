"""Saliency studies (cats-vs-dogs, or your own model on your own images): a classifier
explained by heatmap methods, scored by perturbation faithfulness.

Reproduces Siwek et al., "Explainability of Convolutional Neural Network"
(``shared/sources/catsdogs-lrp-gradcam-deeplift-lime.md``): a CNN on Kaggle cats vs dogs
explained by LRP, Grad-CAM, DeepLIFT and LIME; insertion/deletion AUC and correlation,
average drop and increase in confidence.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator, model_validator

from xaibench.compute import map_chunks
from xaibench.data import dataset_classes
from xaibench.data.images import load_split, read_rows
from xaibench.explain import METHODS, refusal
from xaibench.explain.axioms import axiom_summary
from xaibench.explain.perturbation import fill_colour
from xaibench.figures import heatmap_grid
from xaibench.metrics import MAP_METRICS
from xaibench.metrics.registry import reported
from xaibench.metrics.faithfulness import (EvidenceChunk, EvidenceOptions, ModelEvidence, chunk_evidence,
                                          concatenate_evidence, evidence_scores, model_evidence)
from xaibench.metrics.map_statistics import map_scores
from xaibench.models import MODELS
from xaibench.models.external import check_runs_at, is_external, meta_net
from xaibench.schema import ParamsError
from xaibench.store import attribution_path, iter_attributions, maps_of, read_attributions
from xaibench.studies.classification import (ClassifierStudy, Evaluate, MethodOptions, Train, train_classifier_study,
                                             with_method_sections)
from xaibench.studies.common import (ResumeCache, explain_and_store, images_to_explain, load_model_and_test, write_csv,
                                     write_insertion_deletion)
from xaibench.studies.kind import Citation, StudyInfo, StudyKind, register_study_kind
from xaibench.studies.reliability import (classification_checks, excluded_methods, registry_explainer, stored_daucs,
                                          stored_scores, with_controls)
from xaibench.training.classifier import cross_entropy_loss, to_tensor

log = logging.getLogger(__name__)
GRID_IMAGES = 6


class _AttributeBase(MethodOptions):
    n_images: int = Field(ge=1)


Attribute = with_method_sections(_AttributeBase, "Attribute", """Explain the first ``n_images`` test images
    with each of ``methods``; a method's own options are its section here (``lime:``,
    ``gradcam:``: :class:`MethodOptions`).""")


class SaliencyTrain(Train):
    """``train`` of a saliency study: ``weights`` are what training starts from (kept under
    ``train`` so that changing them reruns the train stage, like ``pretrained`` elsewhere)."""

    weights: str = "none"                            # none | imagenet | checkpoint path; torchvision:/timm: only

    @field_validator("weights")
    @classmethod
    def _weights(cls, value):
        if value not in ("none", "imagenet") and not value.endswith((".pt", ".pth", ".safetensors")):
            raise ValueError(f"give none, imagenet or a .pt/.pth/.safetensors path (given: {value!r})")
        return value


class SaliencyStudy(ClassifierStudy):
    """A classifier explained by heatmap methods, scored by perturbation faithfulness.
    ``model`` may be ``torchvision:<builder>`` or ``timm:<name>`` with
    ``train.weights`` none | imagenet | a checkpoint path."""

    kind: Literal["saliency"]
    train: SaliencyTrain
    attribute: Attribute
    evaluate: Evaluate

    @model_validator(mode="before")
    @classmethod
    def _weights_moved(cls, data):
        if isinstance(data, dict) and "weights" in data:
            raise ValueError("`weights` is now `train.weights` (there, a new checkpoint reruns the train stage)")
        return data

    @model_validator(mode="after")
    def _weights_need_a_named_model(self):
        if self.train.weights != "none" and not is_external(self.model):
            raise ValueError(f"train.weights: {self.train.weights!r} needs a torchvision:<builder> or timm:<name> "
                             f"model (given: {self.model!r}); registered models train from scratch")
        return self


def train(name: str, study, params, run) -> dict:
    """The classifier, by cross-entropy (:func:`~xaibench.studies.classification.train_classifier_study`)."""
    return train_classifier_study(name, study, params, run, cross_entropy_loss)


class MethodsFailed(ValueError):
    """Some methods of an attribute stage failed; the message names each with its model."""


def attribute(name: str, study, params, run) -> None:
    """Explain the first ``n_images`` test images with every method -> one Parquet each;
    streamed in chunks of ``compute.chunk_images`` on the ``compute.backend``.

    A method that fails does not stop the others: each finished method's file is kept in
    ``data/cache/attributions/<study>/`` (:class:`~xaibench.studies.common.ResumeCache`,
    keyed by the params and the model file) and the stage ends with one error naming every
    failed method and the model; the next run reuses the kept files and explains only what
    is missing."""
    cfg = study.attribute
    test = load_split(f"data/prepared/{study.dataset}", "test", mmap=True)  # ids and grid images only
    images_to_explain(name, cfg.n_images, len(test["ids"]))
    cache = ResumeCache(name, study, params)
    grid, failed = {}, {}
    for method in cfg.methods:
        path = attribution_path("data/attributions", name, study.model, method)
        if cache.restore(method, path):
            log.info("%s: reused the maps kept from the previous, failed run (%s)", method, cache.folder)
            grid[method] = maps_of(read_attributions(path).iloc[:GRID_IMAGES])
            continue
        try:
            rows = explain_and_store(name, study, params, run, method, cfg.options_for(method),
                                     compute=params.compute, keep_maps=GRID_IMAGES)
        except Exception as error:  # noqa: BLE001 - reported with the method and model, after the others ran
            log.error("%s failed on model %s: %s: %s", method, study.model, type(error).__name__, error)
            failed[method] = error
            continue
        grid[method] = rows["attribution"]
    if failed:
        kept = [m for m in cfg.methods if m not in failed]
        for method in kept:
            cache.keep(method, attribution_path("data/attributions", name, study.model, method))
        raise MethodsFailed(
            "; ".join(f"method {m} failed on model {study.model}: {type(e).__name__}: {str(e).strip()[:300]}"
                      for m, e in failed.items())
            + (f". The finished methods ({', '.join(kept)}) are kept in {cache.folder} and reused by the next run"
               if kept else "")
            + f"; fix the failing method(s), or remove them from studies.{name}.attribute.methods")
    cache.clear()
    figure = f"data/attributions/{name}/heatmaps.png"
    shown = min(GRID_IMAGES, cfg.n_images, len(test["ids"]))
    heatmap_grid(test["images"][:shown] / 255.0, grid, figure, titles=list(test["ids"][:shown]))
    run.log_artifact(figure)


def stream_evidence(model, test, path, steps: int, blur_sigma: float, fill: torch.Tensor, batch_size: int,
                    chunk_images: int, compute=None, options: EvidenceOptions = EvidenceOptions(),
                    shared: ModelEvidence | None = None):
    """(store frame without its maps, :class:`FaithfulnessEvidence` of every stored map,
    {map metric: [N]} of :data:`~xaibench.metrics.MAP_METRICS`): the Parquet file at
    ``path`` and the test images read a chunk at a time, each chunk's perturbations run on
    the ``compute`` backend, the evidence concatenated in order. ``options``: the optional
    metrics' (:class:`~xaibench.metrics.faithfulness.EvidenceOptions`); ``shared``: the
    model-only evidence of another method's file of the same images (its model calls are
    not run again)."""
    frames, map_values = [], []

    def payloads():
        start = 0
        for frame in iter_attributions(path, chunk_images):
            stop = start + len(frame)
            if list(frame.image_id) != [str(i) for i in test["ids"][start:stop]]:
                raise ValueError(f"{path}: stored image ids do not match the test split; rerun attribute")
            # a deep copy: the frame's columns are views that keep the whole Arrow batch
            # (maps included) alive, which grew evaluate's memory with the dataset
            frames.append(frame.drop(columns="attribution").copy(deep=True))
            maps = maps_of(frame)
            map_values.append(map_scores(maps))
            yield EvidenceChunk(to_tensor(read_rows(test["images"], start, stop)), maps,
                                torch.tensor(frame.target.to_numpy()), steps, blur_sigma, fill, batch_size,
                                options, start, None if shared is None else shared.rows(start, stop))
            start = stop

    parts = list(map_chunks(chunk_evidence, model, payloads(), compute, desc=Path(path).stem))
    return pd.concat(frames, ignore_index=True), concatenate_evidence(parts), {
        metric: np.concatenate([part[metric] for part in map_values]) for metric in MAP_METRICS}


def evaluate(name: str, study, params, run) -> dict:
    """IAUC, DAUC, IC, DC, AD, IIC and, where asked for, faithfulness correlation, ROAD,
    SRG, IROF and infidelity (the perturbation metrics), sparseness and complexity (the map
    metrics) per method; mean curves as CSV (dvc plots) and PNG; every image's value of
    every metric in data/reports/<study>/per_image_scores.csv (for the reliability stage's
    bootstrap)."""
    cfg = study.evaluate
    model, test, _ = load_model_and_test(name, study, pixels=False)
    results, curves, per_image, axioms = {}, {}, [], {}
    fractions = np.linspace(0, 1, cfg.steps + 1)
    fill = fill_colour(cfg.deletion_fill, model.mean)
    shared = None   # the model calls no map enters, run for the first method and reused
    for method in study.attribute.methods:
        frame, evidence, map_values = stream_evidence(
            model, test, attribution_path("data/attributions", name, study.model, method), cfg.steps,
            cfg.insertion_blur_sigma, fill, cfg.batch_size, params.compute.chunk_images, params.compute,
            cfg.evidence_options(params.seed), shared)
        shared = model_evidence(evidence, frame.target.to_numpy())
        values = {**evidence_scores(evidence), **map_values}
        results[method] = {metric: reported(np.nanmean(v)) for metric, v in values.items()}
        gauge = axiom_summary(METHODS[method].axiom, frame["axiom_error"] if "axiom_error" in frame else [])
        if gauge:
            axioms[method] = gauge
        per_image += [pd.DataFrame({"method": method, "image_id": frame.image_id.to_numpy(), "metric": metric,
                                    "value": np.asarray(v, np.float64)}) for metric, v in values.items()]
        curves[method] = {"insertion": evidence.insertion_scores.mean(0), "deletion": evidence.deletion_scores.mean(0)}
        log.info("%s: %s", method, results[method])
        run.log_metrics({f"{k}.{method}": v for k, v in results[method].items()})
    write_insertion_deletion(name, fractions, curves, run)
    write_csv(f"data/reports/{name}/per_image_scores.csv", pd.concat(per_image, ignore_index=True))
    # n_images beyond the test split explains the whole split: say how many were
    if axioms:   # the axiom gauge: median relative error per method (xaibench.explain.axioms)
        results["axioms"] = axioms
    results["explained"] = {"n_images": int(len(frame)), "n_images_requested": study.attribute.n_images,
                            "n_test": int(len(test["ids"]))}
    return results


def check(name: str, study, params) -> None:
    """Validation across sections: a named model runs at the dataset's image size, and each
    (method, model) pair is one the method has rules for (:func:`xaibench.explain.refusal`,
    on the model built on the meta device)."""
    size = params.datasets[study.dataset].preprocess.image_size
    if is_external(study.model):
        try:
            check_runs_at(study.model, size, study.train.weights)
        except ValueError as error:
            raise ParamsError(f"params.yaml: studies.{name}.model: {error}") from None
        net = meta_net(study.model, size, study.train.weights)
    else:
        with torch.device("meta"):
            net = MODELS[study.model](num_classes=2, image_size=size)
    for method in study.attribute.methods:
        reason = refusal(method, net, size, study.attribute.options_for(method))
        if reason:
            raise ParamsError(f"params.yaml: studies.{name}.attribute.methods: {method} cannot explain "
                              f"{study.model}: {reason}. Remove {method} from the study's methods")


def reliability(name: str, study, params, cfg, run):
    """Localisation, cue flip rate, randomisation of every method, deletion fills and
    saturation (:func:`~xaibench.studies.reliability.classification_checks`). Returns
    (per-image rows, sections, plots)."""
    model, test, _ = load_model_and_test(name, study)
    frames = {m: read_attributions(attribution_path("data/attributions", name, study.model, m))
              for m in study.attribute.methods}
    first = next(iter(frames.values()))
    ids, targets = list(first.image_id), torch.tensor(first.target.to_numpy())
    pixels = to_tensor(test["images"][: len(ids)])
    maps = with_controls({m: maps_of(f) for m, f in frames.items()}, pixels, targets, cfg.controls, params.seed)
    n = min(cfg.randomisation.n_images, len(ids))
    explainers = {m: registry_explainer(m, pixels[:n], targets[:n], params.seed,
                                        study.attribute.options_for(m) if m in study.attribute.methods else None)
                  for m in maps}
    ev = study.evaluate
    return classification_checks(
        model, pixels, targets, ids, maps, explainers, study.dataset, test["ids"], cfg, params.seed,
        len(dataset_classes(study.dataset)), faithfulness=(ev.steps, ev.insertion_blur_sigma, ev.batch_size),
        excluded=excluded_methods(cfg, name, explainers), compute=params.compute, study=name,
        scored=stored_daucs(stored_scores(name, name), ids, ev.deletion_fill))


KIND = register_study_kind(StudyKind(
    name="saliency", schema=SaliencyStudy, train=train, attribute=attribute, evaluate=evaluate,
    reliability=reliability, check=check,
    info=StudyInfo(
        "Heatmaps of a CNN on cats vs dogs",
        "A small CNN trained on Kaggle cats-vs-dogs (128 px; the twin: 64 px; rotation 15°, flips) is explained by LRP "
        "(zennit EpsilonAlpha2Beta1Flat), Grad-CAM, DeepLIFT and LIME. The maps are scored by insertion "
        "and deletion curves (AUC and their correlation with the map), average drop and increase in "
        "confidence, against two model-independent controls.",
        Citation("Siwek, Sonbul, Markowicz, Podgórski & Kruszyński", "n.d.",
                 "Explainability of Convolutional Neural Network: overview of methods (Warsaw University of "
                 "Technology)", "catsdogs-lrp-gradcam-deeplift-lime.md"), "catsdogs", "catsdogs_cnn"),
    scores="insertion and deletion curves (AUC and their correlation with the map), average drop and "
           "increase in confidence, against model-independent controls"))
