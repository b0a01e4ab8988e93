"""Atomic file and folder writes: an interrupted stage leaves the old output or none.

Every output is written under a temporary name beside its final path, then moved into
place with ``os.replace`` (atomic on one filesystem). A crash mid-write leaves only a
``*.tmp-*`` sibling, never a half-written file at the final path. Outputs get the usual
permissions (0666 / 0777 less the umask), not the private ones ``tempfile`` creates with.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _default_mode(base: int) -> int:
    """``base`` less the process umask (what ``open``/``mkdir`` would have given)."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary file path; on success move it to ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode(0o666))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | Path):
    """Yield a fresh temporary folder; on success it replaces ``path`` as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, _default_mode(0o777))
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _finite_or_null(obj):
    """NaN and ±inf -> None (JSON null): ``json`` would write NaN, which is not JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(v) for v in obj]
    return obj


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as stable, sorted, indented, strict JSON (non-finite numbers as
    null), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite_or_null(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


@contextmanager
def atomic_outputs(*folders: str | Path):
    """Make a stage's output folders one all-or-nothing set: each existing folder is moved
    aside (``.<name>.prev-<pid>``, a rename) and the stage writes a fresh one in its place;
    if the stage raises (disk full, a bug, Ctrl-C), the partial folders are deleted and the
    previous ones moved back, so the stage leaves its previous complete set or none, never
    a mix of new and old files. On success the previous folders are deleted.

    A ``kill -9`` cannot run this cleanup: the next run of the stage finds the
    ``.prev-*`` folder, deletes the partial folder beside it and moves the previous set
    back before it starts (and ``dvc repro`` reruns a stage that did not finish anyway)."""
    folders = [Path(f) for f in folders]
    aside = {}
    try:
        for folder in folders:
            folder.parent.mkdir(parents=True, exist_ok=True)
            for leftover in sorted(folder.parent.glob(f".{folder.name}.prev-*")):  # a killed run's previous set
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(leftover, folder)
            if folder.exists():
                aside[folder] = folder.with_name(f".{folder.name}.prev-{os.getpid()}")
                os.replace(folder, aside[folder])
            folder.mkdir(parents=True)
        yield folders
    except BaseException:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
            if folder in aside:
                os.replace(aside.pop(folder), folder)
        raise
    for previous in aside.values():
        shutil.rmtree(previous, ignore_errors=True)
