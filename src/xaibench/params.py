"""params.yaml schema and validation.

Every stage calls :func:`load_params`; a wrong key or value stops it with a
:class:`ParamsError` that names the dotted key (``studies.catsdogs.train.lr``), says
what was wrong and what was given. Defaults live in ``params.yaml``, not here: every
field below is required unless the YAML file may legitimately leave it null.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from xaibench.data import DATASETS
from xaibench.models.external import check_name, input_normalisation, is_external
from xaibench.schema import ParamsError, Strict
from xaibench.studies import STUDY_KINDS
from xaibench.studies.gad import GAD


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


class Preprocess(Strict):
    # pixels per side, or a model name (``timm:resnet50``, ``torchvision:resnet50``): the
    # input size its weights' metadata gives, resolved here to that number
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
    """One entry of ``datasets``. ``source: folder`` reads any image folder in the
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


# ``studies.<name>``: the registered study kinds' schemas, told apart by ``kind``
Study = Annotated[Union[tuple(kind.schema for kind in STUDY_KINDS.values() if kind.section is None)],
                  Field(discriminator="kind")]


class Randomisation(Strict):
    """``reliability.randomisation``: the cascading model-parameter randomisation check."""

    n_images: int = Field(ge=1)                      # first explained test images re-explained per step
    steps: int = Field(ge=1)                         # cascade steps, output side first (blocks, not layers)
    fail_threshold: float = Field(gt=-1, le=1)       # Spearman(|map|) with the fully random model >= this: fails
    exclude: dict[str, list[str]] = {}               # study -> methods left out of the check (budget)


class InputNoise(Strict):
    """``reliability.input_noise``: the checks that re-explain noisy copies of the
    randomisation's images (each image's ``samples`` copies per check; costly, so for the
    ``studies`` listed): max-sensitivity (Yeh et al. 2019; noise uniform in ±``radius``,
    pixel units) and sMPRT (Hedström et al. 2023; maps averaged over Gaussian copies of σ =
    ``smooth_noise`` × the image's value range, for the trained and the fully randomised model)."""

    studies: list[str] = []
    samples: int = Field(default=4, ge=1)
    radius: float = Field(default=0.02, gt=0)
    smooth_noise: float = Field(default=0.1, gt=0)


class Seeds(Strict):
    """``reliability.seeds``: rankings across retraining. ``studies``: ``{study: k}``, the
    study's model trained with k seeds (``seed``, ``seed + 1``, ..: the first is the
    study's own model), each explained on the same images and scored by the same
    metrics (the ``seeds@<study>`` stage), on the first ``n_images`` of the study's
    explained images (its evaluate stage scores them all; each retrained model costs a
    train, attribute and evaluate run on these)."""

    studies: dict[str, int] = {}
    n_images: int = Field(default=32, ge=2)

    @field_validator("studies")
    @classmethod
    def _at_least_two(cls, value):
        few = {k: v for k, v in value.items() if v < 2}
        if few:
            raise ValueError(f"{few}: give k >= 2 seeds (one is the study's own model)")
        return value


class Reliability(Strict):
    """The top-level ``reliability:`` section: which studies get a reliability
    report (a study of ``studies`` or ``gad``), the controls, the bootstrap, the
    randomisation check, the input-noise checks, the deletion fills and the retraining
    seeds."""

    studies: list[str] = Field(min_length=1)         # studies whose ranking gets intervals etc.
    controls: list[str] = Field(min_length=1)        # methods that explain nothing of the model
    n_resamples: int = Field(ge=10)                  # paired bootstrap resamples of the images
    level: float = Field(gt=0, lt=1)                 # interval coverage
    randomisation: Randomisation
    input_noise: InputNoise = InputNoise()
    fills: list[Literal["mean", "black", "blur"]] = Field(min_length=1)  # deletion fills compared
    seeds: Seeds = Seeds()


