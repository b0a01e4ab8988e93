"""The cats-vs-dogs twin, the shared loader (corrupt files skipped and counted) and the
real path fed the twin's archive from a loopback server."""

import hashlib
import shutil
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest

from xaibench.data import DATASETS
from xaibench.data.catsdogs import SyntheticParams, generate_synthetic, list_images, mask_path
from xaibench.data.images import decode_rgb, load_split, prepare, stratified_split
from xaibench.data.sources import materialize

PARAMS = SyntheticParams(n_per_class=6, n_corrupt=3, min_size=40, max_size=56)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("twin")
    generate_synthetic(root, PARAMS, seed=3)
    return root


def test_twin_has_the_petimages_layout_masks_and_corrupt_files(twin):
    cats = sorted(p.name for p in (twin / "PetImages" / "Cat").iterdir())
    assert "Thumbs.db" in cats
    assert len(list((twin / "PetImages" / "Cat").glob("*.jpg"))) == 6 + 2  # corrupt files 0 and 2 go to Cat
    assert len(list((twin / "PetImages" / "Dog").glob("*.jpg"))) == 6 + 1
    assert (twin / "masks" / "Dog" / "5.png").exists()
    assert (twin / "PetImages" / "Cat" / "6.jpg").stat().st_size == 0  # the zero-byte file


def test_twin_is_deterministic(tmp_path, twin):
    generate_synthetic(tmp_path, PARAMS, seed=3)
    for path in (twin / "PetImages" / "Dog").glob("*.jpg"):
        assert (tmp_path / "PetImages" / "Dog" / path.name).read_bytes() == path.read_bytes()


def test_loader_skips_every_corrupt_file_and_counts_them(twin, tmp_path):
    items = list_images(twin)
    assert [i[2] for i in items[:3]] == ["Cat/0", "Cat/1", "Cat/2"]  # numeric order
    undecodable = [image_id for path, _, image_id in items if decode_rgb(path) is None]
    assert sorted(undecodable) == ["Cat/6", "Cat/8", "Dog/7"]
    report = prepare(items, tmp_path / "prep", 32, 0.25, 0.25, seed=0, mask_lookup=partial(mask_path, twin))
    assert report["images_skipped"] == 3 and report["images_kept"] == 12
    assert report["n_train"] + report["n_val"] + report["n_test"] == 12
    test = load_split(tmp_path / "prep", "test")
    assert test["images"].shape[1:] == (32, 32, 3) and test["images"].dtype == np.uint8
    assert test["masks"].any(axis=(1, 2)).all()  # every twin image has a foreground mask


def test_split_is_stratified_seeded_and_disjoint():
    labels = np.array([0] * 10 + [1] * 10)
    a = stratified_split(labels, 0.2, 0.3, seed=1)
    b = stratified_split(labels, 0.2, 0.3, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sorted(np.concatenate(list(a.values()))) == list(range(20))
    assert (labels[a["test"]] == 0).sum() == 3 and (labels[a["val"]] == 1).sum() == 2


def test_real_download_path_reads_the_twin_archive_from_loopback(file_server, twin, tmp_path):
    archive = shutil.make_archive(str(tmp_path / "kaggle"), "zip", root_dir=twin, base_dir="PetImages")
    payload = open(archive, "rb").read()
    file_server.payload = payload
    params = SimpleNamespace(source="real", real=SimpleNamespace(sha256=hashlib.sha256(payload).hexdigest()))
    report = materialize("catsdogs", params, 0, tmp_path / "raw", tmp_path / "downloads", url=file_server.url)
    assert report["source"] == "real"
    assert len(list_images(tmp_path / "raw")) == 15
    dataset = SimpleNamespace(source="real", real=SimpleNamespace(max_images_per_class=None),
                              preprocess=SimpleNamespace(image_size=32, val_fraction=0.25, test_fraction=0.25))
    report = DATASETS["catsdogs"].prepare(tmp_path / "raw", tmp_path / "prep", dataset, 0)
    assert report["images_skipped"] == 3 and report["images_kept"] == 12 and not report["has_masks"]


def test_catsdogs_clear_is_catsdogs_with_twin_settings_of_its_own():
    """GAD's cats-vs-dogs (``catsdogs_clear``): the same real archive, generator and loader;
    in the default params only its twin's evidence differs (clearer ears, fewer leaves)."""
    from xaibench.data import DATASETS
    from xaibench.params import load_params

    graded, clear = DATASETS["catsdogs"], DATASETS["catsdogs_clear"]
    assert (clear.url, clear.archive_name, clear.classes) == (graded.url, graded.archive_name, graded.classes)
    assert clear.generate_synthetic is graded.generate_synthetic and clear.prepare is graded.prepare
    params = load_params()
    graded_twin, clear_twin = params.datasets["catsdogs"].synthetic, params.datasets["catsdogs_clear"].synthetic
    assert clear_twin["ear_contrast"][0] > graded_twin["ear_contrast"][0]
    assert clear_twin["occlusion"] < graded_twin["occlusion"]
    assert "catsdogs_clear" in params.gad.datasets
