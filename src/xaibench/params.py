"""params.yaml schema and validation.

Every stage calls :func:`load_params`; a wrong key or value stops it with a
:class:`ParamsError` that names the dotted key (``studies.catsdogs.train.lr``), says
what was wrong and what was given. Defaults live in ``params.yaml``, not here: every
field below is required unless the YAML file may legitimately leave it null.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ParamsError(ValueError):
    """A params.yaml key is missing, unknown or has a bad value."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RealArchive(Strict):
    sha256: str | None = None
    max_images_per_class: int | None = Field(default=None, ge=1)
    folder: str | None = None  # a local image folder, for datasets whose real source is one (imagenet)

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value):
        if value is not None and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower())):
            raise ValueError("must be a 64-character hexadecimal SHA-256 digest or null")
        return value


def _check_registered(value, registry: dict, what: str):
    """``value`` (a name, or a list of names) if every name is in ``registry``; else a
    ValueError naming the unknown ones and the known ones."""
    if isinstance(value, str):
        if value not in registry:
            raise ValueError(f"unknown {what} {value!r}; known: {sorted(registry)}")
        return value
    unknown = [v for v in value if v not in registry]
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; known: {sorted(registry)}")
    return value


class Preprocess(Strict):
    # pixels per side, or a model name (``timm:resnet50``, ``torchvision:resnet50``): the
    # input size its weights' metadata gives (issue 15), resolved here to that number
    image_size: int = Field(ge=16, le=1024)
    val_fraction: float = Field(gt=0, lt=1)
    test_fraction: float | None = Field(gt=0, lt=1)  # null where the source has a test split

    @field_validator("image_size", mode="before")
    @classmethod
    def _size_of_model(cls, value):
        """A model name resolves to its weights' input size before the range check (one
        type, so a bad number gets one message, not one per member of a union)."""
        if not isinstance(value, str):
            return value
        from xaibench.models.external import check_name, input_normalisation, is_external

        if not is_external(value):
            raise ValueError("give a number of pixels, or torchvision:<builder> / timm:<name> for the input "
                             "size of that model's weights")
        size = input_normalisation(check_name(value))["image_size"]
        if size is None:
            raise ValueError(f"{value} has no input size in its weights' metadata; give a number of pixels")
        return size

    @model_validator(mode="after")
    def _room_for_training(self):
        if self.val_fraction + (self.test_fraction or 0.0) >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        return self


class Dataset(Strict):
    """One entry of ``datasets``. ``source: folder`` (issue 15) reads any image folder in the
    ImageFolder layout from ``real.folder`` under any dataset name; ``synthetic`` is then
    unused (``{}``) but present, as dvc.yaml lists it for every dataset."""

    source: Literal["synthetic", "real", "folder"]
    synthetic: dict  # validated against the dataset's own schema (DatasetSpec.synthetic_params)
    real: RealArchive
    preprocess: Preprocess

    @model_validator(mode="after")
    def _folder_is_named(self):
        if self.source == "folder" and not self.real.folder:
            raise ValueError("source: folder needs real.folder: the folder with one sub-folder of images per class")
        return self


class Train(Strict):
    epochs: int = Field(ge=0)                        # 0: explain the model as it is (its weights)
    lr: float = Field(gt=0, lt=1)
    batch_size: int = Field(ge=1)
    rotation_degrees: float = Field(ge=0, le=180)
    horizontal_flip: bool


class StoppingParams(Strict):
    """Adaptive sampling's stopping rule (xaibench.explain.perturbation.StoppingRule): stop
    once the top_k segments are the same set in >= agreement of n_bootstrap refits."""

    batch_samples: int = Field(50, ge=1)              # samples drawn between two checks
    min_samples: int = Field(100, ge=1)               # never stop before
    top_k: int = Field(5, ge=1)
    agreement: float = Field(0.95, gt=0, le=1)
    n_bootstrap: int = Field(50, ge=2)


