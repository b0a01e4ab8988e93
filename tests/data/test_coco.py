"""COCO twin in the COCO JSON layout, read by pycocotools; real path (two archives, MD5) over loopback."""

import dataclasses
import hashlib
import json
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

from xaibench.data import DATASETS
from xaibench.data.coco import SyntheticParams, generate_synthetic, take_rows
from xaibench.data.download import ChecksumError
from xaibench.data.images import load_split
from xaibench.data.sources import materialize

PARAMS = SyntheticParams(n_train=12, n_test=5, image_size=64, min_object=10, max_object=24)
PREPROCESS = SimpleNamespace(image_size=32, val_fraction=0.25, test_fraction=None)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    generate_synthetic(root, PARAMS, seed=0)
    return root


def test_twin_is_coco_json_with_boxes_and_polygons(twin):
    from pycocotools.coco import COCO

    coco = COCO(str(twin / "annotations/instances_val2017.json"))
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == ["disc", "square", "triangle"]
    assert len(coco.getImgIds()) == 5
    for annotation in coco.loadAnns(coco.getAnnIds()):
        mask = coco.annToMask(annotation)
        x, y, w, h = annotation["bbox"]
        ys, xs = np.nonzero(mask)
        assert mask.sum() > 0.4 * w * h  # a filled shape, not an outline
        assert xs.min() >= x - 1 and xs.max() <= x + w + 1 and ys.min() >= y - 1 and ys.max() <= y + h + 1
    assert (twin / "train2017" / "000000000001.jpg").stat().st_size == 0  # the corrupt file


def test_prepare_skips_the_corrupt_image_and_rescales_boxes(twin, tmp_path):
    params = SimpleNamespace(source="synthetic", preprocess=PREPROCESS, real=SimpleNamespace(max_images_per_class=None))
    report = DATASETS["coco"].prepare(twin, tmp_path, params, 0)
    assert report["images_skipped"] == 1 and report["skipped_ids"] == ["1"]
    assert report["n_train"] + report["n_val"] == 11 and report["n_test"] == 5
    test = load_split(tmp_path, "test")
    raw = json.loads((twin / "annotations/instances_val2017.json").read_text())
    assert len(test["boxes"]) == len(raw["annotations"])
    x, y, w, h = raw["annotations"][0]["bbox"]
    assert np.allclose(test["boxes"][0], np.array([x, y, x + w, y + h]) * 32 / 64, atol=1e-4)
    assert test["images"].shape == (5, 32, 32, 3) and test["masks"].any(axis=(1, 2)).all()
    assert json.loads((tmp_path / "categories.json").read_text()) == {"1": "disc", "2": "square", "3": "triangle"}


def test_take_rows_renumbers_the_boxes():
    arrays = {"images": np.zeros((3, 2, 2, 3)), "ids": np.array(["a", "b", "c"]), "labels": np.array([1, 2, 3]),
              "masks": np.zeros((3, 2, 2)), "boxes": np.arange(16, dtype=np.float32).reshape(4, 4),
              "box_labels": np.array([1, 2, 2, 3]), "box_image": np.array([0, 1, 1, 2])}
    out = take_rows(arrays, np.array([2, 1]))
    assert list(out["ids"]) == ["c", "b"]
    assert out["box_image"].tolist() == [0, 1, 1] and out["box_labels"].tolist() == [3, 2, 2]


def _zip(path, folder, arcname):
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.rglob("*")):
            archive.write(file, f"{arcname}/{file.relative_to(folder)}")
    return path.read_bytes()


def test_real_path_fetches_both_archives_and_checks_md5(file_server, twin, tmp_path, monkeypatch):
    images = _zip(tmp_path / "val2017.zip", twin / "val2017", "val2017")
    annotations = _zip(tmp_path / "ann.zip", twin / "annotations", "annotations")
    file_server.files = {"/val2017.zip": images, "/ann.zip": annotations}
    spec = DATASETS["coco"]
    md5 = [hashlib.md5(images).hexdigest(), hashlib.md5(annotations).hexdigest()]
    archives = tuple((url, name, None, digest) for (url, name, _, _), digest in zip(spec.archives, md5))
    monkeypatch.setitem(DATASETS, "coco", dataclasses.replace(spec, archives=archives))
    urls = {"val2017.zip": f"{file_server.base}/val2017.zip",
            "annotations_trainval2017.zip": f"{file_server.base}/ann.zip"}
    params = SimpleNamespace(source="real", preprocess=PREPROCESS,
                             real=SimpleNamespace(sha256=None, max_images_per_class=1))
    materialize("coco", params, 0, tmp_path / "raw", tmp_path / "dl", url=urls)
    report = DATASETS["coco"].prepare(tmp_path / "raw", tmp_path / "prep", params, 0)
    assert "n_train" not in report and 1 <= report["n_test"] <= 3  # one image per largest-object category

    bad = tuple((u, n, None, "0" * 32 if k == 1 else d) for k, (u, n, _, d) in enumerate(archives))
    monkeypatch.setitem(DATASETS, "coco", dataclasses.replace(spec, archives=bad))
    with pytest.raises(ChecksumError, match="md5"):
        materialize("coco", params, 0, tmp_path / "raw2", tmp_path / "dl2", url=urls)
    assert not (tmp_path / "raw2").exists() and not list((tmp_path / "dl2").glob("annotations*"))
