"""Your own images: any folder in the ImageFolder layout, by params alone.

    datasets:
      mypets:                     # any name
        source: folder
        synthetic: {}             # unused (dvc.yaml lists the key for every dataset)
        real: {folder: /data/mypets, max_images_per_class: null}
        preprocess: {image_size: 224, val_fraction: 0.1, test_fraction: 0.2}

``real.folder`` holds one sub-folder per class (any number of classes, at least two); the
class names are the sub-folders' names in sorted order (torchvision's ``ImageFolder``
convention, so class index k means the same in both), stored in ``stats.json``
(``classes``). Every non-hidden sub-folder is a class: one with no image file, or none
that decodes, is refused with its name (a class that silently vanished would shift every
later class index). Images are files of any format Pillow reads (JPEG, PNG, WebP, TIFF,
BMP, the first frame of a GIF, ...; 16-bit images scaled to 8 bit) anywhere below their
class folder; other files are counted and listed, never read; undecodable images
(truncated, over Pillow's decompression-bomb limit) and dangling symlinks are skipped and
counted (as for PetImages). The download stage copies the folder into ``data/raw/<name>`` (so DVC
caches what was explained; rerun it with ``dvc repro -f download@<name>`` after changing
the folder's files); preprocess resizes and splits it (stratified, seeded) streaming
through memory maps: memory holds a chunk, not the dataset.

**Ground truth, optional.** A ``masks/`` tree beside the class folders, mirroring them
(``masks/<class>/<file stem>.png``: non-zero = the object, any size: resized like the
image), and/or a ``boxes.csv`` (columns ``image,x1,y1,x2,y2``: the image id
``<class>/<file>``, a box in the original image's pixels; several rows per image are
joined). Then the test split's object masks go to ``data/cues/<name>`` and the
localisation metrics and the pointing game apply as on the twins; an image with neither
gets an empty mask (counted as ``images_without_ground_truth``). ``masks`` is not a class.

No synthetic twin of its own: :func:`write_image_folder` generates a folder in this layout
(textured objects from the ImageNet twin, in JPEG, PNG and WebP, with a few corrupt files)
for the tests and the memory benchmark.
"""

from __future__ import annotations

import csv
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from xaibench.atomic import write_json
from xaibench.data.imagenet import TEXTURES, draw_image
from xaibench.data.images import (channel_stats_streaming, decode_into, load_mask, load_split, pillow_suffixes,
                                  require_splits, save_cues, stratified_split, write_npz)
from xaibench.schema import Strict

log = logging.getLogger(__name__)

URL = None
ARCHIVE_NAME = None
SHA256 = None
ARCHIVES = ()
CLASSES = ()  # found in the folder: data.dataset_classes reads them from stats.json
IMAGE_SUFFIXES = pillow_suffixes()
CHUNK_ROWS = 512
MASKS = "masks"          # optional object masks, mirroring the class folders
BOXES = "boxes.csv"      # optional boxes: image,x1,y1,x2,y2 (original pixels)


class SyntheticParams(Strict):
    """Nothing: a folder dataset has no twin of its own (``synthetic: {}``)."""


def generate_synthetic(root, params, seed: int) -> dict:
    raise ValueError("a folder dataset has no synthetic twin: use source: folder with real.folder")


def class_folders(folder: str | Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``folder``: every one is a class."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"real.folder: {folder} is not a folder (one sub-folder of images per class)")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and p.name != MASKS)
    hidden = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("."))
    if hidden:
        log.info("%s: hidden sub-folder(s) %s are not classes", folder, ", ".join(hidden))
    if len(classes) < 2:
        raise FileNotFoundError(f"real.folder: {folder} has {len(classes)} class sub-folder(s); give at least "
                                f"two (one sub-folder of images per class)")
    return classes