class Sampled(Strict):
    """How a sampling explainer (LIME, KernelSHAP) spends its num_samples (issue 16)."""

    sampling: Literal["fixed", "adaptive"] = "fixed"  # fixed: the studies' counts; adaptive: at most num_samples
    paired: bool = False                              # antithetic samples (each followed by its complement)
    stopping: StoppingParams = StoppingParams()

    @model_validator(mode="after")
    def _stopping_needs_adaptive(self):
        if "stopping" in self.model_fields_set and self.sampling == "fixed":
            raise ValueError("stopping is given but sampling is fixed, so it would not take effect: set "
                             "sampling: adaptive, or remove stopping")
        return self

    def check_budget(self, num_samples: int, n_segments: int | None, segments_key: str = "n_segments") -> None:
        """Refuse stopping settings that cannot take effect: ``min_samples`` above the
        budget ``num_samples`` (the rule would never be consulted) and ``top_k`` not below
        the number of segments (the top-k set is then every segment, always "stable")."""
        if self.sampling != "adaptive":
            return
        if self.stopping.min_samples > num_samples:
            raise ValueError(f"stopping.min_samples ({self.stopping.min_samples}) is above num_samples "
                             f"({num_samples}): the stopping rule would never be checked; lower min_samples "
                             f"or raise num_samples")
        if n_segments is not None and self.stopping.top_k >= n_segments:
            raise ValueError(f"stopping.top_k ({self.stopping.top_k}) is not below the number of segments "
                             f"({segments_key}: {n_segments}): the top-k set would be every segment, "
                             f"stable from the first check; lower top_k")


class LimeParams(Sampled):
    num_samples: int = Field(ge=10)                  # the count (fixed) or the most (adaptive)
    n_segments: int = Field(ge=2)
    batch_size: int = Field(ge=1)

    @model_validator(mode="after")
    def _budget(self):
        self.check_budget(self.num_samples, self.n_segments)
        return self


class GradCamParams(Strict):
    """``layer``: ``auto`` (the last spatial map the head reads; a transformer's last block
    tokens), ``last_conv``, or a module name of the net (:mod:`xaibench.explain.gradcam`)."""
    layer: str = "auto"


class Attribute(Strict):
    n_images: int = Field(ge=1)
    methods: list[str] = Field(min_length=1)
    lime: LimeParams
    gradcam: GradCamParams = GradCamParams()

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, value):
        from xaibench.explain import METHODS

        _check_registered(value, METHODS, "method")
        if len(set(value)) != len(value):
            raise ValueError("methods must not repeat")
        return value


class Evaluate(Strict):
    steps: int = Field(ge=2)
    deletion_fill: Literal["mean", "black"]
    insertion_blur_sigma: float = Field(gt=0)
    batch_size: int = Field(ge=1)


class _StudyBase(Strict):
    dataset: str
    model: str

    @field_validator("model")
    @classmethod
    def _known_model(cls, value):
        from xaibench.models import MODELS
        from xaibench.models.external import check_name, is_external

        return check_name(value) if is_external(value) else _check_registered(value, MODELS, "model")


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


