"""Download an archive with SHA-256 verification and resume, then extract it.

``fetch_archive`` writes to ``<dest>.part``; an interrupted transfer leaves that file and
the next call asks the server for the remaining bytes (HTTP ``Range``). Only a file whose
digest matches reaches ``dest``; on a mismatch the partial file is deleted and
:class:`ChecksumError` names both digests. ``extract_archive`` unpacks into a temporary
folder that is moved into place only when extraction finished.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from xaibench.atomic import atomic_dir

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    """The downloaded archive's SHA-256 digest is not the expected one."""


class UnpinnedChecksumError(RuntimeError):
    """The archive was downloaded but no expected digest is pinned to verify it."""


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``algorithm``: any hashlib name), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _transfer(url: str, part: Path, timeout: float) -> None:
    """Append the missing bytes of ``url`` to ``part`` (one HTTP request)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "xaibench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to fetch
            return
        raise
    with response:
        resumed = have and response.status == 206
        if have and not resumed:
            log.warning("server ignored the Range request; restarting %s from byte 0", url)
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as out, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name, leave=False, disable=None
        ) as bar:
            while block := response.read(CHUNK):
                out.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise ConnectionError(f"transfer of {url} ended at {part.stat().st_size} of {total} bytes")


def fetch_archive(
    url: str, dest: str | Path, sha256: str | None, retries: int = 3, timeout: float = 60.0, md5: str | None = None
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part``, and verify its SHA-256.

    Returns ``dest``. If ``dest`` already exists with the right digest nothing is
    fetched. Transfers cut short are resumed up to ``retries`` more times in this call;
    a later call resumes from whatever ``dest.part`` holds.

    Raises:
        ChecksumError: the complete download's digest differs from ``sha256``
            (``dest.part`` is deleted, nothing is left behind).
        UnpinnedChecksumError: ``sha256`` and ``md5`` are None; the complete,
            unverified file is kept as ``dest.unverified`` and the message gives its digest to pin.

    ``md5``: a publisher's MD5 (COCO publishes only those), checked when no SHA-256 is pinned.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and ((sha256 and file_digest(dest) == sha256.lower())
                          or (not sha256 and md5 and file_digest(dest, "md5") == md5.lower())):
        log.info("%s already present and verified", dest)
        return dest
    part = dest.with_name(dest.name + ".part")
    unverified = dest.with_name(dest.name + ".unverified")
    if unverified.exists() and not part.exists():
        os.replace(unverified, part)  # a complete earlier download, now checked against a pin
    else:
        for attempt in range(retries + 1):
            try:
                _transfer(url, part, timeout)
                break
            except (OSError, http.client.HTTPException) as error:
                if isinstance(error, urllib.error.HTTPError) or attempt == retries:
                    raise
                log.warning("download interrupted (%s); resuming (attempt %d of %d)", error, attempt + 2, retries + 1)
                time.sleep(min(2**attempt, 10))
    actual = file_digest(part)
    if sha256 is None and md5 is not None:
        actual_md5 = file_digest(part, "md5")
        if actual_md5 != md5.lower():
            part.unlink(missing_ok=True)
            raise ChecksumError(f"checksum mismatch for {url}: expected md5 {md5.lower()}, got {actual_md5}. "
                                f"The download was deleted; rerun to fetch it again.")
        log.info("%s verified by its published MD5; its SHA-256 is %s", dest.name, actual)
        os.replace(part, dest)
        return dest
    if sha256 is None:
        os.replace(part, unverified)
        raise UnpinnedChecksumError(
            f"{url} downloaded to {unverified} but no SHA-256 is pinned to verify it; its digest is "
            f"{actual}. Check it against a trusted source, then set the dataset's `real.sha256: {actual}` "
            f"in params.yaml and rerun (the file will not be downloaded again)."
        )
    if actual != sha256.lower():
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {actual}. "
            f"The download was deleted; rerun to fetch it again, or fix the pinned digest."
        )
    os.replace(part, dest)
    return dest


def extract_archive(archive: str | Path | list, dest: str | Path) -> Path:
    """Extract one or several .zip / .tar(.gz) archives so that their contents end up in
    ``dest`` (all or nothing: ``dest`` appears only when every archive is extracted)."""
    archives = [Path(a) for a in (archive if isinstance(archive, (list, tuple)) else [archive])]
    dest = Path(dest)
    with atomic_dir(dest) as tmp:
        for archive in archives:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(tmp)
            elif tarfile.is_tarfile(archive):
                with tarfile.open(archive) as tf:
                    tf.extractall(tmp, filter="data")
            else:
                raise ValueError(f"{archive} is neither a zip nor a tar archive")
    return dest


def copy_tree(src: str | Path, dest: str | Path) -> None:
    """Copy ``src`` into ``dest`` atomically (replacing ``dest``)."""
    with atomic_dir(dest) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
