"""CIFAR-10 twin in the official pickle-batch format; one loader for both sources."""

import hashlib
import pickle
import tarfile
from types import SimpleNamespace

import numpy as np
import pytest

from xaibench.data import DATASETS
from xaibench.data.cifar10 import (CLASSES, FOLDER, SHAPES, SyntheticParams, generate_synthetic, load_splits,
                                   read_batch, shape_mask)
from xaibench.data.images import load_split
from xaibench.data.sources import materialize

PARAMS = SyntheticParams(n_train_per_class=5, n_test_per_class=2)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    generate_synthetic(root, PARAMS, seed=0)
    return root


def test_batches_are_cifar_pickles(twin):
    folder = twin / FOLDER
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["batches.meta", "masks.npz", "swapped_test_batch", "test_batch"] + [f"data_batch_{i}" for i in range(1, 6)])
    with open(folder / "data_batch_1", "rb") as handle:
        raw = pickle.load(handle, encoding="bytes")
    assert set(raw) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert raw[b"data"].dtype == np.uint8 and raw[b"data"].shape == (10, 3072)
    with open(folder / "batches.meta", "rb") as handle:
        meta = pickle.load(handle, encoding="bytes")
    assert [n.decode() for n in meta[b"label_names"]] == list(CLASSES)


def test_channel_major_rows_decode_to_hwc(twin):
    batch = read_batch(twin / FOLDER / "test_batch")
    with open(twin / FOLDER / "test_batch", "rb") as handle:
        row = pickle.load(handle, encoding="bytes")[b"data"][0]
    assert batch["images"][0, 0, 0, 0] == row[0] and batch["images"][0, 0, 0, 1] == row[1024]
    assert batch["images"][0, 0, 1, 0] == row[1]


def test_masks_cover_the_drawn_object(twin):
    splits = load_splits(twin)
    assert splits["train"]["images"].shape == (50, 32, 32, 3) and len(splits["test"]["labels"]) == 20
    assert (splits["test"]["masks"].sum((1, 2)) > 10).all()
    assert np.bincount(splits["train"]["labels"]).tolist() == [5] * 10


def test_every_shape_is_drawable_and_distinct():
    masks = [shape_mask(s, 16, 16, 9) for s in SHAPES]
    assert all(m.sum() > 10 for m in masks)
    assert len({m.tobytes() for m in masks}) == len(SHAPES)


def test_real_path_reads_the_twin_tarball_from_loopback(file_server, twin, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(twin / FOLDER, arcname=FOLDER)
    file_server.payload = archive.read_bytes()
    digest = hashlib.sha256(file_server.payload).hexdigest()
    params = SimpleNamespace(source="real", real=SimpleNamespace(sha256=digest, max_images_per_class=3),
                             preprocess=SimpleNamespace(image_size=32, val_fraction=0.2, test_fraction=None))
    materialize("cifar10", params, 0, tmp_path / "raw", tmp_path / "dl", url=file_server.url)
    report = DATASETS["cifar10"].prepare(tmp_path / "raw", tmp_path / "prep", params, 0)
    assert report["n_test"] == 20 and report["n_train"] + report["n_val"] == 30
    assert load_split(tmp_path / "prep", "val")["images"].shape[1:] == (32, 32, 3)


def test_official_test_split_forbids_test_fraction(twin, tmp_path):
    params = SimpleNamespace(source="synthetic", preprocess=SimpleNamespace(image_size=32, val_fraction=0.2,
                                                                           test_fraction=0.2))
    with pytest.raises(ValueError, match="test_fraction must be null"):
        DATASETS["cifar10"].prepare(twin, tmp_path / "prep", params, 0)
