"""Materialise a dataset's raw folder from its real source or its synthetic twin."""

from __future__ import annotations

import logging
from pathlib import Path

from xaibench.atomic import atomic_dir
from xaibench.data import dataset_spec
from xaibench.data.download import extract_archive, fetch_archive

log = logging.getLogger(__name__)


def materialize(name: str, dataset_params, seed: int, raw_dir: str | Path, downloads_dir: str | Path,
                url: str | dict | None = None) -> dict:
    """Fill ``raw_dir`` with dataset ``name``; return a small report for metrics/logs.

    ``source: synthetic`` generates the twin from ``seed``; ``source: folder`` (and a real
    source that is a local folder) copies ``real.folder``; ``source: real`` downloads
    the archive into ``downloads_dir`` (resumable, checksum-verified) and extracts it.
    ``url`` overrides the registry's URL (tests point it at a loopback server); for a
    dataset of several archives, a dict archive name -> URL.
    """
    spec = dataset_spec(name, dataset_params.source)
    if dataset_params.source == "synthetic":
        synthetic = spec.synthetic_params.model_validate(dataset_params.synthetic)
        with atomic_dir(raw_dir) as tmp:
            counts = spec.generate_synthetic(tmp, synthetic, seed)
        log.info("generated synthetic %s twin in %s: %s", name, raw_dir, counts)
        return {"source": "synthetic", **counts}
    if spec.copy_folder is not None:  # a local folder, no archive to fetch
        if not dataset_params.real.folder:
            raise FileNotFoundError(f"datasets.{name}.real.folder: set it to a folder of your images")
        with atomic_dir(raw_dir) as tmp:
            counts = spec.copy_folder(dataset_params.real.folder, tmp)
        return {"source": "real", "folder": str(dataset_params.real.folder), **counts}
    paths = []
    for k, (default_url, archive_name, sha256, md5) in enumerate(spec.archives):
        if k == 0:
            sha256 = dataset_params.real.sha256 or sha256
        source_url = url.get(archive_name, default_url) if isinstance(url, dict) else (url or default_url)
        paths.append(fetch_archive(source_url, Path(downloads_dir) / archive_name, sha256, md5=md5))
    extract_archive(paths, raw_dir)
    log.info("extracted %s to %s", ", ".join(p.name for p in paths), raw_dir)
    return {"source": "real", "archive": spec.archive_name, "sha256": dataset_params.real.sha256 or spec.sha256}
