"""Small pieces every study kind needs: loading its model and test images, writing CSVs."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from xaibench.atomic import atomic_path
from xaibench.compute import chunk_bounds, map_chunks
from xaibench.data.images import load_split, read_rows
from xaibench.explain.batch import ExplainChunk, explain_chunk
from xaibench.figures import curves_figure
from xaibench.models import load_model
from xaibench.schema import params_hash
from xaibench.store import attribution_path, attribution_writer
from xaibench.training.classifier import to_tensor

log = logging.getLogger(__name__)


def load_model_and_test(name: str, study, n: int | None = None, pixels: bool = True):
    """(model, test split dict, pixels [n, 3, H, W] in [0, 1]) for study ``name``. The
    split's arrays are memory maps (only what is indexed is read); ``pixels=False``
    leaves the pixels to the caller (None), for a stage that streams them in chunks."""
    test = load_split(f"data/prepared/{study.dataset}", "test", mmap=True)
    n = len(test["labels"]) if n is None else min(n, len(test["labels"]))
    return load_model(f"data/models/{name}/model.pt"), test, to_tensor(test["images"][:n]) if pixels else None


def attribute_digest(study, params, *extra) -> str:
    """:func:`~xaibench.params.params_hash` of what a study's maps depend on: its dataset's
    params, model, train and attribute params, the seed (and ``extra``)."""
    return params_hash(params.datasets[study.dataset], study.model, study.train, study.attribute, params.seed,
                       *extra)


def images_to_explain(name: str, requested: int, available: int) -> int:
    """``min(requested, available)``, with a warning when ``n_images`` asks for more test
    images than the split has (the whole split is explained)."""
    if requested > available:
        log.warning("studies.%s.attribute.n_images is %d but the test split has %d images: explaining %d",
                    name, requested, available, available)
    return min(requested, available)


class ResumeCache:
    """Where an attribute stage keeps the finished methods' files when another method
    fails (``data/cache/attributions/<study>/``, outside DVC's outputs, which a rerun
    deletes), so that the next run explains only what is missing. A kept file is reused
    only under the same key: the study's dataset, model, train and attribute params, the
    seed, and the SHA-256 of the trained model file (a retrained model invalidates it)."""

    def __init__(self, name: str, study, params, root: str | Path = "data/cache/attributions"):
        self.folder = Path(root) / name
        self._name, self._study, self._params = name, study, params

    @cached_property
    def key(self) -> str:
        """Computed when first needed (a kept file to compare, or one to keep): hashing the
        model file costs a read of it, which a run without a failure need not pay."""
        model_file = Path(f"data/models/{self._name}/model.pt")
        model_digest = hashlib.sha256(model_file.read_bytes()).hexdigest() if model_file.exists() else ""
        return attribute_digest(self._study, self._params, model_digest)

    def _files(self, method: str) -> tuple[Path, Path]:
        return self.folder / f"{method}.parquet", self.folder / f"{method}.key.json"

    def keep(self, method: str, path: Path) -> None:
        if Path(path).exists():
            data, key = self._files(method)
            with atomic_path(data) as tmp:
                shutil.copyfile(path, tmp)
            with atomic_path(key) as tmp:
                tmp.write_text(json.dumps({"key": self.key}))

    def restore(self, method: str, path: Path) -> bool:
        """Copy ``method``'s kept file to ``path`` if its key matches; whether it did."""
        data, key = self._files(method)
        if not (data.exists() and key.exists()) or json.loads(key.read_text()).get("key") != self.key:
            return False
        with atomic_path(path) as tmp:
            shutil.copyfile(data, tmp)
        return True

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def write_csv(path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")


def write_insertion_deletion(name: str, fractions: np.ndarray, curves: dict, run) -> None:
    """Mean insertion/deletion curves per method -> metrics/plots/<name>/{insertion,deletion}.csv
    (dvc plots) and data/reports/<name>/curves.png (logged to ``run``)."""

    for kind in ("insertion", "deletion"):
        write_csv(f"metrics/plots/{name}/{kind}.csv",
                  pd.DataFrame({"fraction": fractions, **{m: c[kind] for m, c in curves.items()}}))
    figure = f"data/reports/{name}/curves.png"
    curves_figure(fractions, curves, figure)
    run.log_artifact(figure)


def explain_and_store(name: str, study, params, run, method: str, options, explain=None,
                      compute=None, keep_maps: int | None = None):
    """Explain the first ``study.attribute.n_images`` test images with ``method`` in chunks
    of ``params.compute.chunk_images`` on the backend ``compute`` (None: this process),
    write its Parquet file a chunk at a time, log the mean runtime. Returns the store
    columns but ``attribution``, which holds the first ``keep_maps`` maps (None: all)."""
    model, test, _ = load_model_and_test(name, study, pixels=False)
    n = min(study.attribute.n_images, len(test["labels"]))
    digest = attribute_digest(study, params)
    bounds = chunk_bounds(n, params.compute.chunk_images)
    chunks = (ExplainChunk(to_tensor(read_rows(test["images"], a, b)), np.asarray(test["labels"][a:b]),
                           np.asarray(test["ids"][a:b]), method, study.model, params.seed, options, digest, explain, a)
              for a, b in bounds)
    kept: dict = {}
    with attribution_writer(attribution_path("data/attributions", name, study.model, method)) as write:
        for rows in map_chunks(explain_chunk, model, chunks, compute, total=len(bounds), desc=method):
            write(rows)
            for key, value in rows.items():
                # a copy: an (even empty) slice would keep the chunk's maps alive
                kept.setdefault(key, []).append(value if key != "attribution" else np.array(value[:keep_maps]))
            keep_maps = None if keep_maps is None else max(keep_maps - len(rows["attribution"]), 0)
    rows = {k: np.concatenate(v) if k == "attribution" else sum(v, []) for k, v in kept.items()}
    runtime = float(np.mean(rows["runtime_ms"]))
    log.info("%s: %d explanations, %.1f ms per image", method, n, runtime)
    run.log_metrics({f"runtime_ms.{method}": runtime})
    return rows
