"""Images for the ImageNet LIME/SHAP study: a folder of user images, or its synthetic twin.

Real source: no archive: ImageNet classifiers with torchvision's ImageNet weights explain
*your* images, a folder given in ``datasets.imagenet.real.folder`` (any JPEG/PNG files,
optionally in one sub-folder per class; labels are then the folder names, else -1).
The download stage copies the readable images into ``data/raw/imagenet``; undecodable
files are skipped and counted.

Ground-truth masks (the twin has them; a real folder may): ``masks/<class>/<file>.png``
beside the class folders, the same relative path as the image with a ``.png`` suffix;
images without one get an empty mask.

Synthetic twin: the same folder layout (``<class>/<file>.jpg``), five classes = five
fill textures of one object (horizontal, vertical and diagonal stripes, dots, checks) in
a dark and a light colour; the object's shape (disc, square, triangle, cross, ring), its
colours and the background clutter are nuisances drawn from one distribution for all
classes; at a higher resolution than the CIFAR twin. What made it learnable within the
budget, measured (ResNet50 from scratch, 240 training images at 80 px, 8 epochs): shape
classes and low-contrast textures with a 4-7 px period stayed at chance (val accuracy
0.15-0.28, training accuracy rising: memorised); a 8-12 px period (still visible after
the stem's 4x downsampling) in dark-on-light colours reached val accuracy 0.98
(InceptionV3: 0.99, with PyTorch's default initialisation, see models). The texture is local to the object, so hiding the
object's superpixels (LIME, SHAP, deletion) removes the evidence. Forty random
high-contrast lines cross the background: without them the striped object held
55 % of an edge detector's mass (area 19 %), so the edge control localised the cue as well
as LIME; with them, 28 % (measured on 40 images at 96 px). All twin
images are split train/val/test by ``preprocess``; a real folder is all test.
"""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field

from xaibench.atomic import write_json
from xaibench.data.images import channel_stats, cues_from_files, load_resized, save_split, stratified_split
from xaibench.schema import Strict

log = logging.getLogger(__name__)

URL = None            # no archive: the real source is a local folder (datasets.imagenet.real.folder)
ARCHIVE_NAME = None
SHA256 = None
ARCHIVES = ()
SHAPES = ("disc", "square", "triangle", "cross", "ring")
TEXTURES = ("horizontal", "vertical", "diagonal", "dots", "checks")
CLASSES = TEXTURES
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
MASKS = "masks"      # ground-truth masks folder beside the class folders
SWAPPED = "swapped"  # the twin's scenes with the next class's texture (cue_flip_rate)
PERIOD_PX = (10.0, 14.0)  # texture period range at 96 px (scaled with the image side)
BACKGROUND_LINES = 40     # random high-contrast lines behind the object (the edge control)


class SyntheticParams(Strict):
    """``datasets.imagenet.synthetic``: images per class and their size."""

    n_per_class: int = Field(ge=4)
    image_size: int = Field(ge=64)


def _shape_mask(shape: str, side: int, rng) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side].astype(float)
    r = side * rng.uniform(0.22, 0.34)
    cy, cx = side * rng.uniform(0.38, 0.62, 2)
    if shape == "disc":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
    if shape == "ring":
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        return (d <= r) & (d >= 0.55 * r)
    if shape == "square":
        return (np.abs(yy - cy) <= 0.85 * r) & (np.abs(xx - cx) <= 0.85 * r)
    if shape == "cross":
        return ((np.abs(yy - cy) <= 0.3 * r) & (np.abs(xx - cx) <= r)) | ((np.abs(xx - cx) <= 0.3 * r) &
                                                                          (np.abs(yy - cy) <= r))
    return (yy >= cy - r) & (yy <= cy + r) & (np.abs(xx - cx) <= (yy - cy + r) / 2)  # triangle


def swapped_label(label: int) -> int:
    """The class whose texture the swapped rendering of a ``label`` image wears."""
    return (label + 1) % len(CLASSES)


def draw_image(rng: np.random.Generator, label: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [side, side, 3] of class ``label`` and its object mask [side, side] (bool).

    The object's texture is the class, so the object mask is the cue mask. The label
    draws nothing from ``rng``: the same state with another label renders the same scene
    with that class's texture."""
    shape, texture = SHAPES[int(rng.integers(len(SHAPES)))], TEXTURES[label]
    image = Image.fromarray((np.clip(rng.uniform(0.2, 0.8, 3) + rng.normal(0, 0.05, (side, side, 3)), 0, 1)
                             * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 6)):  # clutter shared by all classes
        x, y, r = rng.uniform(0, side, 2).tolist() + [rng.uniform(2, side / 12)]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.uniform(0, 255, 3)))
    for _ in range(BACKGROUND_LINES):  # edges everywhere: an edge detector must not find the object
        x0, y0, x1, y1 = rng.uniform(0, side, 4).tolist()
        draw.line([x0, y0, x1, y1], fill=tuple(int(v) for v in rng.choice([0, 255], 3)),
                  width=max(1, round(side / 48)))
    pixels = np.asarray(image).astype(float) / 255
    mask = _shape_mask(shape, side, rng)
    yy, xx = np.mgrid[0:side, 0:side]
    period = rng.uniform(PERIOD_PX[0], PERIOD_PX[1]) * side / 96
    wave_x, wave_y = np.sin(2 * np.pi * xx / period), np.sin(2 * np.pi * yy / period)
    pattern = {"horizontal": wave_y > 0, "vertical": wave_x > 0,
               "diagonal": np.sin(2 * np.pi * (xx + yy) / (period * np.sqrt(2))) > 0,
               "dots": (wave_x > 0.5) & (wave_y > 0.5), "checks": (wave_x > 0) ^ (wave_y > 0)}[texture]
    dark, light = rng.uniform(0.0, 0.3, 3), rng.uniform(0.7, 1.0, 3)
    a, b = (dark, light) if rng.random() < 0.5 else (light, dark)
    fill = np.where(pattern[..., None], a, b)
    pixels = np.where(mask[..., None], fill, pixels)
    return (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8), mask


