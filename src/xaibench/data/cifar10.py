"""CIFAR-10 (Krizhevsky 2009), python version, and its synthetic twin.

Real source: ``cifar-10-python.tar.gz`` from the Toronto site (170,498,071 bytes,
SHA-256 below), extracting to ``cifar-10-batches-py/`` with five training batches
``data_batch_1..5``, ``test_batch`` and ``batches.meta``: Python pickles (``bytes`` keys)
holding ``data`` (uint8 [N, 3072], channel-major rows of 32x32 images), ``labels``,
``filenames`` and ``batch_label``.

Synthetic twin: the same files in the same pickle format, written offline from a seed:
ten procedural object classes (disc, square, triangle, cross, ring, horizontal bar,
vertical bar, diamond, two dots, L shape) of random colour, size and position on a
textured background. Ground-truth object masks sit beside the batches in ``masks.npz``
(one uint8 [N, 32, 32] array per batch name): the shape is the class, so they are the
cue masks too; ``swapped_test_batch`` (same pickle format) draws each test scene with the
next class's shape (``cue_flip_rate``).
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
from pydantic import Field

from xaibench.atomic import write_json
from xaibench.data.images import channel_stats, save_cues, save_split, stratified_split
from xaibench.schema import Strict

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SHAPES = ("disc", "square", "triangle", "cross", "ring", "hbar", "vbar", "diamond", "two_dots", "l_shape")
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
SIDE = 32
SWAPPED_BATCH = "swapped_test_batch"


class SyntheticParams(Strict):
    """``datasets.cifar10.synthetic``: size of the procedural twin."""

    n_train_per_class: int = Field(ge=5)
    n_test_per_class: int = Field(ge=1)


def shape_mask(shape: str, cy: float, cx: float, r: float, side: int = SIDE) -> np.ndarray:
    """Boolean [side, side] mask of one of :data:`SHAPES` centred at (cy, cx), radius r."""
    yy, xx = np.mgrid[0:side, 0:side].astype(float)
    dy, dx = yy - cy, xx - cx
    t = max(r / 3.0, 1.2)  # stroke thickness
    if shape == "disc":
        return dy**2 + dx**2 <= r**2
    if shape == "square":
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if shape == "triangle":
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    if shape == "cross":
        return ((np.abs(dy) <= t / 2) & (np.abs(dx) <= r)) | ((np.abs(dx) <= t / 2) & (np.abs(dy) <= r))
    if shape == "ring":
        d = np.sqrt(dy**2 + dx**2)
        return (d <= r) & (d >= r - t)
    if shape == "hbar":
        return (np.abs(dy) <= t / 2 + 0.5) & (np.abs(dx) <= r)
    if shape == "vbar":
        return (np.abs(dx) <= t / 2 + 0.5) & (np.abs(dy) <= r)
    if shape == "diamond":
        return np.abs(dy) + np.abs(dx) <= r
    if shape == "two_dots":
        rr = r * 0.45
        return ((dy**2 + (dx - r * 0.55) ** 2) <= rr**2) | ((dy**2 + (dx + r * 0.55) ** 2) <= rr**2)
    if shape == "l_shape":
        return ((np.abs(dx + r * 0.6) <= t / 2) & (np.abs(dy) <= r)) | ((np.abs(dy - r * 0.8) <= t / 2) & (dx >= -r) & (dx <= r))
    raise ValueError(f"unknown shape {shape!r}")


def draw_object(rng: np.random.Generator, label: int) -> tuple[np.ndarray, np.ndarray]:
    """One twin image uint8 [32, 32, 3] and its mask bool [32, 32] for class ``label``."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    fy, fx = rng.uniform(0.5, 3, size=2)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 2 * np.pi))
    low, high = rng.uniform(0.1, 0.9, size=(2, 3))
    image = low * wave[..., None] + high * (1 - wave[..., None]) + rng.normal(0, 0.05, (SIDE, SIDE, 3))
    r = rng.uniform(7, 11)
    mask = shape_mask(SHAPES[label], rng.uniform(12, 20), rng.uniform(12, 20), r)
    colour = rng.uniform(0, 1, 3)
    while np.abs(colour - image[mask].mean(0)).max() < 0.35:  # keep the object visible
        colour = rng.uniform(0, 1, 3)
    image[mask] = colour + rng.normal(0, 0.03, (int(mask.sum()), 3))
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), mask


def _write_batch(path: Path, name: str, images: np.ndarray, labels: list[int], ids: list[str]) -> None:
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # [N, 3072], channel-major as CIFAR
    batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
             b"filenames": [i.encode() for i in ids]}
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=2)


