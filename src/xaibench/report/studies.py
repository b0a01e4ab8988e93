"""What the report says about each study: the kind's own text (its ``StudyInfo``: two
sentences and the study it reproduces) or, for a study of the kind on another dataset or
model (your own folder and model), a description from its own params that cites nothing.
"""

from __future__ import annotations

from xaibench.studies import STUDY_KINDS
from xaibench.studies.kind import StudyInfo

GENERIC = StudyInfo("A study", "A study of the benchmark.", None)


def _listing(names) -> str:
    names = [str(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1] if names else "no methods"


def study_info(kind: str, study=None, dataset=None, classes=None) -> StudyInfo:
    """The report's text for a study of ``kind``: the reproduction's entry when ``study``
    (its validated params) uses the reproduction's dataset (not a folder of your own) and
    model; otherwise a description from its params (dataset, classes, model, image size,
    methods) that cites no paper. Without ``study``: the kind's entry (a generic one for
    kinds not listed)."""
    info = STUDY_KINDS[kind].info if kind in STUDY_KINDS else GENERIC
    if study is None:
        return info
    model = study.model if isinstance(study.model, str) else "/".join(study.model.model_dump().values())
    own_data = dataset is not None and dataset.source == "folder" or (info.dataset and study.dataset != info.dataset)
    own_model = bool(info.model) and isinstance(study.model, str) and study.model != info.model
    if info.reproduces is not None and not own_data and not own_model:
        return info
    size = getattr(getattr(dataset, "preprocess", None), "image_size", None)
    source = {"folder": "your image folder", "real": "real data", "synthetic": "synthetic twin"}.get(
        getattr(dataset, "source", ""), "")
    class_text = f"{len(classes)} classes: {_listing(list(classes)[:8])}{' …' if len(classes) > 8 else ''}" \
        if classes else "classes as prepared"
    methods = getattr(getattr(study, "attribute", None), "methods", None) or []
    explained = f", explained by {_listing(methods)}" if methods else ""
    summary = (f"{model} on {study.dataset} ({source + ', ' if source else ''}{class_text}"
               f"{f', {size} px' if size else ''}){explained}. The maps are scored by "
               f"{STUDY_KINDS[kind].scores if kind in STUDY_KINDS else 'the metrics of its kind'}.")
    return StudyInfo(f"{model} on {study.dataset}", summary, None)
