"""Materialise a dataset's raw folder from its real source or its synthetic twin."""

from __future__ import annotations

import logging
from pathlib import Path

from xaibench.atomic import atomic_dir
from xaibench.data import DATASETS
from xaibench.data.download import extract_archive, fetch_archive

log = logging.getLogger(__name__)


def materialize(name: str, dataset_params, seed: int, raw_dir: str | Path, downloads_dir: str | Path,
                url: str | None = None) -> dict:
    """Fill ``raw_dir`` with dataset ``name``; return a small report for metrics/logs.

    ``source: synthetic`` generates the twin from ``seed``; ``source: real`` downloads
    the archive into ``downloads_dir`` (resumable, checksum-verified) and extracts it.
    ``url`` overrides the registry's URL (tests point it at a loopback server).
    """
    spec = DATASETS[name]
    if dataset_params.source == "synthetic":
        synthetic = spec.synthetic_params.model_validate(dataset_params.synthetic)
        with atomic_dir(raw_dir) as tmp:
            counts = spec.generate_synthetic(tmp, synthetic, seed)
        log.info("generated synthetic %s twin in %s: %s", name, raw_dir, counts)
        return {"source": "synthetic", **counts}
    sha256 = dataset_params.real.sha256 or spec.sha256
    archive = fetch_archive(url or spec.url, Path(downloads_dir) / spec.archive_name, sha256)
    extract_archive(archive, raw_dir)
    log.info("extracted %s to %s", archive, raw_dir)
    return {"source": "real", "archive": spec.archive_name, "sha256": sha256}
