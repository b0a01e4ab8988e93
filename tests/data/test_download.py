"""The real-source download path against a loopback server: verify, reject, resume, extract."""

import hashlib
import io
import zipfile

import pytest

from xaibench.data.download import ChecksumError, UnpinnedChecksumError, extract_archive, fetch_archive


def make_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("PetImages/Cat/0.jpg", b"x" * 5000)
        zf.writestr("PetImages/Dog/0.jpg", b"y" * 5000)
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_good_checksum_downloads_and_extracts(file_server, tmp_path):
    file_server.payload = make_zip()
    archive = fetch_archive(file_server.url, tmp_path / "dl" / "a.zip", sha(file_server.payload))
    assert archive.read_bytes() == file_server.payload
    extract_archive(archive, tmp_path / "raw")
    assert (tmp_path / "raw" / "PetImages" / "Dog" / "0.jpg").read_bytes() == b"y" * 5000
    assert not list((tmp_path / "dl").glob("*.part"))


def test_wrong_checksum_names_both_digests_and_leaves_nothing(file_server, tmp_path):
    file_server.payload = make_zip()
    expected = "0" * 64
    with pytest.raises(ChecksumError) as error:
        fetch_archive(file_server.url, tmp_path / "a.zip", expected)
    assert expected in str(error.value) and sha(file_server.payload) in str(error.value)
    assert list(tmp_path.iterdir()) == []  # no archive, no .part


def test_interrupted_transfer_is_resumed_with_range(file_server, tmp_path):
    file_server.payload = make_zip()
    file_server.drop_after = 1000
    archive = fetch_archive(file_server.url, tmp_path / "a.zip", sha(file_server.payload), retries=1)
    assert archive.read_bytes() == file_server.payload
    assert len(file_server.requests) == 2
    assert file_server.requests[1]["Range"] == "bytes=1000-"


def test_partial_file_from_an_earlier_call_is_resumed(file_server, tmp_path):
    file_server.payload = make_zip()
    file_server.drop_after = 700
    with pytest.raises(ConnectionError):
        fetch_archive(file_server.url, tmp_path / "a.zip", sha(file_server.payload), retries=0)
    assert (tmp_path / "a.zip.part").stat().st_size == 700
    fetch_archive(file_server.url, tmp_path / "a.zip", sha(file_server.payload), retries=0)
    assert file_server.requests[-1]["Range"] == "bytes=700-"
    assert (tmp_path / "a.zip").read_bytes() == file_server.payload


def test_server_ignoring_range_restarts_cleanly(file_server, tmp_path):
    file_server.payload = make_zip()
    file_server.honour_range = False
    (tmp_path / "a.zip.part").write_bytes(file_server.payload[:300])
    fetch_archive(file_server.url, tmp_path / "a.zip", sha(file_server.payload))
    assert (tmp_path / "a.zip").read_bytes() == file_server.payload


def test_unpinned_digest_stops_with_the_digest_and_keeps_the_download(file_server, tmp_path):
    file_server.payload = make_zip()
    with pytest.raises(UnpinnedChecksumError) as error:
        fetch_archive(file_server.url, tmp_path / "a.zip", None)
    assert sha(file_server.payload) in str(error.value)
    assert not (tmp_path / "a.zip").exists()
    n_requests = len(file_server.requests)
    fetch_archive(file_server.url, tmp_path / "a.zip", sha(file_server.payload))  # pinned now
    assert len(file_server.requests) == n_requests  # verified without downloading again
    assert (tmp_path / "a.zip").read_bytes() == file_server.payload
