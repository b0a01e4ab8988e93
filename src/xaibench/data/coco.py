"""COCO 2017 detection data and its synthetic twin, read through pycocotools.

Real source: ``val2017.zip`` (images) + ``annotations_trainval2017.zip`` (extracting to
``val2017/`` and ``annotations/instances_val2017.json``). COCO publishes MD5 digests
(val2017 442b8da7…c80, annotations f4bbac64…fa2c), which are checked; the SHA-256 of
the image archive can be pinned in ``datasets.coco.real.sha256``. The real profile
explains a pretrained SSD, so only val2017 is fetched; it becomes the test split, sized
by ``real.max_images_per_class`` (images per category of their largest object).

Synthetic twin: the same layout (``train2017/``, ``val2017/``, ``annotations/
instances_{train,val}2017.json`` with boxes and polygon segmentations): scenes of one
to three objects of three shape categories (disc, square, triangle) in colours drawn
from one distribution for all, on a textured background with faint clutter; one
zero-byte JPEG is listed to exercise the corrupt-image path.

Prepared form (per split ``.npz``): ``images`` uint8 [N, S, S, 3] (resized to a square,
as SSD does), ``ids`` [N], ``labels`` [N] (category of the largest object), ``boxes``
float32 [M, 4] (x1, y1, x2, y2 on the resized grid), ``box_labels`` [M] (COCO category
id), ``box_image`` [M] (row of the image), ``masks`` uint8 [N, S, S] (union of the object
masks). ``categories.json`` maps category id -> name.
"""

from __future__ import annotations

import io
import json
import logging
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field

from xaibench.atomic import write_json
from xaibench.data.images import channel_stats, decode_rgb, save_split
from xaibench.schema import Strict

log = logging.getLogger(__name__)

URL = "http://images.cocodataset.org/zips/val2017.zip"
ARCHIVE_NAME = "val2017.zip"
SHA256 = None  # COCO publishes MD5 only (checked below); pin the SHA-256 in params if you like
ARCHIVES = (
    # (url, archive name, sha256, md5)
    (URL, ARCHIVE_NAME, SHA256, "442b8da7639aecaf257c1dceb8ba8c80"),
    ("http://images.cocodataset.org/annotations/annotations_trainval2017.zip", "annotations_trainval2017.zip",
     None, "f4bbac642086de4f52a3fdda2de5fa2c"),
)
TWIN_CATEGORIES = ((1, "disc"), (2, "square"), (3, "triangle"))
CLASSES = tuple(name for _, name in TWIN_CATEGORIES)
SPLIT_FILES = {"train": "train2017", "test": "val2017"}


class SyntheticParams(Strict):
    """``datasets.coco.synthetic``: scenes per split, their size and object sizes (px)."""

    n_train: int = Field(ge=8)
    n_test: int = Field(ge=4)
    image_size: int = Field(ge=64)
    min_object: int = Field(ge=6)
    max_object: int = Field(ge=8)


def _shape_polygon(category: int, cx: float, cy: float, size: float, rng) -> list[tuple[float, float]]:
    r = size / 2
    if category == 1:  # disc
        angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        return [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles]
    if category == 2:  # square
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    flip = rng.random() < 0.5  # triangle, apex up or down
    apex, base = (cy - r, cy + r) if not flip else (cy + r, cy - r)
    return [(cx, apex), (cx + r, base), (cx - r, base)]