def generate_synthetic(root: str | Path, params: SyntheticParams, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        folder, mask_folder = Path(root) / name, Path(root) / MASKS / name
        folder.mkdir(parents=True, exist_ok=True)
        mask_folder.mkdir(parents=True, exist_ok=True)
        swapped_folder = Path(root) / SWAPPED / name
        swapped_folder.mkdir(parents=True, exist_ok=True)
        for k in range(params.n_per_class):
            scene = copy.deepcopy(rng)
            image, mask = draw_image(rng, label, params.image_size)
            Image.fromarray(image).save(folder / f"{name}_{k:04d}.jpg", quality=92)
            swapped = draw_image(scene, swapped_label(label), params.image_size)[0]  # same scene, next texture
            Image.fromarray(swapped).save(swapped_folder / f"{name}_{k:04d}.jpg", quality=92)
            Image.fromarray(mask.astype(np.uint8) * 255).save(mask_folder / f"{name}_{k:04d}.png")
    (Path(root) / CLASSES[0] / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")  # skipped, counted
    return {"images": params.n_per_class * len(CLASSES), "classes": len(CLASSES)}


def copy_folder(folder: str | Path, dest: str | Path) -> dict:
    """Copy every JPEG/PNG under ``folder`` (keeping class sub-folders and ``masks/``)
    into ``dest``; the count excludes the masks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"datasets.imagenet.real.folder: {folder} is not a folder of JPEG/PNG images")
    files = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise FileNotFoundError(f"datasets.imagenet.real.folder: no .jpg/.jpeg/.png files under {folder}")
    for path in files:
        target = Path(dest) / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return {"images": sum(path.relative_to(folder).parts[0] not in (MASKS, SWAPPED) for path in files)}


def list_images(raw_dir: str | Path) -> list[tuple[Path, int, str]]:
    """[(path, label, image id)] of every JPEG/PNG under ``raw_dir`` but the masks and swapped folders;
    label = the index of the parent folder's name in CLASSES, else -1; id = relative path."""
    raw_dir = Path(raw_dir)
    items = []
    for path in sorted(raw_dir.rglob("*")):
        relative = path.relative_to(raw_dir)
        if path.suffix.lower() in IMAGE_SUFFIXES and relative.parts[0] not in (MASKS, SWAPPED):
            items.append((path, CLASSES.index(path.parent.name) if path.parent.name in CLASSES else -1, str(relative)))
    return items


def prepare(raw_dir, out_dir, dataset_params, seed: int) -> dict:
    """Decode (skipping undecodable files), resize, split: the twin into train/val/test, a
    real folder all into test."""
    cfg = dataset_params.preprocess
    items = list_images(raw_dir)
    images, labels, ids, masks, skipped = load_resized(
        items, cfg.image_size, lambda image_id: Path(raw_dir) / MASKS / Path(image_id).with_suffix(".png"))
    if dataset_params.source == "real":
        index = {"test": np.arange(len(ids))}
    else:
        index = stratified_split(labels, cfg.val_fraction, cfg.test_fraction or 0.2, seed)
    for name, rows in index.items():
        save_split(Path(out_dir) / f"{name}.npz", images=images[rows], labels=labels[rows], ids=ids[rows],
                   masks=masks[rows])
    write_json(Path(out_dir) / "stats.json", channel_stats(images[index.get("train", index["test"])]))
    return {"files_listed": len(items), "images_kept": int(len(ids)), "images_skipped": len(skipped),
            "skipped_ids": skipped, **{f"n_{name}": int(len(rows)) for name, rows in index.items()},
            "has_masks": bool(masks.any())}


def prepare_cues(raw_dir, prepared_dir, out_dir, dataset_params) -> dict:
    """Cue masks (the textured object: its texture is the class) and the same scenes with
    the next class's texture, for the test split; a real folder has cues only where it
    brings ``masks/``."""
    raw_dir = Path(raw_dir)
    return cues_from_files(out_dir, prepared_dir, lambda i: raw_dir / MASKS / Path(i).with_suffix(".png"),
                           lambda i: raw_dir / SWAPPED / i, swapped_label,
                           note="cue: the textured object (its texture is the class)")
