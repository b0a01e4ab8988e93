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


def test_catsdogs_swap_changes_only_the_ears_and_blur_erases_the_cue():
    (cat, fg, ears), (dog, _, dog_ears) = _same_scene(catsdogs.draw_animal, 0, 1, h=128, w=128)
    assert np.array_equal(ears, dog_ears) and (ears & ~fg).sum() == 0 and ears.any()
    assert np.array_equal(cat[~ears], dog[~ears])             # same scene outside the cue
    assert np.abs(cat[ears] - dog[ears]).mean() > 0.2           # horizontal vs vertical stripes
    blurred = [insertion_canvas(torch.from_numpy(x).permute(2, 0, 1).float(), 5.0) for x in (cat, dog)]
    after = (blurred[0] - blurred[1]).abs().permute(1, 2, 0).numpy()[ears].mean()
    assert after < 0.15 * np.abs(cat[ears] - dog[ears]).mean()  # RISE's blur leaves < 15 % of the cue


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
