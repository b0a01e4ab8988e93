"""Chunked streaming: chunks cover the images once, in order; explaining and
scoring chunk by chunk gives what one pass over all images gives."""

import numpy as np
import pytest
import torch

from xaibench.compute import chunk_bounds, map_chunks
from xaibench.data.images import read_rows, write_npz, map_npz
from xaibench.explain.batch import explain_images
from xaibench.metrics.faithfulness import collect_evidence
from xaibench.models import NormalizedClassifier, build_model
from xaibench.params import Compute
from xaibench.store import attribution_writer, iter_attributions, maps_of, store_rows, write_attributions


def test_chunk_bounds_cover_every_image_once_in_order():
    assert chunk_bounds(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert chunk_bounds(6, 3) == [(0, 3), (3, 6)] and chunk_bounds(2, 512) == [(0, 2)] and chunk_bounds(0, 4) == []


def test_map_chunks_local_keeps_the_order_and_passes_the_model():
    out = list(map_chunks(lambda model, p: model * p, 10, [1, 2, 3], Compute(backend="local")))
    assert out == [10, 20, 30]
    assert list(map_chunks(lambda model, p: p, None, iter([]), None)) == []


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return NormalizedClassifier(build_model("catsdogs_cnn", 2, 32), [0.5] * 3, [0.25] * 3).eval()


def test_explaining_in_chunks_with_offsets_equals_one_pass(tiny_model):
    pixels = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels, ids = np.array([0, 1, 0, 1, 1]), np.array([f"img{i}" for i in range(5)])
    for method in ("random", "lrp"):  # random draws per image index: the offset matters
        whole = explain_images(tiny_model, pixels, labels, ids, method, "m", 0, {}, "h")
        parts = [explain_images(tiny_model, pixels[a:b], labels[a:b], ids[a:b], method, "m", 0, {}, "h", offset=a)
                 for a, b in chunk_bounds(5, 2)]
        assert np.array_equal(np.concatenate([p["attribution"] for p in parts]), whole["attribution"])
        assert sum((p["image_id"] for p in parts), []) == whole["image_id"]


def test_parquet_written_and_read_in_chunks(tmp_path):
    maps = np.arange(5 * 4 * 4, dtype=np.float32).reshape(5, 4, 4)
    rows = lambda a, b: store_rows(image_ids=range(a, b), labels=[0] * (b - a), targets=[1] * (b - a),
                                   predicted=[1] * (b - a), probabilities=[0.5] * (b - a), method="m", model="x",
                                   maps=maps[a:b], runtimes_ms=[1.0] * (b - a), params_hash="h")
    with attribution_writer(tmp_path / "chunks.parquet") as write:
        for a, b in chunk_bounds(5, 2):
            write(rows(a, b))
    frames = list(iter_attributions(tmp_path / "chunks.parquet", 3))
    assert [len(f) for f in frames] == [3, 2]
    assert np.array_equal(np.concatenate([maps_of(f) for f in frames]), maps)
    write_attributions(tmp_path / "once.parquet", rows(0, 5))
    assert np.array_equal(maps_of(next(iter_attributions(tmp_path / "once.parquet", 10))), maps)
    with pytest.raises(RuntimeError), attribution_writer(tmp_path / "broken.parquet") as write:
        write(rows(0, 2))
        raise RuntimeError("interrupted")
    assert not (tmp_path / "broken.parquet").exists()   # atomic: nothing half-written


def test_evidence_in_chunks_matches_one_pass(tiny_model):
    pixels = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    maps = np.random.default_rng(3).random((5, 32, 32)).astype(np.float32)
    targets, fill = torch.tensor([0, 1, 1, 0, 1]), torch.zeros(3)
    whole = collect_evidence(tiny_model, pixels, maps, targets, 4, 5.0, fill, 8)
    parts = [collect_evidence(tiny_model, pixels[a:b], maps[a:b], targets[a:b], 4, 5.0, fill, 8)
             for a, b in chunk_bounds(5, 2)]
    for field in ("insertion_scores", "deletion_scores", "full_scores", "explanation_map_scores"):
        assert np.allclose(np.concatenate([getattr(p, field) for p in parts]), getattr(whole, field), atol=1e-6)


def test_read_rows_copies_a_memory_mapped_chunk(tmp_path):
    images = np.arange(6 * 2 * 2 * 3, dtype=np.uint8).reshape(6, 2, 2, 3)
    write_npz(tmp_path / "s.npz", images=images)
    mapped = map_npz(tmp_path / "s.npz")["images"]
    chunk = read_rows(mapped, 2, 5)
    assert np.array_equal(chunk, images[2:5]) and chunk.flags.writeable and not isinstance(chunk, np.memmap)
    assert np.array_equal(read_rows(mapped, 0, 2), images[:2])   # still readable after the pages were dropped


# --- Ray addresses and GPUs --------------------------------------------------------

def test_the_ray_client_form_of_the_address_can_be_used():
    """``ray://head:10001`` needs Ray Client, which needs grpc (ray[client] in the lock)."""
    import grpc  # noqa: F401
    from ray.util.client import ray as client  # noqa: F401
    from ray.util.client.worker import Worker  # noqa: F401  (imports grpc-generated stubs)


def test_an_unreachable_address_fails_in_bounded_time_and_names_it():
    import socket
    import time

    from xaibench.compute import host_and_port, wait_for_address

    assert host_and_port("ray://head:10001") == ("head", 10001) and host_and_port("head") == ("head", 6379)
    with socket.socket() as probe:            # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ValueError, match=rf"compute.address: cannot reach the Ray cluster at 127.0.0.1:{port} "
                                         r"\(127.0.0.1:\d+\) within 1.5 s"):
        wait_for_address(f"127.0.0.1:{port}", 1.5)
    assert time.monotonic() - start < 10
    with socket.socket() as server:           # a listening port is reachable at once
        server.bind(("127.0.0.1", 0))
        server.listen()
        wait_for_address(f"ray://127.0.0.1:{server.getsockname()[1]}", 5)


def test_gpus_per_worker_without_a_gpu_is_refused_for_a_local_ray(monkeypatch):
    from xaibench.compute import start_ray
    from xaibench.params import Compute

    import ray

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)   # another test file may have started one
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ValueError, match="compute.gpus_per_worker: 1 but this machine has no CUDA GPU"):
        start_ray(Compute(backend="ray", gpus_per_worker=1))
