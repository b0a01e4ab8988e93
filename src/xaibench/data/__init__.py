"""Dataset registry: one entry per dataset, keyed by its name in ``params.yaml``.

Each entry knows its real source (URL, archive name, pinned SHA-256), how to generate
its synthetic twin in the same on-disk layout, and how to list the images of either.
Adding a dataset = one module + one ``register_dataset`` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from xaibench.data import catsdogs


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    url: str
    archive_name: str
    sha256: str | None           # pinned digest; params `real.sha256` overrides
    classes: tuple[str, ...]
    synthetic_params: type[BaseModel]
    generate_synthetic: Callable  # (root, params, seed) -> dict of counts
    list_images: Callable         # (root, max_per_class) -> [(path, label, image_id)]
    mask_path: Callable           # (root, image_id) -> Path


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
        list_images=catsdogs.list_images,
        mask_path=catsdogs.mask_path,
    )
)