def scan_folder(folder: str | Path, max_per_class: int | None = None) -> dict:
    """What an ImageFolder tree holds: ``items`` [(path, label, image id
    "<class>/<relative path>")], ``classes``, and per class the files that are not read:
    ``other_files`` (suffixes Pillow has no reader for) and ``dangling`` (symlinks to
    nothing), as ids. A class sub-folder with no image file is a FileNotFoundError that
    names it and says what it holds instead."""
    folder = Path(folder)
    classes = class_folders(folder)
    items, other, dangling, empty = [], [], [], []
    for label, name in enumerate(classes):
        paths = [p for p in sorted((folder / name).rglob("*")) if not any(part.startswith(".") for part in
                                                                            p.relative_to(folder).parts)]
        broken = [p for p in paths if p.is_symlink() and not p.exists()]
        files = [p for p in paths if p.is_file()]
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        rest = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if not images:
            suffixes = sorted({p.suffix.lower() or "(none)" for p in rest})
            empty.append(f"{name!r} ({len(rest)} other file(s){': ' + ', '.join(suffixes) if suffixes else ''}"
                         f"{f', {len(broken)} dangling symlink(s)' if broken else ''})")
        items += [(p, label, str(p.relative_to(folder))) for p in images[:max_per_class]]
        other += [str(p.relative_to(folder)) for p in rest]
        dangling += [str(p.relative_to(folder)) for p in broken]
    if empty:
        raise FileNotFoundError(f"real.folder: {folder}: class folder(s) with no image file: {'; '.join(empty)}. "
                                f"Every sub-folder is a class; put images in it (any format Pillow reads: "
                                f"JPEG, PNG, WebP, TIFF, BMP, GIF, ...) or move it out of {folder}")
    for what, ids in (("files Pillow cannot read (not images)", other), ("dangling symlinks", dangling)):
        if ids:
            log.warning("%s: %d %s skipped, e.g. %s", folder, len(ids), what, ", ".join(ids[:5]))
    return {"items": items, "classes": classes, "other_files": other, "dangling": dangling}


def list_images(folder: str | Path, max_per_class: int | None = None) -> tuple[list, list[str]]:
    """([(path, label, image id "<class>/<relative path>")], class names) of an ImageFolder tree."""
    scan = scan_folder(folder, max_per_class)
    return scan["items"], scan["classes"]


def copy_folder(folder: str | Path, dest: str | Path) -> dict:
    """Copy the class sub-folders' image files of ``folder`` into ``dest`` (every class
    folder, so the copy has the same classes); count what is not copied."""
    scan = scan_folder(folder)
    for name in scan["classes"]:
        (Path(dest) / name).mkdir(parents=True, exist_ok=True)
    for path, _, image_id in scan["items"]:
        target = Path(dest) / image_id
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    folder, masks = Path(folder), 0
    if (folder / MASKS).is_dir():
        shutil.copytree(folder / MASKS, Path(dest) / MASKS, dirs_exist_ok=True)
        masks = sum(1 for p in (folder / MASKS).rglob("*.png"))
    if (folder / BOXES).is_file():
        read_boxes(folder / BOXES)   # a malformed file stops here, naming the line
        shutil.copy2(folder / BOXES, Path(dest) / BOXES)
    return {"images": len(scan["items"]), "classes": len(scan["classes"]), "mask_files": masks,
            "boxes_file": (folder / BOXES).is_file(),
            "files_not_images": len(scan["other_files"]), "dangling_symlinks": len(scan["dangling"])}


def check_every_class_decodes(classes: list[str], items: list, labels: np.ndarray, skipped: list[str]) -> None:
    """Refuse a class none of whose image files decodes: the model would otherwise be
    trained on the other classes alone, without a word."""
    kept = np.bincount(np.asarray(labels, np.int64), minlength=len(classes))
    listed = np.bincount(np.asarray([label for _, label, _ in items], np.int64), minlength=len(classes))
    dead = [k for k in range(len(classes)) if kept[k] == 0]
    if dead:
        examples = {k: [i for i in skipped if i.split("/", 1)[0] == classes[k]][:3] for k in dead}
        raise ValueError("class folder(s) whose images are all unreadable: "
                         + "; ".join(f"{classes[k]!r} ({listed[k]} unreadable file(s), e.g. {', '.join(examples[k])})"
                                     for k in dead)
                         + ". Replace the files, or move the folder out of real.folder")


def prepare(raw_dir, out_dir, dataset_params, seed: int) -> dict:
    """Decode (skipping undecodable files), resize, split stratified into train/val/test
    (``test_fraction`` null = 0.2) and write the splits and ``stats.json`` (channel
    statistics of train, ``classes``), streaming: decoded images go to a memory map and
    every split is written a chunk of rows at a time."""
    cfg = dataset_params.preprocess
    scan = scan_folder(raw_dir, dataset_params.real.max_images_per_class)
    items, classes = scan["items"], scan["classes"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".decode-") as work:
        images, labels, ids, kept, skipped = decode_into(items, cfg.image_size, work)
        check_every_class_decodes(classes, items, labels, skipped)
        splits = stratified_split(labels, cfg.val_fraction, cfg.test_fraction or 0.2, seed)
        require_splits(splits, "train", "test",
                       hint=f"{len(labels)} decodable images in {len(classes)} classes; add images, or raise "
                            f"preprocess.test_fraction (now {cfg.test_fraction or 0.2}; rounded per class)")
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
            "skipped_ids": skipped, "files_not_images": len(scan["other_files"]),
            "dangling_symlinks": len(scan["dangling"]),
            **{f"n_{name}": int(len(index)) for name, index in splits.items()},
            "classes": len(classes), "has_masks": False}