def _box_of(polygon) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def _overlap(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / min(aw * ah, bw * bh)


def draw_scene(rng: np.random.Generator, params: SyntheticParams):
    """(PIL image, [(category, polygon)]) of one twin scene."""
    side = params.image_size
    yy, xx = np.mgrid[0:side, 0:side].astype(float) / side
    a, b = rng.uniform(0.25, 0.75, (2, 3))
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * (xx * rng.uniform(-1, 1) + yy) + rng.uniform(0, 6))
    background = a * wave[..., None] + b * (1 - wave[..., None]) + rng.normal(0, 0.03, (side, side, 3))
    image = Image.fromarray((np.clip(background, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 7)):  # faint clutter: small low-contrast blobs
        x, y, r = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(1.5, 4)
        tone = tuple(int(v) for v in np.clip(background[int(min(y, side - 1)), int(min(x, side - 1))] * 255
                                             + rng.normal(0, 25, 3), 0, 255))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tone)
    objects, boxes = [], []
    for _ in range(rng.integers(1, 4)):
        for _attempt in range(20):
            size = rng.uniform(params.min_object, params.max_object)
            cx, cy = rng.uniform(size / 2 + 1, side - size / 2 - 1, 2)
            category = int(rng.integers(1, len(TWIN_CATEGORIES) + 1))
            polygon = _shape_polygon(category, cx, cy, size, rng)
            box = _box_of(polygon)
            if all(_overlap(box, other) < 0.05 for other in boxes):
                break
        else:
            continue
        colour = tuple(int(v) for v in rng.uniform(0, 255, 3))
        draw.polygon(polygon, fill=colour)
        objects.append((category, polygon))
        boxes.append(box)
    return image, objects


