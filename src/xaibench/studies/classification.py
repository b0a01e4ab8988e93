"""What every classifier study shares: the params sections of its model, training, methods
and perturbation evaluation, and the training of its model (saliency and SENN studies;
the ImageNet study trains two).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import torch
from pydantic import Field, create_model, field_validator, model_validator

from xaibench.data import dataset_classes
from xaibench.data.images import load_split
from xaibench.explain import METHODS
from xaibench.metrics.faithfulness import EvidenceOptions
from xaibench.models import MODELS, NormalizedClassifier, build_model, save_model
from xaibench.models.external import check_name, input_normalisation, is_external
from xaibench.schema import Strict, check_registered
from xaibench.training.classifier import accuracy, to_tensor, train_classifier


class Train(Strict):
    epochs: int = Field(ge=0)                        # 0: explain the model as it is (its weights)
    lr: float = Field(gt=0, lt=1)
    batch_size: int = Field(ge=1)
    rotation_degrees: float = Field(ge=0, le=180)
    horizontal_flip: bool


class FaithfulnessCorrelation(Strict):
    """Faithfulness correlation (Bhatt, Weller & Moura 2020): ``runs`` random subsets of
    ``subset_size`` pixels per image (Quantus's defaults are 100 and 224); 0 runs: not
    computed (no model calls, no score)."""

    runs: int = Field(default=0, ge=0)
    subset_size: int = Field(default=224, ge=1)

    @model_validator(mode="after")
    def _enough_runs(self):
        if 0 < self.runs < 3:
            raise ValueError("runs: a correlation needs at least 3 subsets (or 0: not computed)")
        return self


class Road(Strict):
    """ROAD and SRG (Rong et al. 2022; Blücher et al. 2024): the ``fractions`` of the pixels
    removed, most and least relevant first (each strictly between 0 and 1; the paper's are
    0.1, 0.2, .., 0.9; none: not computed), imputed with Gaussian noise of ``noise`` (pixel
    units, [0, 1])."""

    fractions: list[float] = []
    noise: float = Field(default=0.01, ge=0)

    @field_validator("fractions")
    @classmethod
    def _fractions_inside(cls, value):
        if any(not 0 < f < 1 for f in value):
            raise ValueError("each fraction must lie strictly between 0 and 1")
        if len(set(value)) != len(value):
            raise ValueError("fractions must not repeat")
        return sorted(value)


class Irof(Strict):
    """IROF (Rieger & Hansen 2020): ``segments`` SLIC superpixels per image (LIME's SLIC:
    compactness 10, sigma 1; 0: not computed), replaced by ``fill``: ``image_mean`` (the
    image's own mean colour, the paper's "mean value") or ``black``."""

    segments: int = Field(default=0, ge=0)
    fill: Literal["image_mean", "black"] = "image_mean"

    @field_validator("segments")
    @classmethod
    def _at_least_two(cls, value):
        if value == 1:
            raise ValueError("one superpixel removes the whole image at once; give 2 or more (0: off)")
        return value


class Infidelity(Strict):
    """Infidelity (Yeh et al. 2019): ``runs`` Gaussian perturbations of standard deviation
    ``sigma`` (pixel units) per image (0 runs: not computed)."""

    runs: int = Field(default=0, ge=0)
    sigma: float = Field(default=0.1, gt=0)


class Evaluate(Strict):
    """Perturbation faithfulness (:mod:`xaibench.metrics.faithfulness`): ``steps`` points
    of the deletion and insertion curves, deleted pixels take ``deletion_fill``, inserted
    ones start from the image under a Gaussian blur of ``insertion_blur_sigma``; the optional
    metrics, each off unless its section asks for it: faithfulness correlation's subsets
    (``faithfulness_correlation``, removed to the same fill), ROAD and SRG (``road``), IROF
    (``irof``), infidelity (``infidelity``)."""

    steps: int = Field(ge=2)
    deletion_fill: Literal["mean", "black"]
    insertion_blur_sigma: float = Field(gt=0)
    batch_size: int = Field(ge=1)
    faithfulness_correlation: FaithfulnessCorrelation = FaithfulnessCorrelation()
    road: Road = Road()
    irof: Irof = Irof()
    infidelity: Infidelity = Infidelity()

    def evidence_options(self, seed: int) -> EvidenceOptions:
        """What :func:`~xaibench.metrics.faithfulness.collect_evidence` runs beyond the curves."""
        correlation = self.faithfulness_correlation
        return EvidenceOptions(seed=seed, correlation_runs=correlation.runs, subset_size=correlation.subset_size,
                               road_fractions=tuple(self.road.fractions), road_noise=self.road.noise,
                               region_segments=self.irof.segments, region_fill=self.irof.fill,
                               infidelity_runs=self.infidelity.runs, infidelity_sigma=self.infidelity.sigma)


class MethodOptions(Strict):
    """Methods and their options: each registered method that declares an options schema
    has an optional section of that name (``lime:``, ``gradcam:``, ``ig:``), validated by
    the method's schema; a listed method whose schema requires values needs its section."""

    methods: list[str] = Field(min_length=1)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value):
        check_registered(value, METHODS, "method")
        if len(set(value)) != len(value):
            raise ValueError("methods must not repeat")
        return value

    @model_validator(mode="after")
    def _listed_methods_have_their_options(self):
        for method in self.methods:
            try:
                self.options_for(method)
            except ValueError as error:
                raise ValueError(f"{method} is listed in methods but its section `{method}:` is missing or "
                                 f"incomplete: {str(error).splitlines()[0]}; give {method}: with its options"
                                 ) from None
        return self

    def options_for(self, method: str):
        """The typed options of ``method`` (its section, else its schema's defaults; None: it has none)."""
        return METHODS[method].options_of(getattr(self, method, None))


