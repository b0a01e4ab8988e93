"""Study kinds: each is one module that owns its params schema, its stages, its
reliability checks and its report text, and registers a
:class:`~xaibench.studies.kind.StudyKind` (the contract is in :mod:`xaibench.studies.kind`).

``studies.<name>.kind`` in params.yaml picks the entry. The GAD study (``gad:`` in
params.yaml) is a kind whose study is a grid of (architecture, dataset) cells, with a step
of its own (the support regressions, one per α) between train and attribute.
"""

from __future__ import annotations

import importlib
import pkgutil

from xaibench.schema import ParamsError
from xaibench.studies.kind import STUDY_KINDS, StudyKind

# Every module of this package is imported here, so each kind registers itself: a new
# study kind is a new module, with no list to extend.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def study_kind(kind: str) -> StudyKind:
    """The registered study kind ``kind``."""
    if kind not in STUDY_KINDS:
        raise KeyError(f"unknown study kind {kind!r}; known: {sorted(STUDY_KINDS)}")
    return STUDY_KINDS[kind]


def study_cell(name: str, study, cell: str | None) -> tuple[str, str]:
    """(cell, its dataset) of the study ``name``: ``cell`` checked against the kind's cells,
    or the study's one cell where ``cell`` is None; a grid study needs a cell."""
    cells = study_kind(study.kind).cells(name, study)
    if cell is None:
        if name not in cells:
            raise ParamsError(f"{name} is a grid study: give one of its cells ({', '.join(cells)}) after "
                              f"the study's name")
        cell = name
    if cell not in cells:
        raise ParamsError(f"params.yaml: {name}: no cell {cell!r} (its cells: {', '.join(cells)})")
    return cell, cells[cell]


def study_source(name: str, study, params) -> str:
    """``synthetic``, ``real`` or ``folder``: the source of the study's datasets, joined by
    ``+`` where its cells' datasets differ (an MLflow tag)."""
    datasets = study_kind(study.kind).cells(name, study).values()
    return "+".join(sorted({params.datasets[d].source for d in datasets}))


__all__ = ["STUDY_KINDS", "StudyKind", "study_cell", "study_kind", "study_source"]
