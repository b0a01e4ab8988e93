"""CUB-200-2011 birds and its synthetic twin, for the GAD study's binary task.

Real source: ``CUB_200_2011.tgz`` (Caltech data repository), extracting to
``CUB_200_2011/`` with ``images/<class>/<file>.jpg`` and the text files
``images.txt`` (id path), ``classes.txt`` (id name), ``image_class_labels.txt``
(image id, class id), ``train_test_split.txt`` (image id, 1 = train) and
``bounding_boxes.txt`` (image id, x, y, width, height). No digest is published with
the archive; as for cats-vs-dogs, the first download stops and prints the digest to pin.

The study's binary task merges every class whose name contains "Warbler" into class 0
and every "Sparrow" class into class 1; other species are dropped.

Synthetic twin: the same folder and text files, birds that differ only in a small part:
warblers have a thin pointed beak, sparrows a short thick conical one; body, colours,
pose and background are drawn from the same distributions. Part masks (the beak) are in
``CUB_200_2011/part_masks/<class>/<file>.png`` (the cue masks: the beak is the class);
``CUB_200_2011/swapped/<class>/<file>.jpg`` is the same bird with the other class's beak
(warblers and sparrows only); the boxes in ``bounding_boxes.txt`` enclose the bird.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import Field

from xaibench.atomic import write_json
from xaibench.data.images import channel_stats, cues_from_files, load_resized, save_split, stratified_split
from xaibench.schema import Strict

URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
ARCHIVE_NAME = "CUB_200_2011.tgz"
SHA256 = None  # not published: pin yours in params (datasets.cub.real.sha256)
CLASSES = ("Warbler", "Sparrow")
FOLDER = "CUB_200_2011"
TWIN_SPECIES = ("001.Black_footed_Albatross", "113.Baird_Sparrow", "114.Black_throated_Sparrow",
                "158.Bay_breasted_Warbler", "159.Black_and_white_Warbler")


class SyntheticParams(Strict):
    """``datasets.cub.synthetic``: images per twin species and their size."""

    n_per_species: int = Field(ge=4)
    image_size: int = Field(ge=32)
    test_fraction: float = Field(gt=0, lt=1)


def binary_label(class_name: str) -> int | None:
    """0 for a warbler class, 1 for a sparrow class, None for any other species."""
    if "Warbler" in class_name:
        return 0
    if "Sparrow" in class_name:
        return 1
    return None


def draw_bird(rng: np.random.Generator, beak: str, side: int):
    """(image uint8 [side, side, 3], beak mask bool, box (x, y, w, h)) for beak 'thin' | 'thick' | 'hooked'."""
    yy, xx = np.mgrid[0:side, 0:side].astype(float)
    a, b = rng.uniform(0.2, 0.8, (2, 3))
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1, 3) * (yy + xx) / side + rng.uniform(0, 6))
    image = a * wave[..., None] + b * (1 - wave[..., None]) + rng.normal(0, 0.04, (side, side, 3))
    s = side * rng.uniform(0.8, 1.0)
    cy, cx = side * rng.uniform(0.5, 0.6), side * rng.uniform(0.4, 0.55)
    body = ((yy - cy) / (0.16 * s)) ** 2 + ((xx - cx) / (0.26 * s)) ** 2 <= 1
    hy, hx, hr = cy - 0.17 * s, cx + 0.2 * s, 0.1 * s
    head = (yy - hy) ** 2 + (xx - hx) ** 2 <= hr**2
    tail = (xx < cx - 0.2 * s) & (xx > cx - 0.42 * s) & (np.abs(yy - cy + 0.02 * s) < 0.05 * s + 0.3 * (cx - 0.2 * s - xx) * 0.4)
    tip_x = hx + hr
    if beak == "thin":    # warbler: long, thin, pointed
        length, half = 0.22 * s, 0.025 * s
    elif beak == "thick":  # sparrow: short, thick, conical
        length, half = 0.09 * s, 0.08 * s
    else:                  # any other species
        length, half = 0.2 * s, 0.03 * s
    along = xx - tip_x
    beak_mask = (along >= -1) & (along <= length) & (np.abs(yy - hy) <= half * (1 - along / length) + 0.5)
    colour, wing = rng.uniform(0.1, 0.8, (2, 3))
    plumage = np.where(((yy - cy - 0.03 * s) / (0.1 * s)) ** 2 + ((xx - cx + 0.03 * s) / (0.16 * s)) ** 2 <= 1,
                       0, 1)[..., None]
    bird = body | head | tail
    image = np.where(bird[..., None], colour * plumage + wing * (1 - plumage), image)
    image[beak_mask] = np.array([0.9, 0.7, 0.1]) + rng.normal(0, 0.03, 3)
    image[(yy - hy + 0.02 * s) ** 2 + (xx - hx - 0.03 * s) ** 2 <= (0.02 * s + 0.5) ** 2] = 0.02
    full = bird | beak_mask
    ys, xs = np.nonzero(full)
    box = (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), beak_mask, box


def generate_synthetic(root: str | Path, params: SyntheticParams, seed: int) -> dict:
    """Write ``CUB_200_2011/`` (images, text files, part masks) into ``root``."""
    folder = Path(root) / FOLDER
    rng = np.random.default_rng(seed)
    lines = {name: [] for name in ("images", "classes", "image_class_labels", "train_test_split", "bounding_boxes")}
    image_id = 0
    for class_id, species in enumerate(TWIN_SPECIES, start=1):
        lines["classes"].append(f"{class_id} {species}")
        label = binary_label(species)
        beak = {0: "thin", 1: "thick", None: "hooked"}[label]
        (folder / "images" / species).mkdir(parents=True, exist_ok=True)
        (folder / "part_masks" / species).mkdir(parents=True, exist_ok=True)
        n_test = max(1, int(round(params.test_fraction * params.n_per_species)))
        other_beak = {"thin": "thick", "thick": "thin"}.get(beak)
        if other_beak:
            (folder / "swapped" / species).mkdir(parents=True, exist_ok=True)
        for k in range(params.n_per_species):
            image_id += 1
            scene = copy.deepcopy(rng)
            image, mask, box = draw_bird(rng, beak, params.image_size)
            name = f"{species.split('.', 1)[1]}_{k:04d}_{image_id}"
            Image.fromarray(image).save(folder / "images" / species / f"{name}.jpg", quality=92)
            if other_beak:  # the same bird with the other class's beak (the beak draws nothing from rng)
                swapped = draw_bird(scene, other_beak, params.image_size)[0]
                Image.fromarray(swapped).save(folder / "swapped" / species / f"{name}.jpg", quality=92)
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "part_masks" / species / f"{name}.png")
            lines["images"].append(f"{image_id} {species}/{name}.jpg")
            lines["image_class_labels"].append(f"{image_id} {class_id}")
            lines["train_test_split"].append(f"{image_id} {int(k >= n_test)}")
            lines["bounding_boxes"].append(f"{image_id} {box[0]:.1f} {box[1]:.1f} {box[2]:.1f} {box[3]:.1f}")
    for name, rows in lines.items():
        (folder / f"{name}.txt").write_text("\n".join(rows) + "\n")
    return {"images": image_id, "species": len(TWIN_SPECIES)}


def _read_table(path: Path) -> dict[int, list[str]]:
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            key, *values = line.split()
            rows[int(key)] = values
    return rows


def read_metadata(root: str | Path) -> list[dict]:
    """One record per warbler/sparrow image: path, binary label, species, is_train, box."""
    folder = Path(root) / FOLDER
    if not (folder / "images.txt").exists():
        raise FileNotFoundError(f"{folder}/images.txt not found: run the download stage first (dvc repro download@cub)")
    images = _read_table(folder / "images.txt")
    classes = {k: v[0] for k, v in _read_table(folder / "classes.txt").items()}
    labels = _read_table(folder / "image_class_labels.txt")
    split = _read_table(folder / "train_test_split.txt")
    boxes = _read_table(folder / "bounding_boxes.txt")
    records = []
    for image_id, (relative,) in sorted(images.items()):
        species = classes[int(labels[image_id][0])]
        label = binary_label(species)
        if label is None:
            continue
        records.append({"image_id": image_id, "path": folder / "images" / relative, "label": label,
                        "species": species, "is_train": split[image_id][0] == "1",
                        "box": [float(v) for v in boxes[image_id]],
                        "part_mask": folder / "part_masks" / relative.replace(".jpg", ".png")})
    return records


def prepare(raw_dir, out_dir, dataset_params, seed: int) -> dict:
    """Warbler-vs-sparrow splits: official test images = test; ``val_fraction`` of the
    official training images = val. Adds ``boxes`` [N, 4] (x, y, w, h, rescaled)."""
    cfg = dataset_params.preprocess
    if cfg.test_fraction is not None:
        raise ValueError("datasets.cub.preprocess.test_fraction must be null: CUB has an official test split")
    records = read_metadata(raw_dir)
    items = [(r["path"], r["label"], str(r["image_id"])) for r in records]
    by_id = {str(r["image_id"]): r for r in records}
    images, labels, ids, masks, skipped = load_resized(items, cfg.image_size,
                                                       mask_lookup=lambda i: by_id[i]["part_mask"])
    boxes = []
    for image_id in ids:
        record = by_id[str(image_id)]
        with Image.open(record["path"]) as original:
            width, height = original.size
        x, y, w, h = record["box"]
        scale_x, scale_y = cfg.image_size / width, cfg.image_size / height
        boxes.append([x * scale_x, y * scale_y, w * scale_x, h * scale_y])
    boxes = np.asarray(boxes, np.float32)
    is_train = np.array([by_id[str(i)]["is_train"] for i in ids])
    train_index = np.flatnonzero(is_train)
    inner = stratified_split(labels[train_index], cfg.val_fraction, 0.0, seed)
    index = {"train": train_index[inner["train"]], "val": train_index[inner["val"]],
             "test": np.random.default_rng(seed).permutation(np.flatnonzero(~is_train))}
    for name, rows in index.items():
        save_split(Path(out_dir) / f"{name}.npz", images=images[rows], labels=labels[rows], ids=ids[rows],
                   masks=masks[rows], boxes=boxes[rows])
    write_json(Path(out_dir) / "stats.json", channel_stats(images[index["train"]]))
    return {"images_kept": int(len(labels)), "images_skipped": len(skipped), "skipped_ids": skipped,
            **{f"n_{name}": int(len(rows)) for name, rows in index.items()}, "has_masks": bool(masks.any())}


def prepare_cues(raw_dir, prepared_dir, out_dir, dataset_params) -> dict:
    """Cue masks (the beak: the twin's part masks) and the same birds with the other
    class's beak, for the test split. A real CUB archive has part *locations* only
    (``parts/part_locs.txt``), no masks: no cues then."""
    by_id = {str(r["image_id"]): r for r in read_metadata(raw_dir)}

    def swapped(image_id):
        path = by_id[image_id]["path"]
        return path.parents[2] / "swapped" / path.parent.name / path.name

    return cues_from_files(out_dir, prepared_dir, lambda i: by_id[i]["part_mask"], swapped, lambda y: 1 - y,
                           note="cue: the beak (thin = warbler, thick = sparrow)")
