"""Your own images: any folder in the ImageFolder layout (issue 15), by params alone.

    datasets:
      mypets:                     # any name
        source: folder
        synthetic: {}             # unused (dvc.yaml lists the key for every dataset)
        real: {folder: /data/mypets, max_images_per_class: null}
        preprocess: {image_size: 224, val_fraction: 0.1, test_fraction: 0.2}

``real.folder`` holds one sub-folder per class (any number of classes, at least two); the
class names are the sub-folders' names in sorted order (torchvision's ``ImageFolder``
convention, so class index k means the same in both), stored in ``stats.json``
(``classes``). Images are ``.jpg``/``.jpeg``/``.png``/``.webp`` files anywhere below
their class folder; other files are ignored, undecodable images are skipped and counted
(as for PetImages). The download stage copies the folder into ``data/raw/<name>`` (so DVC
caches what was explained; rerun it with ``dvc repro -f download@<name>`` after changing
the folder's files); preprocess resizes and splits it (stratified, seeded) streaming
through memory maps: memory holds a chunk, not the dataset.

No synthetic twin of its own: :func:`write_image_folder` generates a folder in this layout
(textured objects from the ImageNet twin, in JPEG, PNG and WebP, with a few corrupt files)
for the tests and the memory benchmark.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from xaibench.atomic import write_json
from xaibench.data.images import channel_stats_streaming, decode_into, stratified_split, write_npz
from xaibench.params import Strict

URL = None
ARCHIVE_NAME = None
SHA256 = None
ARCHIVES = ()
CLASSES = ()  # found in the folder: data.dataset_classes reads them from stats.json
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
CHUNK_ROWS = 512


class SyntheticParams(Strict):
    """Nothing: a folder dataset has no twin of its own (``synthetic: {}``)."""


def generate_synthetic(root, params, seed: int) -> dict:
    raise ValueError("a folder dataset has no synthetic twin: use source: folder with real.folder")


def class_folders(folder: str | Path) -> list[str]:
    """Sorted names of the sub-folders of ``folder`` that hold at least one image file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"real.folder: {folder} is not a folder (one sub-folder of images per class)")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.rglob("*")))
    if len(classes) < 2:
        raise FileNotFoundError(f"real.folder: {folder} has {len(classes)} class sub-folder(s) with "
                                f"{'/'.join(sorted(IMAGE_SUFFIXES))} images; give at least two")
    return classes


def list_images(folder: str | Path, max_per_class: int | None = None) -> tuple[list, list[str]]:
    """([(path, label, image id "<class>/<relative path>")], class names) of an ImageFolder tree."""
    folder = Path(folder)
    classes = class_folders(folder)
    items = []
    for label, name in enumerate(classes):
        files = [p for p in sorted((folder / name).rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        items += [(p, label, str(p.relative_to(folder))) for p in files[:max_per_class]]
    return items, classes


def copy_folder(folder: str | Path, dest: str | Path) -> dict:
    """Copy the class sub-folders' image files of ``folder`` into ``dest``."""
    items, classes = list_images(folder)
    for path, _, image_id in items:
        target = Path(dest) / image_id
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return {"images": len(items), "classes": len(classes)}


def prepare(raw_dir, out_dir, dataset_params, seed: int) -> dict:
    """Decode (skipping undecodable files), resize, split stratified into train/val/test
    (``test_fraction`` null = 0.2) and write the splits and ``stats.json`` (channel
    statistics of train, ``classes``), streaming: decoded images go to a memory map and
    every split is written a chunk of rows at a time."""
    cfg = dataset_params.preprocess
    items, classes = list_images(raw_dir, dataset_params.real.max_images_per_class)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".decode-") as work:
        images, labels, ids, kept, skipped = decode_into(items, cfg.image_size, work)
        splits = stratified_split(labels, cfg.val_fraction, cfg.test_fraction or 0.2, seed)
        no_masks = np.broadcast_to(np.zeros((1, cfg.image_size, cfg.image_size), np.uint8),
                                   (len(images), cfg.image_size, cfg.image_size))
        labels_by_row, ids_by_row = np.zeros(len(images), np.int64), np.zeros(len(images), ids.dtype)
        labels_by_row[kept], ids_by_row[kept] = labels, ids
        for name, index in splits.items():
            write_npz(out_dir / f"{name}.npz", rows=kept[index], chunk_rows=CHUNK_ROWS, images=images,
                      labels=labels_by_row, ids=ids_by_row, masks=no_masks)
        stats = channel_stats_streaming(images, kept[splits["train"]], CHUNK_ROWS)
        del images
    write_json(out_dir / "stats.json", {**stats, "classes": classes})
    return {"files_listed": len(items), "images_kept": int(len(labels)), "images_skipped": len(skipped),
            "skipped_ids": skipped, **{f"n_{name}": int(len(index)) for name, index in splits.items()},
            "classes": len(classes), "has_masks": False}


def write_image_folder(root: str | Path, n_classes: int, n_per_class: int, image_size: int, seed: int,
                       n_corrupt: int = 0) -> dict:
    """Generate an ImageFolder tree ``root/class_<k>/<k>_<i>.<jpg|png|webp>``: class k is the
    ImageNet twin's texture k (objects, clutter and lines as there; at most five classes),
    formats in turn; ``n_corrupt`` undecodable files in the first class."""
    from xaibench.data.imagenet import TEXTURES, draw_image

    if not 2 <= n_classes <= len(TEXTURES):
        raise ValueError(f"n_classes must be 2..{len(TEXTURES)}")
    rng = np.random.default_rng(seed)
    formats = ("jpg", "png", "webp")
    for label in range(n_classes):
        folder = Path(root) / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n_per_class):
            image = Image.fromarray(draw_image(rng, label, image_size)[0])
            image.save(folder / f"{label}_{k:05d}.{formats[k % 3]}", quality=90)
    for k in range(n_corrupt):
        (Path(root) / "class_0" / f"broken_{k}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated"[: 4 + k])
    return {"images": n_classes * n_per_class, "corrupt": n_corrupt}
