"""Your own image folder: ImageFolder layout, any classes, JPEG/PNG/WebP, corrupt
files skipped and counted, splits streamed through memory maps."""

import copy
import json

import numpy as np
import pytest
import yaml

from xaibench.data import dataset_classes, dataset_spec
from xaibench.data.folder import list_images, write_image_folder
from xaibench.data.images import load_split, map_npz, write_npz
from xaibench.data.sources import materialize
from xaibench.params import ParamsError, validate_params

PARAMS = yaml.safe_load(open("params.yaml"))


def folder_params(folder, **preprocess):
    return {"source": "folder", "synthetic": {}, "real": {"folder": str(folder)},
            "preprocess": {"image_size": 32, "val_fraction": 0.2, "test_fraction": 0.25, **preprocess}}


def validated(dataset: dict, name: str = "mine"):
    raw = copy.deepcopy(PARAMS)
    raw["datasets"][name] = dataset
    return validate_params(raw).datasets[name]


def test_write_npz_is_read_by_numpy_and_memory_mapped(tmp_path):
    images = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    ids = np.asarray(["a/1.jpg", "b/22.png", "c", "d", "e"])
    write_npz(tmp_path / "x.npz", rows=np.array([4, 0, 2]), chunk_rows=2, images=images, ids=ids)
    with np.load(tmp_path / "x.npz") as plain:
        assert np.array_equal(plain["images"], images[[4, 0, 2]]) and list(plain["ids"]) == ["e", "a/1.jpg", "c"]
    mapped = map_npz(tmp_path / "x.npz")
    assert isinstance(mapped["images"], np.memmap) and np.array_equal(mapped["images"], images[[4, 0, 2]])
    np.savez(tmp_path / "y.npz", images=images, empty=np.zeros((0, 3)))  # numpy's own writer maps too
    mapped = map_npz(tmp_path / "y.npz")
    assert np.array_equal(mapped["images"], images) and mapped["empty"].shape == (0, 3)


def test_a_folder_is_copied_decoded_split_and_its_corrupt_files_counted(tmp_path):
    write_image_folder(tmp_path / "mine", n_classes=3, n_per_class=8, image_size=40, seed=0, n_corrupt=2)
    (tmp_path / "mine" / "notes.txt").write_text("not an image, not a class")
    (tmp_path / "mine" / "class_2" / "readme.md").write_text("ignored")
    items, classes = list_images(tmp_path / "mine")
    assert classes == ["class_0", "class_1", "class_2"] and len(items) == 3 * 8 + 2
    assert {p.suffix for p, _, _ in items} == {".jpg", ".png", ".webp"}
    dataset = validated(folder_params(tmp_path / "mine"))
    report = materialize("mine", dataset, 0, tmp_path / "raw", tmp_path / "downloads")
    assert report == {"source": "real", "folder": str(tmp_path / "mine"), "images": 26, "classes": 3,
                      "files_not_images": 1, "dangling_symlinks": 0,  # class_2/readme.md
                      "mask_files": 0, "boxes_file": False}
    prepared = dataset_spec("mine", "folder").prepare(tmp_path / "raw", tmp_path / "prepared", dataset, 0)
    assert prepared["images_skipped"] == 2 and prepared["images_kept"] == 24 and prepared["classes"] == 3
    assert prepared["n_test"] == 6 and prepared["n_val"] == 3 + 3 and prepared["n_train"] == 12
    assert dataset_classes("mine", tmp_path / "prepared") == ("class_0", "class_1", "class_2")
    test = load_split(tmp_path / "prepared", "test", mmap=True)
    assert test["images"].shape == (6, 32, 32, 3) and isinstance(test["images"], np.memmap)
    assert sorted(np.bincount(test["labels"])) == [2, 2, 2] and not test["masks"].any()
    assert all(str(i).split("/")[0] == f"class_{y}" for i, y in zip(test["ids"], test["labels"]))
    stats = json.loads((tmp_path / "prepared" / "stats.json").read_text())
    train = load_split(tmp_path / "prepared", "train")["images"].reshape(-1, 3) / 255.0
    assert np.allclose(stats["mean"], train.mean(0), atol=1e-6) and np.allclose(stats["std"], train.std(0), atol=1e-5)
    assert not list((tmp_path / "prepared").glob(".decode-*"))  # the memory map is gone