def with_method_sections(base: type[Strict], name: str, doc: str, exclude=()) -> type[Strict]:
    """``base`` with one optional section per registered method that has options (but the
    names in ``exclude``, which ``base`` defines otherwise)."""
    sections = {m: (Optional[entry.options], None) for m, entry in METHODS.items()
                if entry.options is not None and m not in exclude}
    return create_model(name, __base__=base, __doc__=doc, __module__=base.__module__, **sections)


class ClassifierStudy(Strict):
    """The fields every classifier study has: a dataset of ``datasets`` and a model of the
    model registry (or ``torchvision:<builder>`` / ``timm:<name>``)."""

    dataset: str
    model: str

    @field_validator("model")
    @classmethod
    def _known_model(cls, value):
        return check_name(value) if is_external(value) else check_registered(value, MODELS, "model")


def model_sections(study) -> dict:
    """The study's model fields (``model``, or an ImageNet study's per-method models)."""
    return {k: v for k, v in study.model_dump().items() if k.endswith("model")}


def train_classifier_study(name: str, study, params, run, loss_fn, pretrain=None) -> dict:
    """Train the study's classifier on its prepared splits -> data/models/<name>/model.pt;
    returns the accuracies and split sizes. A named model with ``train.weights`` keeps its
    weights' input normalisation; otherwise the training split's mean and std.
    ``pretrain(model, train_pixels, study, seed, run)`` runs first (SENN's conceptizer)."""
    prepared = Path(f"data/prepared/{study.dataset}")
    splits = {s: load_split(prepared, s) for s in ("train", "val", "test")}
    x = {s: to_tensor(d["images"]) for s, d in splits.items()}
    y = {s: torch.from_numpy(d["labels"]) for s, d in splits.items()}
    stats = json.loads((prepared / "stats.json").read_text())
    num_classes = len(dataset_classes(study.dataset, prepared))
    image_size = int(x["train"].shape[-1])
    weights = getattr(study.train, "weights", "none")
    if is_external(study.model) and weights != "none":  # the weights' own input normalisation
        norm = input_normalisation(study.model)
        mean, std = norm["mean"], norm["std"]
    else:
        mean, std = stats["mean"], stats["std"]
    options = {"weights": weights} if is_external(study.model) else {}
    model = NormalizedClassifier(build_model(study.model, num_classes, image_size, **options), mean, std)
    cfg = study.train
    if pretrain is not None:
        pretrain(model, x["train"], study, params.seed, run)
    train_classifier(model, x["train"], y["train"], x["val"], y["val"], cfg.epochs, cfg.lr, cfg.batch_size,
                     cfg.rotation_degrees, cfg.horizontal_flip, params.seed,
                     on_epoch=lambda epoch, record: run.log_metrics(record, step=epoch), loss_fn=loss_fn)
    result = {f"{s}_accuracy": round(accuracy(model, x[s], y[s]), 6) for s in x}
    run.log_metrics(result)
    save_model(f"data/models/{name}/model.pt", model, study.model, num_classes, image_size)
    return {**result, **{f"n_{s}": len(y[s]) for s in y}}