def read_boxes(path: str | Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """``boxes.csv`` as {image id: [(x1, y1, x2, y2), ...]}; a row that is not four numbers
    with x1 < x2 and y1 < y2 is a ValueError naming its line."""

    boxes: dict[str, list] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"image", "x1", "y1", "x2", "y2"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected the columns image,x1,y1,x2,y2 (got {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            try:
                x1, y1, x2, y2 = (float(row[k]) for k in ("x1", "y1", "x2", "y2"))
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {line}: x1,y1,x2,y2 must be numbers (got {row})") from None
            if not (x1 < x2 and y1 < y2):
                raise ValueError(f"{path}, line {line}: a box needs x1 < x2 and y1 < y2 (got {x1},{y1},{x2},{y2})")
            boxes.setdefault(row["image"], []).append((x1, y1, x2, y2))
    return boxes


def box_mask(boxes, original_size: tuple[int, int], image_size: int) -> np.ndarray:
    """uint8 [S, S] of ``boxes`` (original pixels of a (width, height) image) on the image
    resized to S x S, as preprocess resizes it."""
    width, height = original_size
    mask = np.zeros((image_size, image_size), np.uint8)
    for x1, y1, x2, y2 in boxes:
        c1, c2 = (int(np.clip(round(v * image_size / width), 0, image_size)) for v in (x1, x2))
        r1, r2 = (int(np.clip(round(v * image_size / height), 0, image_size)) for v in (y1, y2))
        mask[r1:max(r2, r1 + 1), c1:max(c2, c1 + 1)] = 1
    return mask


def prepare_cues(raw_dir, prepared_dir, out_dir, dataset_params) -> dict:
    """The test split's object masks from ``masks/`` and ``boxes.csv`` (their union), or a
    cue folder that says the folder has none."""

    raw_dir = Path(raw_dir)
    test = load_split(prepared_dir, "test")
    ids = [str(i) for i in test["ids"]]
    size = test["images"].shape[1]
    boxes = read_boxes(raw_dir / BOXES) if (raw_dir / BOXES).is_file() else {}
    if not (raw_dir / MASKS).is_dir() and not boxes:
        return save_cues(out_dir, np.asarray(test["ids"]), note="no object masks (masks/) or boxes (boxes.csv) "
                                                                  "in the folder")
    masks = []
    for image_id in ids:
        mask = load_mask(raw_dir / MASKS / Path(image_id).with_suffix(".png"), size)
        if image_id in boxes:
            with Image.open(raw_dir / image_id) as image:
                mask = mask | box_mask(boxes[image_id], image.size, size)
        masks.append(mask)
    masks = np.stack(masks)
    summary = save_cues(out_dir, np.asarray(test["ids"]), masks,
                        note="the folder's object masks (masks/) and boxes (boxes.csv)")
    summary["images_without_ground_truth"] = int((masks.reshape(len(masks), -1).max(1) == 0).sum())
    if summary["images_without_ground_truth"]:
        log.warning("%s: %d of %d test images have no mask or box (empty ground truth)", raw_dir,
                    summary["images_without_ground_truth"], len(masks))
    return summary


def write_image_folder(root: str | Path, n_classes: int, n_per_class: int, image_size: int, seed: int,
                       n_corrupt: int = 0, masks: bool = False) -> dict:
    """Generate an ImageFolder tree ``root/class_<k>/<k>_<i>.<jpg|png|webp>``: class k is the
    ImageNet twin's texture k (objects, clutter and lines as there; at most five classes),
    formats in turn; ``n_corrupt`` undecodable files in the first class; ``masks``: each
    object's mask in ``root/masks/`` (a PNG per image)."""

    if not 2 <= n_classes <= len(TEXTURES):
        raise ValueError(f"n_classes must be 2..{len(TEXTURES)}")
    rng = np.random.default_rng(seed)
    formats = ("jpg", "png", "webp")
    for label in range(n_classes):
        folder = Path(root) / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n_per_class):
            pixels, mask = draw_image(rng, label, image_size)
            Image.fromarray(pixels).save(folder / f"{label}_{k:05d}.{formats[k % 3]}", quality=90)
            if masks:
                mask_folder = Path(root) / MASKS / folder.name
                mask_folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask.astype(np.uint8) * 255).save(mask_folder / f"{label}_{k:05d}.png")
    for k in range(n_corrupt):
        (Path(root) / "class_0" / f"broken_{k}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated"[: 4 + k])
    return {"images": n_classes * n_per_class, "corrupt": n_corrupt}
