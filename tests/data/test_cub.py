"""CUB-200-2011 twin in the official text-file layout; warbler-vs-sparrow merge; real path."""

import hashlib
import tarfile
from types import SimpleNamespace

import numpy as np
import pytest

from xaibench.data import DATASETS
from xaibench.data.cub import FOLDER, SyntheticParams, binary_label, generate_synthetic, read_metadata
from xaibench.data.images import load_split
from xaibench.data.sources import materialize

PARAMS = SyntheticParams(n_per_species=6, image_size=48, test_fraction=0.34)
PREPROCESS = SimpleNamespace(image_size=32, val_fraction=0.25, test_fraction=None)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub")
    generate_synthetic(root, PARAMS, seed=0)
    return root


def test_binary_merge_by_class_name():
    assert binary_label("158.Bay_breasted_Warbler") == 0
    assert binary_label("113.Baird_Sparrow") == 1
    assert binary_label("001.Black_footed_Albatross") is None


def test_text_files_and_images(twin):
    folder = twin / FOLDER
    for name in ("images", "classes", "image_class_labels", "train_test_split", "bounding_boxes"):
        assert len((folder / f"{name}.txt").read_text().splitlines()) == (5 if name == "classes" else 30)
    first = (folder / "images.txt").read_text().splitlines()[0].split()
    assert first[0] == "1" and (folder / "images" / first[1]).exists()
    x, y, w, h = map(float, (folder / "bounding_boxes.txt").read_text().splitlines()[0].split()[1:])
    assert 0 <= x and 0 <= y and x + w <= 48 and y + h <= 48


def test_metadata_keeps_only_warblers_and_sparrows(twin):
    records = read_metadata(twin)
    assert len(records) == 24  # the albatross is dropped
    assert sum(r["label"] == 0 for r in records) == 12
    assert sum(not r["is_train"] for r in records) == 8  # 2 of 6 per species are test


def test_prepare_keeps_the_official_split_boxes_and_part_masks(twin, tmp_path):
    params = SimpleNamespace(source="synthetic", preprocess=PREPROCESS)
    report = DATASETS["cub"].prepare(twin, tmp_path, params, 0)
    assert report["n_test"] == 8 and report["n_train"] + report["n_val"] == 16
    test = load_split(tmp_path, "test")
    assert test["boxes"].shape == (8, 4) and (test["boxes"][:, 2] > 0).all()
    assert test["masks"].any(axis=(1, 2)).all()  # every bird has a beak mask
    # the beak lies inside the (rescaled) box
    for mask, (x, y, w, h) in zip(test["masks"], test["boxes"]):
        ys, xs = np.nonzero(mask)
        assert xs.min() >= x - 1 and xs.max() <= x + w + 1 and ys.min() >= y - 1 and ys.max() <= y + h + 1


def test_real_path_reads_the_twin_tarball_from_loopback(file_server, twin, tmp_path):
    archive = tmp_path / "CUB_200_2011.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(twin / FOLDER, arcname=FOLDER)
    file_server.payload = archive.read_bytes()
    params = SimpleNamespace(source="real", preprocess=PREPROCESS,
                             real=SimpleNamespace(sha256=hashlib.sha256(file_server.payload).hexdigest()))
    materialize("cub", params, 0, tmp_path / "raw", tmp_path / "dl", url=file_server.url)
    assert DATASETS["cub"].prepare(tmp_path / "raw", tmp_path / "prep", params, 0)["images_kept"] == 24