class SaliencyStudy(_StudyBase):
    """A classifier explained by heatmap methods, scored by perturbation faithfulness.
    ``model`` may be ``torchvision:<builder>`` or ``timm:<name>`` (issue 15) with
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
        from xaibench.models.external import is_external

        if self.train.weights != "none" and not is_external(self.model):
            raise ValueError(f"train.weights: {self.train.weights!r} needs a torchvision:<builder> or timm:<name> "
                             f"model (given: {self.model!r}); registered models train from scratch")
        return self


class SENNTrain(Train):
    reconstruction_weight: float = Field(ge=0)       # weighs the conceptizer's reconstruction MSE (study: 1)
    sparsity_weight: float = Field(ge=0)             # weighs mean |h(x)|, the study's xi (2e-5)
    robustness_weight: float = Field(ge=0)           # weighs the robustness loss, the study's lambda (1e-4)
    conceptizer_pretrain_epochs: int = Field(ge=0)   # reconstruction-only epochs first (twin; the study: 0)
    conceptizer_pretrain_lr: float = Field(gt=0, lt=1)


class SENNAttribute(Strict):
    n_images: int = Field(ge=1)
    ig_steps: int = Field(ge=2)
    lime: LimeParams


class SENNEvaluate(Strict):
    removal_fractions: list[float] = Field(min_length=1)
    n_removal_images: int = Field(ge=1)
    noise_sigmas: list[float] = Field(min_length=1)
    n_stability_images: int = Field(ge=1)
    top_superpixels: int = Field(ge=1)
    lime_stability_segments: Literal["resegment", "fixed"] = "resegment"  # the study: each noisy image anew

    @field_validator("removal_fractions")
    @classmethod
    def _fractions(cls, value):
        if any(not 0 < f < 1 for f in value):
            raise ValueError("every fraction must be in (0, 1)")
        return value

    @field_validator("noise_sigmas")
    @classmethod
    def _sigmas(cls, value):
        if any(s <= 0 for s in value):
            raise ValueError("every sigma must be > 0")
        return value


class SENNStudy(_StudyBase):
    """A self-explaining network against LIME and Integrated Gradients."""

    kind: Literal["senn"]
    train: SENNTrain
    attribute: SENNAttribute
    evaluate: SENNEvaluate


class DetectionTrain(Strict):
    epochs: int = Field(ge=0)                        # 0 with pretrained: true (no fine-tuning)
    lr: float = Field(gt=0, lt=1)
    batch_size: int = Field(ge=1)
    horizontal_flip: bool
    pretrained: bool                                 # COCO weights (ssd300_vgg16, real profile)


class DetectionAttribute(Strict):
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
        from xaibench.explain.detection import BOX_METHODS

        return _check_registered(value, BOX_METHODS, "detection method")

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
        from xaibench.models.ssd import DETECTORS

        return _check_registered(value, DETECTORS, "detector")


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


Study = Annotated[Union[SaliencyStudy, SENNStudy, DetectionStudy, ImagenetStudy], Field(discriminator="kind")]
STUDY_KIND_TAGS = ("saliency", "senn", "detection", "imagenet")


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


class GADAttribute(Strict):
    n_per_class: int = Field(ge=1)                     # 256 per class in the paper
    methods: list[Literal[GAD_METHODS]] = Field(min_length=1)
    ig_steps: int = Field(ge=2)


class GADEvaluate(Strict):
    hull_fraction: float = Field(gt=0, le=1)           # hull of each map's own top 50 % of pixels


class GAD(Strict):
    """The top-level ``gad:`` section (the GAD study's grid)."""

    datasets: list[str] = Field(min_length=1)
    architectures: list[Literal["resnet18", "vgg16"]] = Field(min_length=1)
    image_size: int = Field(ge=32)
    train: GADTrain
    support: GADSupport
    attribute: GADAttribute
    evaluate: GADEvaluate


class Randomisation(Strict):
    """``reliability.randomisation``: the cascading model-parameter randomisation check."""

    n_images: int = Field(ge=1)                      # first explained test images re-explained per step
    steps: int = Field(ge=1)                         # cascade steps, output side first (blocks, not layers)
    fail_threshold: float = Field(gt=-1, le=1)       # Spearman(|map|) with the fully random model >= this: fails
    exclude: dict[str, list[str]] = {}               # study -> methods left out of the check (budget)


class Reliability(Strict):
    """The top-level ``reliability:`` section (issue 13): which studies get a reliability
    report (GAD gets its own, ``gad_reliability``), the controls, the bootstrap, the
    randomisation check and the deletion fills."""

    studies: list[str] = Field(min_length=1)         # studies whose ranking gets intervals etc.
    controls: list[str] = Field(min_length=1)        # methods that explain nothing of the model
    n_resamples: int = Field(ge=10)                  # paired bootstrap resamples of the images
    level: float = Field(gt=0, lt=1)                 # interval coverage
    randomisation: Randomisation
    fills: list[Literal["mean", "black", "blur"]] = Field(min_length=1)  # deletion fills compared


class Report(Strict):
    """The top-level ``report:`` section (issue 14): the HTML report of every study."""

    base: str | None = None                          # git revision to compare with (null: none)
    gallery_images: int = Field(ge=1, le=16)         # test images per gallery


class Compute(Strict):
    """The top-level ``compute:`` section (issue 15): where ``attribute`` and ``evaluate`` of
    a saliency study run, and in what chunks they stream the images. Neither the backend
    nor the worker count changes an output (tested), so dvc.yaml lists only
    ``chunk_images`` (the batches a model sees depend on it)."""

    backend: Literal["local", "ray"] = "local"
    address: str | None = None                       # null: a local Ray (or $RAY_ADDRESS if set)
    connect_timeout_s: float = Field(default=30, gt=0)  # an unreachable address fails after this long
    workers: int = Field(default=2, ge=1)            # Ray actors, each holds the model once
    gpus_per_worker: float = Field(default=0, ge=0)  # 0: CPU workers
    chunk_images: int = Field(default=512, ge=1)     # images per chunk: bounds memory, one Ray task

    @model_validator(mode="after")
    def _gpus_need_ray(self):
        if self.gpus_per_worker > 0 and self.backend != "ray":
            raise ValueError("gpus_per_worker places Ray workers on GPUs: it needs backend: ray (the local "
                             "backend runs on this process's CPU); set backend: ray, or gpus_per_worker: 0")
        return self


class Params(Strict):
    seed: int = Field(ge=0)
    datasets: dict[str, Dataset]
    studies: dict[str, Study]
    gad: GAD | None = None
    reliability: Reliability | None = None
    report: Report | None = None
    compute: Compute = Compute()

    def study(self, name: str):
        """``studies[name]``; an unknown name is a :class:`ParamsError` that lists the studies."""
        if name not in self.studies:
            raise ParamsError(f"params.yaml: studies: no study {name!r} (declared: {sorted(self.studies)})")
        return self.studies[name]

    def dataset(self, name: str) -> Dataset:
        """``datasets[name]``; an unknown name is a :class:`ParamsError` that lists the datasets."""
        if name not in self.datasets:
            raise ParamsError(f"params.yaml: datasets: no dataset {name!r} (declared: {sorted(self.datasets)})")
        return self.datasets[name]

    @model_validator(mode="after")
    def _reliability_of_declared_studies(self):
        if self.reliability is not None:
            wrong = [s for s in self.reliability.studies if s not in self.studies]
            if wrong:
                raise ParamsError(f"params.yaml: reliability.studies: {wrong} are not studies of `studies` "
                                  f"(known: {sorted(self.studies)})")
            checked = [*self.reliability.studies, *(["gad"] if self.gad is not None else [])]
            wrong = sorted(set(self.reliability.randomisation.exclude) - set(checked))
            if wrong:
                raise ParamsError(f"params.yaml: reliability.randomisation.exclude: {wrong} are not studies whose "
                                  f"reliability is checked (reliability.studies, and gad: {checked})")
        return self

    @model_validator(mode="after")
    def _gad_uses_declared_datasets(self):
        if self.gad is not None:
            missing = [d for d in self.gad.datasets if d not in self.datasets]
            if missing:
                raise ParamsError(f"params.yaml: gad.datasets: {missing} not keys of `datasets` "
                                  f"(declared: {sorted(self.datasets)})")
        return self

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value):
        from xaibench.data import DATASETS

        unknown = [name for name, dataset in value.items() if name not in DATASETS and dataset.source != "folder"]
        if unknown:
            raise ValueError(f"unknown dataset(s) {unknown}; known: {sorted(DATASETS)}, or any name "
                             f"with source: folder (your own image folder)")
        return value

    @model_validator(mode="after")
    def _synthetic_params_match_dataset(self):
        from xaibench.data import DATASETS

        for name, dataset in self.datasets.items():
            if dataset.source == "folder":
                continue
            schema = DATASETS[name].synthetic_params
            try:
                schema.model_validate(dataset.synthetic)
            except ValidationError as error:
                raise ParamsError(_format_error(error, "params.yaml", prefix=f"datasets.{name}.synthetic")) from None
        return self

    @model_validator(mode="after")
    def _studies_use_declared_datasets(self):
        for name, study in self.studies.items():
            if study.dataset not in self.datasets:
                raise ParamsError(
                    f"params.yaml: studies.{name}.dataset: {study.dataset!r} is not a key of "
                    f"`datasets` (declared: {sorted(self.datasets)})"
                )
        return self

    @model_validator(mode="after")
    def _named_models_run_at_the_input_size(self):
        from xaibench.models.external import check_runs_at, is_external

        for name, study in self.studies.items():
            if study.kind == "saliency" and is_external(study.model):
                size = self.datasets[study.dataset].preprocess.image_size
                try:
                    check_runs_at(study.model, size, study.train.weights)
                except ValueError as error:
                    raise ParamsError(f"params.yaml: studies.{name}.model: {error}") from None
        return self

    @model_validator(mode="after")
    def _methods_explain_the_model(self):
        """Each (method, model) pair of a saliency study is one the method has rules for
        (:func:`xaibench.explain.refusal`, on the model built on the meta device)."""
        import torch

        from xaibench.explain import refusal
        from xaibench.models import MODELS
        from xaibench.models.external import is_external, meta_net

        for name, study in self.studies.items():
            if study.kind != "saliency":
                continue
            size = self.datasets[study.dataset].preprocess.image_size
            if is_external(study.model):
                net = meta_net(study.model, size, study.train.weights)
            else:
                with torch.device("meta"):
                    net = MODELS[study.model](num_classes=2, image_size=size)
            options = study.attribute.model_dump()
            for method in study.attribute.methods:
                reason = refusal(method, net, size, options.get(method) or {})
                if reason:
                    raise ParamsError(f"params.yaml: studies.{name}.attribute.methods: {method} cannot explain "
                                      f"{study.model}: {reason}. Remove {method} from the study's methods")
        return self

    @model_validator(mode="after")
    def _detection_top_k_below_segments(self):
        for name, study in self.studies.items():
            if study.kind != "detection":
                continue
            size = self.datasets[study.dataset].preprocess.image_size
            for method in ("lime", "kernel_shap"):
                try:
                    getattr(study.attribute, method).check_budget(
                        study.attribute.num_samples, study.attribute.segments_at(size),
                        f"n_segments {study.attribute.n_segments} at reference_size "
                        f"{study.attribute.reference_size}, scaled to {size} px")
                except ValueError as error:
                    raise ParamsError(f"params.yaml: studies.{name}.attribute.{method}.{error}") from None
        return self