def generate_synthetic(root: str | Path, params: SyntheticParams, seed: int) -> dict:
    """Write ``train2017/``, ``val2017/`` and ``annotations/instances_*.json`` into ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [{"id": i, "name": n, "supercategory": "shape"} for i, n in TWIN_CATEGORIES]
    image_id, annotation_id, counts = 0, 0, {}
    for split, n in (("train2017", params.n_train), ("val2017", params.n_test)):
        (root / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for k in range(n):
            image_id += 1
            name = f"{image_id:012d}.jpg"
            scene, objects = draw_scene(rng, params)
            if split == "train2017" and k == 0:
                (root / split / name).write_bytes(b"")  # a corrupt (empty) file the loader must skip
            else:
                scene.save(root / split / name, quality=92)
            images.append({"id": image_id, "file_name": name, "width": params.image_size,
                           "height": params.image_size})
            for category, polygon in objects:
                annotation_id += 1
                x, y, w, h = _box_of(polygon)
                flat = [round(float(v), 2) for point in polygon for v in point]
                area = 0.5 * abs(sum(polygon[i][0] * polygon[i - 1][1] - polygon[i - 1][0] * polygon[i][1]
                                     for i in range(len(polygon))))
                annotations.append({"id": annotation_id, "image_id": image_id, "category_id": category,
                                    "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                                    "area": round(area, 2), "segmentation": [flat], "iscrowd": 0})
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"info": {"description": "xaibench COCO twin"}, "images": images, "annotations": annotations,
             "categories": categories}))
        counts[split] = {"images": n, "objects": len(annotations)}
    return {"images": image_id, "objects": annotation_id,
            **{f"objects_{s}": c["objects"] for s, c in counts.items()}}


def _quiet_coco(path: Path):
    from pycocotools.coco import COCO  # lazy: pycocotools

    with redirect_stdout(io.StringIO()):  # pycocotools prints timing lines
        return COCO(str(path))


def read_split(raw_dir: Path, folder: str, image_size: int, max_per_category: int | None):
    """Decode, resize and rasterise one COCO split; returns (arrays dict, skipped ids, categories)."""
    coco = _quiet_coco(raw_dir / "annotations" / f"instances_{folder}.json")
    categories = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    per_category: dict[int, int] = {}
    images, ids, labels, masks, boxes, box_labels, box_image, skipped = [], [], [], [], [], [], [], []
    for image_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(image_id)[0]
        annotations = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False))
                       if a["bbox"][2] > 1 and a["bbox"][3] > 1]
        if not annotations:
            continue
        largest = max(annotations, key=lambda a: a["area"])["category_id"]
        if max_per_category is not None and per_category.get(largest, 0) >= max_per_category:
            continue
        image = decode_rgb(raw_dir / folder / info["file_name"])
        if image is None:
            skipped.append(str(image_id))
            continue
        per_category[largest] = per_category.get(largest, 0) + 1
        sx, sy = image_size / info["width"], image_size / info["height"]
        row = len(images)
        images.append(np.asarray(image.resize((image_size, image_size), Image.BILINEAR), np.uint8))
        union = np.zeros((info["height"], info["width"]), bool)
        for a in annotations:
            x, y, w, h = a["bbox"]
            boxes.append([x * sx, y * sy, (x + w) * sx, (y + h) * sy])
            box_labels.append(a["category_id"])
            box_image.append(row)
            union |= coco.annToMask(a).astype(bool)
        masks.append(np.asarray(Image.fromarray(union.astype(np.uint8) * 255).resize(
            (image_size, image_size), Image.NEAREST)) > 127)
        ids.append(str(image_id))
        labels.append(largest)
    for image_id in skipped:
        log.warning("skipped undecodable image %s", image_id)
    if not images:
        raise ValueError(f"no decodable annotated images in {raw_dir / folder}")
    arrays = {"images": np.stack(images), "ids": np.asarray(ids), "labels": np.asarray(labels, np.int64),
              "masks": np.stack(masks).astype(np.uint8), "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
              "box_labels": np.asarray(box_labels, np.int64), "box_image": np.asarray(box_image, np.int64)}
    return arrays, skipped, categories


def take_rows(arrays: dict, rows: np.ndarray) -> dict:
    """The images ``rows`` of a prepared split with their boxes (``box_image`` renumbered)."""
    rows = np.asarray(rows)
    new_row = -np.ones(len(arrays["ids"]), np.int64)
    new_row[rows] = np.arange(len(rows))
    keep = np.flatnonzero(np.isin(arrays["box_image"], rows))
    keep = keep[np.argsort(new_row[arrays["box_image"][keep]], kind="stable")]
    out = {k: arrays[k][rows] for k in ("images", "ids", "labels", "masks")}
    out.update(boxes=arrays["boxes"][keep], box_labels=arrays["box_labels"][keep],
               box_image=new_row[arrays["box_image"][keep]])
    return out


def prepare(raw_dir, out_dir, dataset_params, seed: int) -> dict:
    """train2017 -> train + val (``val_fraction``), val2017 -> test; only test for the real
    archive (val2017 alone)."""
    cfg = dataset_params.preprocess
    if cfg.test_fraction is not None:
        raise ValueError("datasets.coco.preprocess.test_fraction must be null: val2017 is the test split")
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    limit = dataset_params.real.max_images_per_class if dataset_params.source == "real" else None
    report, skipped_all, categories = {}, [], {}
    splits = {}
    for split, folder in SPLIT_FILES.items():
        if not (raw_dir / "annotations" / f"instances_{folder}.json").exists() or not (raw_dir / folder).is_dir():
            continue  # the real annotations archive lists train2017, whose images are not fetched
        arrays, skipped, categories = read_split(raw_dir, folder, cfg.image_size, limit)
        skipped_all += skipped
        if split == "train":
            order = np.random.default_rng(seed).permutation(len(arrays["ids"]))
            n_val = max(1, int(round(cfg.val_fraction * len(order))))
            splits["val"], splits["train"] = take_rows(arrays, order[:n_val]), take_rows(arrays, order[n_val:])
        else:
            splits["test"] = arrays
    if "test" not in splits:
        raise FileNotFoundError(f"{raw_dir}/annotations/instances_val2017.json not found: run the download stage")
    for split, arrays in splits.items():
        save_split(out_dir / f"{split}.npz", **arrays)
        report[f"n_{split}"] = int(len(arrays["ids"]))
        report[f"objects_{split}"] = int(len(arrays["boxes"]))
    write_json(out_dir / "stats.json", channel_stats(splits.get("train", splits["test"])["images"]))
    write_json(out_dir / "categories.json", {str(k): v for k, v in sorted(categories.items())})
    kept = sum(len(a["ids"]) for a in splits.values())
    return {"images_kept": kept, "images_skipped": len(skipped_all), "skipped_ids": skipped_all, **report,
            "has_masks": True}