class Report(Strict):
    """The top-level ``report:`` section: the HTML report of every study."""

    base: str | None = None                          # git revision to compare with (null: none)
    gallery_images: int = Field(ge=1, le=16)         # test images per gallery


class Compute(Strict):
    """The top-level ``compute:`` section: where ``attribute`` and ``evaluate`` of
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

    def all_studies(self) -> dict:
        """Every study by name: the entries of ``studies``, then each grid kind's section
        that is declared (``gad``)."""
        grids = {kind.section: getattr(self, kind.section, None) for kind in STUDY_KINDS.values() if kind.section}
        return {**self.studies, **{name: study for name, study in grids.items() if study is not None}}

    def study(self, name: str):
        """The study ``name`` (of ``studies``, or a grid section such as ``gad``); an unknown
        name is a :class:`ParamsError` that lists the studies."""
        studies = self.all_studies()
        if name not in studies:
            raise ParamsError(f"params.yaml: studies: no study {name!r} (declared: {sorted(studies)})")
        return studies[name]

    def dataset(self, name: str) -> Dataset:
        """``datasets[name]``; an unknown name is a :class:`ParamsError` that lists the datasets."""
        if name not in self.datasets:
            raise ParamsError(f"params.yaml: datasets: no dataset {name!r} (declared: {sorted(self.datasets)})")
        return self.datasets[name]

    @model_validator(mode="after")
    def _reliability_of_declared_studies(self):
        if self.reliability is not None:
            studies = self.all_studies()
            wrong = [s for s in self.reliability.studies if s not in studies]
            if wrong:
                raise ParamsError(f"params.yaml: reliability.studies: {wrong} are not studies of `studies` "
                                  f"or a declared gad section (known: {sorted(studies)})")
            checked = self.reliability.studies
            wrong = sorted(set(self.reliability.randomisation.exclude) - set(checked))
            if wrong:
                raise ParamsError(f"params.yaml: reliability.randomisation.exclude: {wrong} are not studies whose "
                                  f"reliability is checked (reliability.studies: {checked})")
            wrong = sorted(set(self.reliability.input_noise.studies) - set(checked))
            if wrong:
                raise ParamsError(f"params.yaml: reliability.input_noise.studies: {wrong} are not studies whose "
                                  f"reliability is checked (reliability.studies: {checked})")
            wrong = sorted(set(self.reliability.seeds.studies) - set(checked))
            if wrong:
                raise ParamsError(f"params.yaml: reliability.seeds.studies: {wrong} are not studies whose "
                                  f"reliability is checked (reliability.studies: {checked})")
            grids = sorted(s for s in self.reliability.seeds.studies if s not in self.studies)
            if grids:
                raise ParamsError(f"params.yaml: reliability.seeds.studies: {grids}: a grid study (GAD) is not "
                                  f"retrained by seed; give studies of `studies`")
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
        unknown = [name for name, dataset in value.items() if name not in DATASETS and dataset.source != "folder"]
        if unknown:
            raise ValueError(f"unknown dataset(s) {unknown}; known: {sorted(DATASETS)}, or any name "
                             f"with source: folder (your own image folder)")
        return value

    @model_validator(mode="after")
    def _synthetic_params_match_dataset(self):
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
    def _no_study_named_like_a_grid(self):
        grids = sorted(kind.section for kind in STUDY_KINDS.values() if kind.section)
        clash = [name for name in self.studies if name in grids]
        if clash:
            raise ParamsError(f"params.yaml: studies: {clash} is the name of a top-level grid study ({grids}); "
                              f"rename the study")
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
    def _each_kinds_own_checks(self):
        """What a study kind checks across sections (its ``check``: a method the model has
        no rule for, a stopping rule the segment count defeats, ...)."""
        for name, study in self.all_studies().items():
            STUDY_KINDS[study.kind].check(name, study, self)
        return self



def _format_error(error: ValidationError, source: str, prefix: str = "") -> str:
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        if len(loc) > 2 and loc[0] == "studies" and loc[2] in STUDY_KINDS:
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
