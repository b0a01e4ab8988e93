"""What a study kind is: one registered unit that owns its params schema, its stages and
its report text.

``studies.<name>.kind`` in params.yaml picks the entry; :mod:`xaibench.params` builds the
``studies`` schema from the registered kinds' schemas, and the stage scripts call the
entry's functions:

    train(name, study, params, run) -> dict        # the JSON of metrics/<name>_model.json
    attribute(name, study, params, run) -> None    # writes data/attributions/<name>/
    evaluate(name, study, params, run) -> dict     # the JSON of metrics/<name>.json
    reliability(name, study, params, cfg, run) -> (per-image rows, sections, plots)
    check(name, study, params) -> None             # validation across params sections
                                                   # (raises ParamsError naming the key)

where ``run`` is the MLflow stage run (``log_metrics``, ``log_artifact``) and ``cfg`` the
``reliability`` section. A new kind is one module that ends with
``register_study_kind(StudyKind(...))`` and one import in :mod:`xaibench.studies`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


STUDY_KINDS: dict[str, StudyKind] = {}
_register = registrar(STUDY_KINDS, "study kind")


def register_study_kind(kind: StudyKind) -> StudyKind:
    return _register(kind.name)(kind)
