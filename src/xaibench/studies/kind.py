"""What a study kind is: one registered unit that owns its params schema, its stages and
its report text.

``studies.<name>.kind`` in params.yaml picks the entry; :mod:`xaibench.params` builds the
``studies`` schema from the registered kinds' schemas, and the stage scripts call the
entry's functions:

    cells(name, study) -> {cell: dataset}          # the units train and attribute run per
    train(cell, study, params, run) -> dict        # the JSON of model_json(name, cell)
    attribute(cell, study, params, run) -> None    # writes attribution_dir(name, cell)
    evaluate(name, study, params, run) -> dict     # the JSON of metrics/<name>.json
    reliability(cell, study, params, cfg, run) -> (per-image rows, sections, plots)
    check(name, study, params) -> None             # validation across params sections
                                                   # (raises ParamsError naming the key)

where ``run`` is the MLflow stage run (``log_metrics``, ``log_artifact``) and ``cfg`` the
``reliability`` section. A study is one cell unless its kind says otherwise: the cell is
the study itself (its name, its dataset), and ``train`` / ``attribute`` / ``reliability``
receive the study's name. A grid study (GAD: architecture x dataset) has one cell per
entry of the grid; its train stages run once per cell (``python stages/train.py gad
resnet18_cub``), its attribute stage every cell in turn (``python stages/attribute.py gad``;
one cell when it is named), and its reliability report has one part per cell. A kind may add
``steps`` run between train and attribute, one per value of a params list (GAD's support
regressions, one per α: ``python stages/step.py gad support 4``).

A new kind is one module that ends with ``register_study_kind(StudyKind(...))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from xaibench.registry import registrar


@dataclass(frozen=True)
class Citation:
    """A source text of ``shared/sources/`` (its title page)."""

    authors: str
    year: str
    title: str
    source: str          # file in shared/sources/

    def __str__(self) -> str:
        return f"{self.authors} ({self.year}). {self.title}."


@dataclass(frozen=True)
class StudyInfo:
    """What the report says about a study: a title, two sentences (what is explained, how
    it is scored) and the study it reproduces, with the reproduction's dataset and model:
    a study of the kind on another dataset or model is described from its own params."""

    title: str
    summary: str
    reproduces: Citation | None
    dataset: str = ""    # registry names of the reproduction's dataset and model
    model: str = ""


def _no_check(name: str, study, params) -> None:
    return None


def one_cell(name: str, study) -> dict[str, str]:
    """A study's one cell: the study itself, on its dataset."""
    return {name: study.dataset}


def model_json(name: str, cell: str) -> str:
    """Where the train stage of ``cell`` writes its JSON: ``metrics/<name>_model.json`` for a
    one-cell study, ``metrics/<name>/<cell>_model.json`` for a cell of a grid."""
    return f"metrics/{name}_model.json" if cell == name else f"metrics/{name}/{cell}_model.json"


def attribution_dir(name: str, cell: str) -> str:
    """Where the attribute stage of ``cell`` writes its Parquet files."""
    return f"data/attributions/{name}" if cell == name else f"data/attributions/{name}/{cell}"


@dataclass(frozen=True)
class StudyStep:
    """A step of a kind between train and attribute, run once per value of a params list
    (``python stages/step.py <study> <step> <value>``; its DVC stage is a ``matrix`` over
    that list). ``run(name, study, params, mlflow_run, value)`` returns the JSON written to
    ``metrics/<study>/<step>/<argument><value>.json``."""

    run: Callable
    argument: str                 # what the value is (``alpha``): names the JSON and the MLflow param
    convert: Callable = str       # the command-line value -> what ``run`` takes


@dataclass(frozen=True)
class StudyKind:
    name: str
    schema: type                  # the pydantic model of studies.<name> (``kind: Literal[name]``)
    info: StudyInfo               # the reproduction's report text
    scores: str                   # "scored by ..." for a study of this kind off the reproduction
    train: Callable
    attribute: Callable
    evaluate: Callable
    reliability: Callable
    check: Callable = _no_check
    cells: Callable = one_cell
    # a grid kind's one study is the top-level params section of this name (``gad:``), with
    # DVC stages of its own (one per cell); None: its studies are entries of ``studies:``
    section: str | None = None
    steps: Mapping[str, StudyStep] = field(default_factory=dict)
    # the evaluate stage's output folders, all-or-nothing ({name}: the study's name)
    evaluate_folders: tuple[str, ...] = ("data/reports/{name}", "metrics/plots/{name}")


STUDY_KINDS: dict[str, StudyKind] = {}
_register = registrar(STUDY_KINDS, "study kind")


def register_study_kind(kind: StudyKind) -> StudyKind:
    return _register(kind.name)(kind)
