"""Dataset registry: one entry per dataset, keyed by its name in ``params.yaml``.

Each entry knows its real source (URL, archive name, pinned SHA-256), how to generate
its synthetic twin in the same on-disk layout, and how to turn either raw folder into
the prepared splits (``data/images.py`` describes that format).
Adding a dataset = one module + one ``register_dataset`` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from xaibench.data import catsdogs, cifar10


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


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in DATASETS:
        raise ValueError(f"dataset {spec.name!r} registered twice")
    DATASETS[spec.name] = spec
    return spec


register_dataset(
    DatasetSpec(
        name="catsdogs",
        url=catsdogs.URL,
        archive_name=catsdogs.ARCHIVE_NAME,
        sha256=catsdogs.SHA256,
        classes=catsdogs.CLASSES,
        synthetic_params=catsdogs.SyntheticParams,
        generate_synthetic=catsdogs.generate_synthetic,
        prepare=catsdogs.prepare,
    )
)

register_dataset(
    DatasetSpec(
        name="cifar10",
        url=cifar10.URL,
        archive_name=cifar10.ARCHIVE_NAME,
        sha256=cifar10.SHA256,
        classes=cifar10.CLASSES,
        synthetic_params=cifar10.SyntheticParams,
        generate_synthetic=cifar10.generate_synthetic,
        prepare=cifar10.prepare,
    )
)