def test_folder_params_are_checked():
    with pytest.raises(ParamsError, match="datasets.mine: source: folder needs real.folder"):
        validated({**folder_params("x"), "real": {}})
    with pytest.raises(ParamsError, match=r"unknown dataset\(s\) \['mine'\].*or any name with source: folder"):
        validated({**folder_params("x"), "source": "real"})


def test_image_size_may_name_the_model_whose_input_size_it_is():
    assert validated(folder_params("x", image_size="torchvision:resnet50")).preprocess.image_size == 224
    assert validated(folder_params("x", image_size="timm:inception_v3")).preprocess.image_size == 299
    with pytest.raises(ParamsError, match="datasets.mine.preprocess.image_size"):
        validated(folder_params("x", image_size="resnet50"))


def test_a_folder_without_two_classes_is_a_clear_error(tmp_path):
    write_image_folder(tmp_path / "two", n_classes=2, n_per_class=1, image_size=32, seed=0)
    (tmp_path / "one").mkdir()
    (tmp_path / "two" / "class_1").rename(tmp_path / "one" / "class_1")
    with pytest.raises(FileNotFoundError, match="has 1 class sub-folder"):
        list_images(tmp_path / "one")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        list_images(tmp_path / "nowhere")


def test_take_rows_reads_scattered_rows_of_a_memory_map_from_the_file(tmp_path):
    from xaibench.data.images import take_rows

    array = np.lib.format.open_memmap(tmp_path / "a.npy", mode="w+", dtype=np.uint8, shape=(50, 4, 4, 3))
    array[:] = np.random.default_rng(0).integers(0, 255, array.shape, dtype=np.uint8)
    plain, index = np.array(array), np.array([7, 3, 49, 0])
    assert np.array_equal(take_rows(array, index), plain[index])               # os.pread per row
    assert np.array_equal(take_rows(array[10:], [7, 3, 39, 0]), plain[10:][[7, 3, 39, 0]])  # a view: indexing
    write_npz(tmp_path / "s.npz", rows=index, chunk_rows=3, images=array)
    mapped = map_npz(tmp_path / "s.npz")["images"]                             # offset inside a zip
    assert np.array_equal(take_rows(mapped, [3, 1]), plain[index][[3, 1]])


# --- what a real folder holds ---------------------------------------------------

def prepare_folder(tmp_path, folder, **preprocess):
    dataset = validated(folder_params(folder, **preprocess))
    materialize("mine", dataset, 0, tmp_path / "raw", tmp_path / "downloads")
    return dataset_spec("mine", "folder").prepare(tmp_path / "raw", tmp_path / "prepared", dataset, 0)


def test_a_16_bit_png_is_scaled_to_8_bit_not_white(tmp_path):
    from PIL import Image

    from xaibench.data.images import decode_rgb

    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))     # a horizontal gradient
    Image.fromarray(ramp).save(tmp_path / "depth.png")                       # 16-bit grayscale PNG
    with Image.open(tmp_path / "depth.png") as raw:
        assert raw.mode.startswith("I")                                       # Pillow reads I;16 / I
    pixels = np.asarray(decode_rgb(tmp_path / "depth.png"))
    assert pixels.shape == (8, 64, 3) and pixels.dtype == np.uint8
    expected = np.rint(ramp / 257.0).astype(np.uint8)                        # 65535 -> 255, 0 -> 0
    assert np.array_equal(pixels[..., 0], expected) and np.array_equal(pixels[..., 2], expected)
    assert pixels[0, 0, 0] == 0 and pixels[0, -1, 0] == 255 and 120 <= pixels[0, 32, 0] <= 135


