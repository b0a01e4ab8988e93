"""The Parquet attribution store: one file per (study, model, method), one row per image.

Path: ``data/attributions/<study>/<model>/<method>.parquet``. Schema (:data:`SCHEMA`):

=============  ==============  ====================================================
column         type            meaning
=============  ==============  ====================================================
image_id       string          dataset id of the image (e.g. ``Dog/123``)
label          int64           true class index
target         int64           class the map explains (the predicted class)
predicted      int64           class the model predicts
probability    float64         softmax probability of ``target`` on the image
method         string          attribution method (registry name)
variant        string          ``original``, or ``gad`` for a GAD-restricted map
model          string          model (registry name)
height, width  int32           map shape
attribution    list<float32>   the map, channel-summed, row-major, ``height*width``
runtime_ms     float64         wall time to explain this one image
params_hash    string          hash of the params sections that produced the map
box            list<float32>   the explained detection (x1, y1, x2, y2), null otherwise
samples        int64           model evaluations a sampling method (LIME, SHAP) used
                               for this map, null for the others
stopped_early  bool            adaptive sampling stopped before ``num_samples``
                               (false when fixed), null for non-sampling methods
axiom_error    float64         relative distance of the map's sum from its method's
                               axiom (completeness, conservation:
                               :mod:`xaibench.explain.axioms`); null for a method
                               without one
=============  ==============  ====================================================

Plain pandas reads it: ``pd.read_parquet(path)``; one map is
``np.asarray(row.attribution).reshape(row.height, row.width)``.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from xaibench.atomic import atomic_path

SCHEMA = pa.schema([
    ("image_id", pa.string()),
    ("label", pa.int64()),
    ("target", pa.int64()),
    ("predicted", pa.int64()),
    ("probability", pa.float64()),
    ("method", pa.string()),
    ("variant", pa.string()),
    ("model", pa.string()),
    ("height", pa.int32()),
    ("width", pa.int32()),
    ("attribution", pa.list_(pa.float32())),
    ("runtime_ms", pa.float64()),
    ("params_hash", pa.string()),
    ("box", pa.list_(pa.float32())),
    ("samples", pa.int64()),
    ("stopped_early", pa.bool_()),
    ("axiom_error", pa.float64()),
])


def store_rows(*, image_ids, labels, targets, predicted, probabilities, method: str, model: str, maps,
               runtimes_ms, params_hash: str, variant=None, boxes=None, sampling_log=None, axiom_errors=None) -> dict:
    """The columns of n store rows (:data:`SCHEMA`), the one place they are named: every
    study kind's attribute stage builds its rows here. ``method``, ``model`` and
    ``params_hash`` are the same for every row; ``variant`` a name or one per row (default
    ``original``); ``boxes``, ``sampling_log`` (one (samples, stopped_early) per row) and
    ``axiom_errors`` are null where not given."""
    maps = np.asarray(maps, dtype=np.float32)
    n = len(maps)
    variants = [variant or "original"] * n if variant is None or isinstance(variant, str) else list(variant)
    return {
        "image_id": [str(v) for v in image_ids], "label": [int(v) for v in labels],
        "target": [int(v) for v in targets], "predicted": [int(v) for v in predicted],
        "probability": [float(v) for v in probabilities], "method": [method] * n, "variant": variants,
        "model": [model] * n, "attribution": maps, "runtime_ms": [float(v) for v in runtimes_ms],
        "params_hash": [params_hash] * n, "box": list(boxes) if boxes is not None else [None] * n,
        **sampling_columns(sampling_log, n),
        "axiom_error": list(axiom_errors) if axiom_errors is not None else [None] * n,
    }


def sampling_columns(sampling_log: list, n: int) -> dict:
    """The ``samples`` / ``stopped_early`` columns of n rows from a method's sampling log
    (one (samples, stopped_early) per explanation; empty for a method that does not sample)."""
    if not sampling_log:
        return {"samples": [None] * n, "stopped_early": [None] * n}
    if len(sampling_log) != n:
        raise ValueError(f"sampling log has {len(sampling_log)} entries for {n} explanations")
    return {"samples": [int(s) for s, _ in sampling_log], "stopped_early": [bool(e) for _, e in sampling_log]}


def attribution_path(root: str | Path, study: str, model: str, method: str) -> Path:
    """``<root>/<study>/<model>/<method>.parquet``; a model by name (``timm:resnet50``) gets
    a folder without the colon (``timm-resnet50``)."""
    return Path(root) / study / model.replace(":", "-") / f"{method}.parquet"


def write_attributions(path: str | Path, rows: dict) -> None:
    """Write columns ``rows`` (lists/arrays, ``attribution`` as maps [N, H, W]) atomically."""
    with attribution_writer(path) as write:
        write(rows)


@contextmanager
def attribution_writer(path: str | Path):
    """``with attribution_writer(path) as write: write(rows); write(rows)...``: one Parquet
    file written a chunk of rows at a time (one row group each), atomically: it appears
    at ``path`` only when the block ends without an error."""
    with atomic_path(path) as tmp:
        writer = None
        try:
            def write(rows: dict) -> None:
                nonlocal writer
                table = _table(rows)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, SCHEMA)
                writer.write_table(table)

            yield write
            if writer is None:
                raise ValueError(f"{path}: no rows written")
        finally:
            if writer is not None:
                writer.close()


def _table(rows: dict) -> pa.Table:
    maps = np.asarray(rows["attribution"], dtype=np.float32)
    n, h, w = maps.shape
    missing = sorted({field.name for field in SCHEMA} - {"height", "width"} - set(rows))
    if missing:
        raise ValueError(f"store rows lack columns {missing}: build them with store_rows")
    columns = dict(rows)
    columns["attribution"] = pa.FixedSizeListArray.from_arrays(pa.array(maps.reshape(-1)), h * w).cast(
        pa.list_(pa.float32()))
    columns["height"], columns["width"] = [h] * n, [w] * n
    columns["axiom_error"] = [None if e is None or not np.isfinite(e) else float(e) for e in columns["axiom_error"]]
    return pa.table({field.name: columns[field.name] for field in SCHEMA}, schema=SCHEMA)


class StoreError(ValueError):
    """A store file that is not readable Parquet (truncated, overwritten): the message names it."""


def _unreadable(path: Path, error: Exception) -> StoreError:
    return StoreError(f"{path}: not a readable Parquet file ({type(error).__name__}: {str(error).strip()[:160]}); "
                      f"rerun the attribute stage that writes it (dvc repro --force attribute@<study>)")


def read_attributions(path: str | Path) -> pd.DataFrame:
    """The store file at ``path`` as one DataFrame; a missing file says which stage to run,
    a corrupt one is named (:class:`StoreError`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the attribute stage first (dvc repro)")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as error:  # ArrowInvalid: "Parquet magic bytes not found"
        raise _unreadable(path, error) from None


def iter_attributions(path: str | Path, chunk_rows: int):
    """The store file at ``path`` as DataFrames of ``chunk_rows`` rows (the last one fewer),
    in order; memory holds a row group and a chunk. Read a row group at a time without
    pre-buffering: ``ParquetFile.iter_batches`` (and pre-buffering) read ahead, so its
    resident memory grew with the file (measured: +230 MB over a 141 MB file, against a
    flat +127 MB this way)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the attribute stage first (dvc repro)")
    try:
        parquet = pq.ParquetFile(path, pre_buffer=False)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise _unreadable(path, error) from None
    pending = None
    for group in range(parquet.num_row_groups):
        try:
            table = parquet.read_row_group(group)
        except (OSError, ValueError, pa.ArrowException) as error:
            raise _unreadable(path, error) from None
        pending = table if pending is None else pa.concat_tables([pending, table])
        while pending.num_rows >= chunk_rows:
            yield pending.slice(0, chunk_rows).to_pandas()
            pending = pending.slice(chunk_rows)
    if pending is not None and pending.num_rows:
        yield pending.to_pandas()


def maps_of(frame: pd.DataFrame) -> np.ndarray:
    """The attribution maps of a store frame as float32 [N, H, W]."""
    h, w = int(frame.height.iloc[0]), int(frame.width.iloc[0])
    return np.stack([np.asarray(a, dtype=np.float32).reshape(h, w) for a in frame.attribution])