def generate_synthetic(root: str | Path, params: SyntheticParams, seed: int) -> dict:
    """Write the twin's ``cifar-10-batches-py/`` (pickle batches + masks.npz) into ``root``."""
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    masks = {}

    swapped = []

    def make(n_per_class: int, prefix: str):
        labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
        labels = labels[rng.permutation(len(labels))]
        drawn = []
        for label in labels:
            scene = copy.deepcopy(rng)
            drawn.append(draw_object(rng, int(label)))
            if prefix == "test":  # the same scene with the next class's shape (cue_flip_rate)
                swapped.append(draw_object(scene, swapped_label(int(label)))[0])
        ids = [f"{prefix}_{i:05d}_{SHAPES[label]}.png" for i, label in enumerate(labels)]
        return np.stack([d[0] for d in drawn]), np.stack([d[1] for d in drawn]), labels.tolist(), ids

    images, object_masks, labels, ids = make(params.n_train_per_class, "train")
    for name, part in zip(TRAIN_BATCHES, np.array_split(np.arange(len(labels)), len(TRAIN_BATCHES))):
        _write_batch(folder / name, f"training batch {name[-1]} of 5", images[part], [labels[i] for i in part],
                     [ids[i] for i in part])
        masks[name] = object_masks[part].astype(np.uint8)
    images, object_masks, labels, ids = make(params.n_test_per_class, "test")
    _write_batch(folder / "test_batch", "testing batch 1 of 1", images, labels, ids)
    masks["test_batch"] = object_masks.astype(np.uint8)
    _write_batch(folder / SWAPPED_BATCH, "test batch, next class's shape", np.stack(swapped),
                 [swapped_label(y) for y in labels], ids)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES], b"num_cases_per_batch": len(images),
                     b"num_vis": 3072}, handle, protocol=2)
    np.savez(folder / "masks.npz", **masks)
    return {"images": len(CLASSES) * (params.n_train_per_class + params.n_test_per_class)}


def swapped_label(label: int) -> int:
    """The class whose shape the swapped rendering of a ``label`` test image has."""
    return (label + 1) % len(CLASSES)


def read_batch(path: str | Path) -> dict:
    """One CIFAR pickle batch -> images uint8 [N, 32, 32, 3], labels int64 [N], ids [N]."""
    with open(path, "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    ids = [f.decode() if isinstance(f, bytes) else str(f) for f in batch[b"filenames"]]
    return {"images": np.ascontiguousarray(data), "labels": np.asarray(batch[b"labels"], np.int64),
            "ids": np.asarray(ids)}


def load_splits(root: str | Path) -> dict[str, dict]:
    """{'train', 'test'} -> {'images', 'labels', 'ids', 'masks'} from ``root/cifar-10-batches-py``
    (masks all zero where the source has none)."""
    folder = Path(root) / FOLDER
    if not (folder / "test_batch").exists():
        raise FileNotFoundError(f"{folder}/test_batch not found: run the download stage first (dvc repro download@cifar10)")
    mask_file = folder / "masks.npz"
    masks = dict(np.load(mask_file)) if mask_file.exists() else {}
    splits = {}
    for split, names in (("train", TRAIN_BATCHES), ("test", ("test_batch",))):
        parts = [read_batch(folder / name) for name in names]
        merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        merged["masks"] = np.concatenate([masks.get(name, np.zeros((len(p["labels"]), SIDE, SIDE), np.uint8))
                                          for name, p in zip(names, parts)])
        splits[split] = merged
    return splits


def prepare(raw_dir, out_dir, dataset_params, seed: int) -> dict:
    """Official test batch = test split; ``val_fraction`` of the training batches = val."""
    cfg = dataset_params.preprocess
    if cfg.image_size != SIDE:
        raise ValueError(f"datasets.cifar10.preprocess.image_size must be {SIDE} (CIFAR-10 is not resized)")
    if cfg.test_fraction is not None:
        raise ValueError("datasets.cifar10.preprocess.test_fraction must be null: CIFAR-10 has an official test batch")
    splits = load_splits(raw_dir)
    train = splits["train"]
    if dataset_params.source == "real" and dataset_params.real.max_images_per_class:
        keep = np.concatenate([np.flatnonzero(train["labels"] == c)[: dataset_params.real.max_images_per_class]
                               for c in range(len(CLASSES))])
        train = {k: v[np.sort(keep)] for k, v in train.items()}
    index = stratified_split(train["labels"], cfg.val_fraction, 0.0, seed)
    out = {"train": {k: v[index["train"]] for k, v in train.items()},
           "val": {k: v[index["val"]] for k, v in train.items()}, "test": splits["test"]}
    for name, arrays in out.items():
        save_split(Path(out_dir) / f"{name}.npz", **arrays)
    write_json(Path(out_dir) / "stats.json", channel_stats(out["train"]["images"]))
    return {"images_kept": sum(len(a["labels"]) for a in out.values()), "images_skipped": 0,
            **{f"n_{name}": int(len(a["labels"])) for name, a in out.items()},
            "has_masks": bool(splits["test"]["masks"].any())}


def prepare_cues(raw_dir, prepared_dir, out_dir, dataset_params) -> dict:
    """Cue masks (the object: its shape is the class, so the object mask is the cue) and
    the twin's ``swapped_test_batch`` (same scenes, next class's shape)."""
    test = load_splits(raw_dir)["test"]
    swapped_file = Path(raw_dir) / FOLDER / SWAPPED_BATCH
    swapped = read_batch(swapped_file) if swapped_file.exists() else None
    return save_cues(out_dir, test["ids"], test["masks"], None if swapped is None else swapped["images"],
                     None if swapped is None else swapped["labels"],
                     note="cue: the object (its shape is the class)")
