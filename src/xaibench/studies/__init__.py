"""Study kinds: each is one module that owns its params schema, its stages, its
reliability checks and its report text, and registers a
:class:`~xaibench.studies.kind.StudyKind` (the contract is in :mod:`xaibench.studies.kind`).

``studies.<name>.kind`` in params.yaml picks the entry. The GAD study (``gad:`` in
params.yaml) is a grid of (architecture, dataset) cells with support regressions per α
shared by the stages of a cell; its module :mod:`xaibench.studies.gad` keeps its own
stage functions.
"""

from __future__ import annotations

import importlib
import pkgutil

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


__all__ = ["STUDY_KINDS", "StudyKind", "study_kind"]
