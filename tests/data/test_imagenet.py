"""ImageNet-study images: the five-class twin in class folders with its masks, and a user's folder as the
real source."""

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from xaibench.data import DATASETS
from xaibench.data.images import load_split
from xaibench.data.imagenet import CLASSES, SyntheticParams, draw_image, generate_synthetic
from xaibench.data.sources import materialize

PREPROCESS = SimpleNamespace(image_size=64, val_fraction=0.25, test_fraction=0.25)


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    generate_synthetic(root, SyntheticParams(n_per_class=8, image_size=64), seed=0)
    return root


def test_twin_has_five_class_folders_masks_and_one_broken_file(twin):
    assert sorted(p.name for p in twin.iterdir()) == sorted(CLASSES + ("masks", "swapped")) and len(CLASSES) == 5
    assert len(list(twin.rglob("*.jpg"))) == 41 + 40  # 5 x 8 + the broken one + 5 x 8 swapped
    assert len(list((twin / "masks").rglob("*.png"))) == 40


def test_twin_texture_lies_inside_the_object_mask():
    image, mask = draw_image(np.random.default_rng(3), CLASSES.index("horizontal"), 96)
    assert 0.05 < mask.mean() < 0.6
    rows = image[mask].reshape(-1, 3).astype(float)
    # two fill colours, one dark (<= 0.3 * 255) and one light (>= 0.7 * 255), about half each
    dark = rows.max(1) <= 0.3 * 255 + 1
    light = rows.min(1) >= 0.7 * 255 - 1
    assert (dark | light).all() and 0.3 < dark.mean() < 0.7
    # horizontal stripes: along a row inside the object the colour does not change
    y, x = np.argwhere(mask)[len(np.argwhere(mask)) // 2]
    row = image[y][mask[y]].astype(float)
    assert np.ptp(row, axis=0).max() == 0


def test_prepare_splits_the_twin_and_skips_the_broken_file(twin, tmp_path):
    params = SimpleNamespace(source="synthetic", preprocess=PREPROCESS)
    report = DATASETS["imagenet"].prepare(twin, tmp_path, params, 0)
    assert report["images_skipped"] == 1 and report["images_kept"] == 40 and report["files_listed"] == 41
    assert report["n_train"] + report["n_val"] + report["n_test"] == 40 and report["has_masks"]
    test = load_split(tmp_path, "test")
    assert test["images"].shape[1:] == (64, 64, 3) and set(test["labels"]) <= set(range(5))
    assert all(0.05 < m.mean() < 0.6 for m in test["masks"])  # every twin image has its object mask


def test_real_source_is_a_user_folder_without_labels(tmp_path):
    photos = tmp_path / "photos" / "holiday"
    photos.mkdir(parents=True)
    for k in range(3):
        Image.fromarray(np.full((50, 70, 3), 40 * k, np.uint8)).save(photos / f"p{k}.png")
    (photos / "notes.txt").write_text("not an image")
    params = SimpleNamespace(source="real", preprocess=PREPROCESS,
                             real=SimpleNamespace(folder=str(tmp_path / "photos"), sha256=None))
    report = materialize("imagenet", params, 0, tmp_path / "raw", tmp_path / "dl")
    assert report["images"] == 3
    prepared = DATASETS["imagenet"].prepare(tmp_path / "raw", tmp_path / "prep", params, 0)
    assert prepared["n_test"] == 3 and "n_train" not in prepared
    assert (load_split(tmp_path / "prep", "test")["labels"] == -1).all()


def test_missing_folder_says_which_key_to_set(tmp_path):
    params = SimpleNamespace(source="real", preprocess=PREPROCESS, real=SimpleNamespace(folder=None, sha256=None))
    with pytest.raises(FileNotFoundError, match="datasets.imagenet.real.folder"):
        materialize("imagenet", params, 0, tmp_path / "raw", tmp_path / "dl")
    assert not (tmp_path / "raw").exists()
