"""Cue masks and swapped-cue renderings of the twins: the cue mask
marks the pixels that carry the label, the swapped rendering changes only those pixels,
and the preprocess stage carries both to data/cues/<dataset>."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xaibench.data import DATASETS, catsdogs, cifar10, cub, imagenet
from xaibench.data.images import load_cues
from xaibench.metrics.faithfulness import insertion_canvas


def _same_scene(draw, label, other, **kw):
    rng = np.random.default_rng(5)
    first = draw(copy.deepcopy(rng), label, **kw)
    second = draw(copy.deepcopy(rng), other, **kw)
    return first, second


def test_catsdogs_swap_changes_only_the_cues_and_blur_erases_them():
    (cat, fg, cue, parts), (dog, _, dog_cue, _) = _same_scene(catsdogs.draw_animal, 0, 1, h=64, w=64)  # as trained
    assert np.array_equal(cue, dog_cue) and (cue & ~fg).sum() == 0 and cue.any()
    assert np.array_equal(cue, parts["ears"] | parts["collar"]) and not (parts["ears"] & parts["collar"]).any()
    assert np.array_equal(cat[~cue], dog[~cue])               # same scene outside the cues
    assert np.abs(cat[cue] - dog[cue]).mean() > 0.02            # horizontal vs vertical stripes
    blurred = [insertion_canvas(torch.from_numpy(x).permute(2, 0, 1).float(), 5.0) for x in (cat, dog)]
    after = (blurred[0] - blurred[1]).abs().permute(1, 2, 0).numpy()[cue].mean()
    assert after < 0.15 * np.abs(cat[cue] - dog[cue]).mean()    # RISE's blur leaves < 15 % of the cues


def test_catsdogs_removing_a_cue_changes_only_its_pixels_and_cue_strength_is_graded():
    rng = np.random.default_rng(5)
    image, _, _, parts = catsdogs.draw_animal(copy.deepcopy(rng), 0, 128, 128)
    for cue in catsdogs.CUES:
        plain = catsdogs.draw_animal(copy.deepcopy(rng), 0, 128, 128, without=(cue,))[0]
        changed = np.abs(plain - image).max(-1) > 0
        assert changed.any() and not (changed & ~parts[cue]).any()
    # the ear stripes' contrast is drawn per image: some scenes show them faintly
    params = catsdogs.SyntheticParams(n_per_class=4, n_corrupt=0, min_size=64, max_size=64, ear_contrast=(0.0, 0.0))
    faint, _, _, faint_parts = catsdogs.draw_animal(np.random.default_rng(2), 0, 64, 64, params)
    other = catsdogs.draw_animal(np.random.default_rng(2), 1, 64, 64, params)[0]
    assert np.array_equal(faint[faint_parts["ears"]], other[faint_parts["ears"]])   # contrast 0: no ear cue


def test_cub_swap_changes_only_the_beak():
    (thin, beak, _), (thick, thick_beak, _) = _same_scene(cub.draw_bird, "thin", "thick", side=64)
    outside = ~(beak | thick_beak)
    assert np.array_equal(thin[outside], thick[outside]) and not np.array_equal(thin, thick)


def test_imagenet_swap_changes_only_the_object_texture():
    (a, mask), (b, mask_b) = _same_scene(imagenet.draw_image, 0, imagenet.swapped_label(0), side=64)
    assert np.array_equal(mask, mask_b) and np.array_equal(a[~mask], b[~mask]) and not np.array_equal(a, b)


@pytest.mark.parametrize("name, synthetic, preprocess", [
    ("catsdogs", catsdogs.SyntheticParams(n_per_class=6, n_corrupt=1, min_size=40, max_size=56),
     SimpleNamespace(image_size=32, val_fraction=0.25, test_fraction=0.34)),
    ("cub", cub.SyntheticParams(n_per_species=6, image_size=48, test_fraction=0.34),
     SimpleNamespace(image_size=32, val_fraction=0.25, test_fraction=None)),
    ("imagenet", imagenet.SyntheticParams(n_per_class=6, image_size=64),
     SimpleNamespace(image_size=32, val_fraction=0.25, test_fraction=0.34)),
    ("cifar10", cifar10.SyntheticParams(n_train_per_class=5, n_test_per_class=2),
     SimpleNamespace(image_size=32, val_fraction=0.2, test_fraction=None)),
])
def test_preprocess_carries_cues_of_every_test_image(tmp_path, name, synthetic, preprocess):
    spec = DATASETS[name]
    spec.generate_synthetic(tmp_path / "raw", synthetic, 0)
    dataset = SimpleNamespace(source="synthetic", real=SimpleNamespace(max_images_per_class=None),
                              preprocess=preprocess)
    spec.prepare(tmp_path / "raw", tmp_path / "prep", dataset, 0)
    summary = spec.prepare_cues(tmp_path / "raw", tmp_path / "prep", tmp_path / "cues", dataset)
    cues = load_cues(tmp_path / "cues")
    test = np.load(tmp_path / "prep" / "test.npz")
    assert summary["cue_masks"] and summary["swapped_images"]
    assert list(cues["ids"]) == list(test["ids"])
    assert cues["cue_masks"].shape == test["images"].shape[:3] and cues["cue_masks"].any(axis=(1, 2)).all()
    assert cues["swapped_images"].shape == test["images"].shape
    assert (cues["swapped_labels"] != test["labels"]).all()
    assert 0 < summary["cue_area_share"] < 0.5
    if name == "catsdogs":                          # two cues: each one's mask and the scene without it
        assert set(summary["cue_parts"]) == set(catsdogs.CUES)
        for cue in catsdogs.CUES:
            assert cues[f"part_{cue}"].shape == cues["cue_masks"].shape
            assert cues[f"removed_{cue}"].shape == test["images"].shape