def _format_error(error: ValidationError, source: str, prefix: str = "") -> str:
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        if len(loc) > 2 and loc[0] == "studies" and loc[2] in STUDY_KIND_TAGS:
            del loc[2]  # pydantic names the union member; the YAML path has no such level
        key = ".".join([prefix] * bool(prefix) + loc) or "<root>"
        given = item.get("input")
        # a whole section as the input says nothing the key does not
        given_text = "" if item["type"] == "missing" or isinstance(given, dict) else f" (given: {given!r})"
        message = item["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        lines.append(f"{source}: {key}: {message}{given_text}")
    return "invalid parameters\n  " + "\n  ".join(lines)


def validate_params(raw: dict, source: str = "params.yaml") -> Params:
    """Validate a parsed params tree; raise :class:`ParamsError` naming every bad key."""
    try:
        return Params.model_validate(raw)
    except ParamsError:
        raise
    except ValidationError as error:
        raise ParamsError(_format_error(error, source)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps
    the last value without a word; DVC reads the same file, so both would silently agree
    on a value the user may not have meant)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ParamsError(f"{self.name}: key {key!r} appears twice in one section, on line {seen[key]} "
                                  f"and on line {line}; keep one of them")
            seen[key] = line
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> dict:
    """The YAML file ``path`` parsed; a syntax error or a duplicate key is a
    :class:`ParamsError` naming the file and line (one line, no traceback)."""
    path = Path(path)
    text = path.read_text()
    try:
        loader = _UniqueKeyLoader(text)
        loader.name = str(path)
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ParamsError(f"{path}:{where}: not valid YAML ({problem})") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections (seed, datasets, studies, ...), "
                          f"got a {type(raw).__name__}")
    return raw or {}


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run stages from the project root")
    return validate_params(read_yaml(path), source=str(path))


def params_hash(*sections: BaseModel | dict | int | str) -> str:
    """Short SHA-256 of the canonical JSON of the given params sections (12 hex digits)."""
    payload = [s.model_dump(mode="json") if isinstance(s, BaseModel) else s for s in sections]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
