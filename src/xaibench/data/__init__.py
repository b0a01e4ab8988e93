"""Dataset registry: one entry per dataset, keyed by its name in ``params.yaml``.

Each entry knows its real source (URL, archive name, pinned SHA-256), how to generate
its synthetic twin in the same on-disk layout, and how to turn either raw folder into
the prepared splits (``data/images.py`` describes that format).
Adding a dataset = one module of this package (its name is the dataset's name).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import BaseModel

from xaibench.data import folder


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    url: str
    archive_name: str
    sha256: str | None           # pinned digest; params `real.sha256` overrides
    classes: tuple[str, ...]
    synthetic_params: type[BaseModel]
    generate_synthetic: Callable  # (root, synthetic params, seed) -> dict of counts
    prepare: Callable             # (raw_dir, out_dir, dataset params, seed) -> report dict
    # every archive of the real source: (url, name, sha256 | None, md5 | None); the first is
    # the one described above, whose digest params `real.sha256` overrides
    archives: tuple = ()
    # a source without an archive: (folder, dest) -> counts; params `real.folder` names it
    copy_folder: Callable | None = None
    # (raw_dir, prepared_dir, cues_dir, dataset params) -> summary: the test split's cue
    # masks and swapped-cue renderings (data/images.py `save_cues`); None: no cues
    prepare_cues: Callable | None = None


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in DATASETS:
        raise ValueError(f"dataset {spec.name!r} registered twice")
    DATASETS[spec.name] = spec
    return spec


def spec_from_module(name: str, module) -> DatasetSpec:
    """A dataset module defines URL, ARCHIVE_NAME, SHA256, CLASSES, SyntheticParams,
    generate_synthetic and prepare; this turns it into a registry entry."""
    return DatasetSpec(name=name, url=module.URL, archive_name=module.ARCHIVE_NAME, sha256=module.SHA256,
                       classes=module.CLASSES, synthetic_params=module.SyntheticParams,
                       generate_synthetic=module.generate_synthetic, prepare=module.prepare,
                       archives=getattr(module, "ARCHIVES", ((module.URL, module.ARCHIVE_NAME, module.SHA256, None),)),
                       copy_folder=getattr(module, "copy_folder", None),
                       prepare_cues=getattr(module, "prepare_cues", None))


# Any dataset name with ``source: folder`` (your own ImageFolder-layout images)
FOLDER = spec_from_module("folder", folder)


def dataset_spec(name: str, source: str) -> DatasetSpec:
    """The registry entry that reads dataset ``name``: the folder reader for ``source: folder``."""
    return FOLDER if source == "folder" else DATASETS[name]


def dataset_classes(name: str, prepared_dir: str | Path | None = None) -> tuple[str, ...]:
    """Class names of dataset ``name``: those its preprocess found (``stats.json`` ``classes``,
    a folder dataset), else the registry's."""
    stats = Path(prepared_dir or f"data/prepared/{name}") / "stats.json"
    if stats.exists():
        classes = json.loads(stats.read_text()).get("classes")
        if classes:
            return tuple(classes)
    if name not in DATASETS:
        raise FileNotFoundError(f"{stats} has no classes: run the preprocess stage of {name!r} first (dvc repro)")
    return DATASETS[name].classes


# Every module of this package that generates a twin is a dataset, registered under its
# module's name: a new dataset is a new module, with no list to extend.
for _module in pkgutil.iter_modules(__path__):
    _imported = importlib.import_module(f"{__name__}.{_module.name}")
    if hasattr(_imported, "generate_synthetic") and _module.name != "folder":
        register_dataset(spec_from_module(_module.name, _imported))