def test_every_pillow_format_is_read_and_an_animation_gives_its_first_frame(tmp_path):
    from PIL import Image

    write_image_folder(tmp_path / "mine", n_classes=3, n_per_class=6, image_size=32, seed=0)
    other = tmp_path / "mine" / "class_2"                      # class_2: TIFF, BMP and GIF only
    for old in sorted(other.iterdir()):
        old.unlink()
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((200, 0, 0), (0, 0, 200))]
    for k in range(2):
        frames[0].save(other / f"t{k}.tif")
        frames[0].save(other / f"b{k}.bmp")
    frames[0].save(other / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(other / "still.gif")
    items, classes = list_images(tmp_path / "mine")
    assert classes == ["class_0", "class_1", "class_2"]
    assert sorted(p.suffix for p, label, _ in items if label == 2) == [".bmp", ".bmp", ".gif", ".gif", ".tif", ".tif"]
    from xaibench.data.images import decode_rgb

    first = np.asarray(decode_rgb(tmp_path / "mine" / "class_2" / "anim.gif"))
    assert first[..., 0].mean() > 150 and first[..., 2].mean() < 50          # the red first frame
    report = prepare_folder(tmp_path, tmp_path / "mine", test_fraction=0.34)
    assert report["classes"] == 3 and report["images_skipped"] == 0 and report["images_kept"] == 18


def test_a_class_folder_without_images_is_named_not_dropped(tmp_path):
    write_image_folder(tmp_path / "mine", n_classes=3, n_per_class=4, image_size=32, seed=0)
    for old in (tmp_path / "mine" / "class_1").iterdir():
        old.unlink()
    (tmp_path / "mine" / "class_1" / "labels.csv").write_text("a,b")
    with pytest.raises(FileNotFoundError, match=r"class folder\(s\) with no image file: 'class_1' \(1 other "
                                                r"file\(s\): \.csv\)"):
        list_images(tmp_path / "mine")


def test_a_class_whose_files_are_all_unreadable_is_refused(tmp_path):
    write_image_folder(tmp_path / "mine", n_classes=3, n_per_class=4, image_size=32, seed=0)
    for k, old in enumerate(sorted((tmp_path / "mine" / "class_1").iterdir())):
        old.write_bytes(b"\x89PNG broken" if k % 2 else b"")                 # all 4 unreadable
    with pytest.raises(ValueError, match=r"class folder\(s\) whose images are all unreadable: 'class_1' "
                                         r"\(4 unreadable file\(s\)"):
        prepare_folder(tmp_path, tmp_path / "mine")


def test_an_image_over_the_decompression_bomb_limit_is_skipped_and_counted(tmp_path, monkeypatch):
    from PIL import Image

    write_image_folder(tmp_path / "mine", n_classes=2, n_per_class=8, image_size=32, seed=0)
    Image.new("RGB", (200, 200), (9, 9, 9)).save(tmp_path / "mine" / "class_0" / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)                    # 200x200 = 4x the limit
    report = prepare_folder(tmp_path, tmp_path / "mine")
    assert report["images_skipped"] == 1 and report["skipped_ids"] == ["class_0/huge.png"]
    assert report["images_kept"] == 16


def test_dangling_symlinks_and_other_files_are_counted(tmp_path):
    write_image_folder(tmp_path / "mine", n_classes=2, n_per_class=8, image_size=32, seed=0)
    (tmp_path / "mine" / "class_0" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "mine" / "class_1" / "notes.txt").write_text("x")
    dataset = validated(folder_params(tmp_path / "mine"))
    report = materialize("mine", dataset, 0, tmp_path / "raw", tmp_path / "downloads")
    assert report["dangling_symlinks"] == 1 and report["files_not_images"] == 1 and report["images"] == 16


def test_a_folder_too_small_for_a_test_split_is_refused_at_preprocess(tmp_path):
    write_image_folder(tmp_path / "mine", n_classes=2, n_per_class=2, image_size=32, seed=0)
    with pytest.raises(ValueError, match=r"the test split is empty \(split sizes: train \d+, val \d+, test 0\): "
                                         r"4 decodable images in 2 classes; add images, or raise "
                                         r"preprocess.test_fraction"):
        prepare_folder(tmp_path, tmp_path / "mine", test_fraction=0.1, val_fraction=0.1)


def test_box_mask_by_hand():
    from xaibench.data.folder import box_mask

    # a 100 x 50 image resized to 10 x 10: x scales by 0.1, y by 0.2
    mask = box_mask([(20, 10, 60, 30)], (100, 50), 10)
    expected = np.zeros((10, 10), np.uint8)
    expected[2:6, 2:6] = 1
    np.testing.assert_array_equal(mask, expected)


def test_malformed_boxes_are_named_by_line(tmp_path):
    from xaibench.data.folder import read_boxes

    (tmp_path / "b.csv").write_text("image,x1,y1,x2,y2\nclass_0/a.png,1,2,3,4\nclass_0/b.png,5,5,2,9\n")
    with pytest.raises(ValueError, match=r"b.csv, line 3: a box needs x1 < x2 and y1 < y2"):
        read_boxes(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("file,x,y\n")
    with pytest.raises(ValueError, match="expected the columns image,x1,y1,x2,y2"):
        read_boxes(tmp_path / "c.csv")


def test_a_folder_with_masks_and_boxes_gets_cue_masks_for_localisation(tmp_path):
    """masks/ mirrors the class folders (not a class); boxes.csv adds boxes; their union
    is each test image's ground truth in data/cues, as the twins' cue masks are."""
    from xaibench.data.images import load_cues

    write_image_folder(tmp_path / "mine", n_classes=2, n_per_class=8, image_size=40, seed=0, masks=True)
    boxed = [f"class_1/1_{k:05d}.{('jpg', 'png', 'webp')[k % 3]}" for k in range(8)]
    (tmp_path / "mine" / "boxes.csv").write_text("image,x1,y1,x2,y2\n" + "".join(f"{i},0,0,10,10\n" for i in boxed))
    dataset = validated(folder_params(tmp_path / "mine", test_fraction=0.5))
    report = materialize("mine", dataset, 0, tmp_path / "raw", tmp_path / "downloads")
    assert report["classes"] == 2 and report["mask_files"] == 16 and report["boxes_file"] is True
    spec = dataset_spec("mine", "folder")
    spec.prepare(tmp_path / "raw", tmp_path / "prepared", dataset, 0)
    summary = spec.prepare_cues(tmp_path / "raw", tmp_path / "prepared", tmp_path / "cues", dataset)
    assert summary["cue_masks"] is True and summary["images_without_ground_truth"] == 0
    cues = load_cues(tmp_path / "cues")
    test = load_split(tmp_path / "prepared", "test")
    assert list(cues["ids"]) == list(test["ids"]) and cues["cue_masks"].shape == (8, 32, 32)
    assert sum(str(i) in boxed for i in test["ids"]) == 4
    from xaibench.data.images import load_mask

    for k, image_id in enumerate(test["ids"]):
        expected = load_mask(tmp_path / "mine" / "masks" / str(image_id).replace(".jpg", ".png")
                             .replace(".webp", ".png"), 32)
        if str(image_id) in boxed:
            expected[:8, :8] = 1     # the 10 px box of a 40 px image at 32 px
        np.testing.assert_array_equal(cues["cue_masks"][k], expected)


def test_a_folder_without_ground_truth_says_so(tmp_path):
    write_image_folder(tmp_path / "mine", n_classes=2, n_per_class=6, image_size=40, seed=0)
    dataset = validated(folder_params(tmp_path / "mine"))
    materialize("mine", dataset, 0, tmp_path / "raw", tmp_path / "downloads")
    spec = dataset_spec("mine", "folder")
    spec.prepare(tmp_path / "raw", tmp_path / "prepared", dataset, 0)
    summary = spec.prepare_cues(tmp_path / "raw", tmp_path / "prepared", tmp_path / "cues", dataset)
    assert summary["cue_masks"] is False and "no object masks" in summary["note"]
