"""Decode, resize and split an image-classification dataset (both sources alike).

The prepared form of a dataset is one ``.npz`` per split holding
``images: uint8 [N, S, S, 3]``, ``labels: int64 [N]``, ``ids: str [N]`` and
``masks: uint8 [N, S, S]`` (ground-truth foreground, all zero where none exists), plus
``stats.json`` with the per-channel mean/std of the training split (for normalisation).

Beside it, ``data/cues/<dataset>/test.npz`` holds what the reliability stage checks
explanations against: ``ids`` (the test split's, same order), ``cue_masks:
uint8 [N, S, S]`` (the pixels that carry the label: the twin knows them) and, where the
twin can render it, ``swapped_images: uint8 [N, S, S, 3]`` with ``swapped_labels`` (the
same scene drawn with another class's cue). ``cues.json`` says which exist. Kept apart
from the splits so that training never depends on them.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from xaibench.atomic import atomic_path, write_json

log = logging.getLogger(__name__)


def pillow_suffixes() -> frozenset[str]:
    """Every file suffix Pillow can open (``.jpg``, ``.png``, ``.webp``, ``.tif``, ``.bmp``,
    ``.gif``, ...): the extensions of its registered formats that have a reader."""
    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def to_8bit(image: Image.Image) -> Image.Image:
    """``image`` with 8 bits per channel. Pillow's ``convert("RGB")`` clips the integer modes
    of 16-bit files (``I;16``: microscopy, depth maps) at 255, so nearly every pixel
    decodes as white; here 16-bit values v map to round(v / 257) (0..65535 -> 0..255), a
    32-bit integer image whose values lie outside 0..65535 and a float image are rescaled
    from their own minimum and maximum (a float image already in [0, 1] by 255)."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if image.mode == "F" and 0 <= low and high <= 1:
            scaled = values * 255.0
        elif image.mode != "F" and 0 <= low and high <= 65535:
            scaled = values / 257.0
        else:
            scaled = (values - low) / ((high - low) or 1.0) * 255.0
        return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    return image


def decode_rgb(path: str | Path) -> Image.Image | None:
    """Fully decode ``path`` as an 8-bit RGB image (the first frame of an animation, 16-bit
    images scaled by :func:`to_8bit`); None if it is empty, truncated, not an image, or over
    Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS`` x 2, about 179 MP: such
    a file is skipped and counted like any undecodable one, never the end of the stage)."""
    return decode_or_reason(path)[0]


def decode_or_reason(path: str | Path) -> tuple[Image.Image | None, str]:
    """(:func:`decode_rgb`'s image, "") or (None, why it failed)."""
    try:
        with Image.open(path) as image:
            image.seek(0)  # the first frame of a GIF / multi-page TIFF
            image.load()   # forces the whole decode: truncated JPEGs fail here
            return to_8bit(image).convert("RGB"), ""
    except Image.DecompressionBombError as error:
        return None, f"over Pillow's decompression-bomb limit ({error})"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        return None, f"{type(error).__name__}: {error}"


def load_mask(path: str | Path | None, image_size: int) -> np.ndarray:
    """A mask PNG resized (nearest) to ``image_size`` as uint8 0/1; zeros when ``path`` is
    None or missing."""
    if path is None or not Path(path).exists():
        return np.zeros((image_size, image_size), np.uint8)
    with Image.open(path) as mask:
        return (np.asarray(mask.convert("L").resize((image_size, image_size), Image.NEAREST)) > 127).astype(np.uint8)


def resized(items, image_size: int):
    """Decode and resize the items one at a time, with a progress bar: yields (row, label,
    image_id, uint8 [S, S, 3]) per decodable item; an undecodable one is logged and
    yields None in place of the image, so the caller counts it."""
    for row, (path, label, image_id) in enumerate(tqdm(items, desc="decode+resize", unit="img", leave=False,
                                                       disable=None)):
        image, reason = decode_or_reason(path)
        if image is None:
            log.warning("skipped undecodable image %s (%s)", image_id, reason)
            yield row, label, image_id, None
        else:
            yield row, label, image_id, np.asarray(image.resize((image_size, image_size), Image.BILINEAR),
                                                   dtype=np.uint8)


def load_resized(items, image_size: int, mask_lookup=None):
    """Decode and resize every item; skip the undecodable ones and count them.

    Args:
        items: [(path, label, image_id)].
        mask_lookup: image_id -> mask path (or None); missing masks become zeros.
    Returns:
        images uint8 [N, S, S, 3], labels int64 [N], ids [N], masks uint8 [N, S, S],
        skipped: list of the skipped image ids.
    """
    images, labels, ids, masks, skipped = [], [], [], [], []
    for _, label, image_id, image in resized(items, image_size):
        if image is None:
            skipped.append(image_id)
            continue
        images.append(image)
        labels.append(label)
        ids.append(image_id)
        masks.append(load_mask(mask_lookup(image_id) if mask_lookup else None, image_size))
    if not images:
        raise ValueError("no decodable images found")
    return (np.stack(images), np.asarray(labels, np.int64), np.asarray(ids), np.stack(masks), skipped)


def require_splits(splits: dict, *names: str, hint: str = "") -> None:
    """Refuse splits that leave one of ``names`` (default: train and test) empty: a model
    would train on nothing, or a study explain nothing, and fail stages later with a
    confusing message. ``hint`` says which params to change."""
    sizes = {name: int(len(index)) for name, index in splits.items()}
    empty = [name for name in (names or ("train", "test")) if sizes.get(name, 0) == 0]
    if empty:
        raise ValueError(f"the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty "
                         f"(split sizes: {', '.join(f'{k} {v}' for k, v in sizes.items())}): "
                         + (hint or "add images, or raise preprocess.test_fraction / val_fraction "
                                    "(they are rounded per class)"))


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> dict:
    """Seeded stratified split -> {'train','val','test': index arrays in seeded random order}.

    The order within a split is shuffled too, so "the first N test images" mix classes.
    """
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for cls in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(test_fraction * len(index)))
        n_val = int(round(val_fraction * len(index)))
        parts["test"].append(index[:n_test])
        parts["val"].append(index[n_test:n_test + n_val])
        parts["train"].append(index[n_test + n_val:])
    return {name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()}


def channel_stats(images: np.ndarray) -> dict:
    """Per-channel mean and std of uint8 images [N, H, W, 3], on the [0, 1] scale."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return {"mean": [round(float(v), 6) for v in x.mean(0)], "std": [round(float(v), 6) for v in x.std(0)]}


def save_split(path: str | Path, **arrays) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def load_split(folder: str | Path, split: str, mmap: bool = False) -> dict[str, np.ndarray]:
    """The arrays of ``<folder>/<split>.npz``; ``mmap``: read-only memory maps into the file
    instead (the splits are uncompressed), so that only the rows used are read."""
    path = Path(folder) / f"{split}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the preprocess stage first (dvc repro)")
    if mmap:
        return map_npz(path)
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def map_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Memory-map every array of an uncompressed ``.npz`` (``np.savez``, :func:`write_npz`).

    A stored zip member's bytes lie in the file as they are: past the member's local
    header (30 bytes + name + extra field) begins the ``.npy`` file, whose header gives
    dtype, shape and order; the data follow it."""
    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{path}: {info.filename} is compressed; cannot memory-map it")
            raw.seek(info.header_offset + 26)
            name_length, extra_length = struct.unpack("<HH", raw.read(4))
            raw.seek(info.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(raw)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(raw)
            key = info.filename.removesuffix(".npy")
            if int(np.prod(shape)) == 0:
                arrays[key] = np.empty(shape, dtype)
            else:
                arrays[key] = np.memmap(path, dtype=dtype, mode="r", offset=raw.tell(), shape=shape,
                                        order="F" if fortran else "C")
    return arrays


def read_rows(array: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``array[start:stop]`` copied into memory; for a memory map, its pages are then
    dropped from this process (``madvise(MADV_DONTNEED)``: clean file pages, read again
    from the page cache when touched), so that streaming a split chunk by chunk leaves no
    growing resident set behind."""
    rows = np.array(array[start:stop])
    drop_pages(array)
    return rows


def take_rows(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[index]`` for rows scattered anywhere in the array. On a whole memory map
    (not a view of one) each row is read from the file with ``os.pread``: indexing the map
    would fault in the pages around every row (the kernel's fault-around), so 512 rows
    scattered over a 123 MB split made 96 MB resident (measured), a memory that grows with
    the split instead of the chunk."""
    index = np.asarray(index)
    handle = getattr(array, "_mmap", None)
    if not isinstance(array, np.memmap) or handle is None or array.base is not handle or not array.flags.c_contiguous:
        return np.asarray(array[index])
    row_bytes = array.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    out = np.empty((len(index), *array.shape[1:]), array.dtype)
    view = out.reshape(len(index), -1).view(np.uint8)
    array.flush()
    with open(array.filename, "rb") as file:
        for k, row in enumerate(index):
            view[k] = np.frombuffer(os.pread(file.fileno(), row_bytes, array.offset + int(row) * row_bytes), np.uint8)
    return out


def drop_pages(array: np.ndarray) -> None:
    """Drop the resident pages of the memory map under ``array`` from this process (written
    pages are flushed to the file first); nothing for an ordinary array."""
    base = array
    while base is not None and not hasattr(base, "_mmap"):
        base = getattr(base, "base", None)
    handle = getattr(base, "_mmap", None)
    if handle is not None and hasattr(mmap, "MADV_DONTNEED"):
        handle.flush()
        handle.madvise(mmap.MADV_DONTNEED)


def write_npz(path: str | Path, rows: np.ndarray | None = None, chunk_rows: int = 512, **arrays) -> None:
    """``np.savez``'s format (uncompressed: :func:`map_npz` reads it), written atomically and
    ``chunk_rows`` rows at a time: ``rows`` (an index array) picks the rows of every array,
    so a split of a memory-mapped array is written without holding it in memory."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            index = np.arange(len(array)) if rows is None else np.asarray(rows)
            header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False,
                      "shape": (len(index), *array.shape[1:])}
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, header)
                for start in range(0, len(index), chunk_rows):
                    member.write(take_rows(array, index[start:start + chunk_rows]).tobytes())
                    drop_pages(array)


def decode_into(items, image_size: int, work_dir: str | Path):
    """Decode and resize every item into a memory map in ``work_dir`` (the streaming
    :func:`load_resized`: memory holds one image, not the dataset); skip and count the
    undecodable ones. Returns (images uint8 [N, S, S, 3] memmap, labels, ids, kept rows
    of the memmap, skipped ids)."""
    images = np.lib.format.open_memmap(Path(work_dir) / "images.npy", mode="w+", dtype=np.uint8,
                                       shape=(max(len(items), 1), image_size, image_size, 3))
    kept, labels, ids, skipped = [], [], [], []
    for row, label, image_id, image in resized(items, image_size):
        if image is None:
            skipped.append(image_id)
            continue
        images[row] = image
        if row % 512 == 511:
            drop_pages(images)  # written rows go to the file, not the resident set
        kept.append(row)
        labels.append(label)
        ids.append(image_id)
    if not kept:
        raise ValueError("no decodable images found")
    return images, np.asarray(labels, np.int64), np.asarray(ids), np.asarray(kept), skipped


def channel_stats_streaming(images: np.ndarray, rows: np.ndarray, chunk_rows: int = 512) -> dict:
    """:func:`channel_stats` of ``images[rows]``, chunk by chunk and exact: a histogram of
    the 256 values per channel (no float copy of a chunk), then mean = Σ v·n_v / N and
    std = sqrt(Σ (v - mean)²·n_v / N), on the [0, 1] scale."""
    counts = np.zeros((3, 256), np.int64)
    for start in range(0, len(rows), chunk_rows):
        x = take_rows(images, np.sort(rows[start:start + chunk_rows])).reshape(-1, 3)
        for channel in range(3):
            counts[channel] += np.bincount(x[:, channel], minlength=256)
        drop_pages(images)
    values = np.arange(256) / 255.0
    total = counts.sum(1)
    mean = counts @ values / total
    std = np.sqrt(((values[None, :] - mean[:, None]) ** 2 * counts).sum(1) / total)
    return {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]}


def prepare(items, out_dir: str | Path, image_size: int, val_fraction: float, test_fraction: float,
            seed: int, mask_lookup=None) -> dict:
    """Decode, resize, split and save; return the report (counts, skipped)."""
    images, labels, ids, masks, skipped = load_resized(items, image_size, mask_lookup)
    splits = stratified_split(labels, val_fraction, test_fraction, seed)
    require_splits(splits)
    out_dir = Path(out_dir)
    for name, index in splits.items():
        save_split(out_dir / f"{name}.npz", images=images[index], labels=labels[index], ids=ids[index],
                   masks=masks[index])
    write_json(out_dir / "stats.json", channel_stats(images[splits["train"]]))
    return {
        "files_listed": len(items),
        "images_kept": int(len(labels)),
        "images_skipped": len(skipped),
        "skipped_ids": skipped,
        **{f"n_{name}": int(len(index)) for name, index in splits.items()},
        "has_masks": bool(masks.any()),
    }


def save_cues(out_dir: str | Path, ids: np.ndarray, cue_masks: np.ndarray | None = None,
              swapped_images: np.ndarray | None = None, swapped_labels: np.ndarray | None = None,
              note: str = "", parts: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> dict:
    """Write ``test.npz`` and ``cues.json`` of the cue folder; returns the summary.

    ``cue_masks`` None (or all zero) means the source has no cue masks (a real dataset);
    ``swapped_images`` None means it cannot render the swapped cue; ``parts``: a twin with
    several cues gives each one's (mask [N, H, W], the images without it [N, H, W, 3]),
    stored as ``part_<cue>`` and ``removed_<cue>``."""
    out_dir = Path(out_dir)
    has_cues = cue_masks is not None and bool(np.asarray(cue_masks).any())
    has_swapped = swapped_images is not None and len(swapped_images) == len(ids)
    arrays = {"ids": np.asarray(ids)}
    if has_cues:
        arrays["cue_masks"] = np.asarray(cue_masks, np.uint8)
    if has_swapped:
        arrays["swapped_images"] = np.asarray(swapped_images, np.uint8)
        arrays["swapped_labels"] = np.asarray(swapped_labels, np.int64)
    for cue, (mask, removed) in (parts or {}).items():
        arrays[f"part_{cue}"] = np.asarray(mask, np.uint8)
        arrays[f"removed_{cue}"] = np.asarray(removed, np.uint8)
    save_split(out_dir / "test.npz", **arrays)
    summary = {"n_test": int(len(ids)), "cue_masks": has_cues, "swapped_images": has_swapped,
               "cue_area_share": round(float(np.mean(cue_masks)), 6) if has_cues else None, "note": note}
    if parts:
        summary["cue_parts"] = {cue: round(float(np.mean(mask)), 6) for cue, (mask, _) in parts.items()}
    write_json(out_dir / "cues.json", summary)
    return summary


def load_cues(folder: str | Path) -> dict[str, np.ndarray]:
    """The cue folder's arrays (``ids`` always; ``cue_masks``, ``swapped_*`` where they exist)."""
    return load_split(folder, "test")


def _renderings(paths, size: int) -> np.ndarray | None:
    """[N, size, size, 3] uint8 of the images at ``paths``, or None when one is missing or
    does not decode (a real source has none)."""
    if not all(p is not None and Path(p).exists() for p in paths):
        return None
    decoded = [decode_rgb(p) for p in paths]
    if any(d is None for d in decoded):
        return None
    return np.stack([np.asarray(d.resize((size, size), Image.BILINEAR), np.uint8) for d in decoded])


def cues_from_files(out_dir, prepared_dir, cue_path, swapped_path=None, swapped_label=None, note: str = "",
                    parts: dict | None = None) -> dict:
    """Cue folder for a dataset whose twin writes one file per image: ``cue_path(id)`` (a
    mask PNG or None), ``swapped_path(id)`` (the swapped rendering or None) and
    ``swapped_label(label)``, for every image of the prepared test split; ``parts``: per cue
    of a twin with several, (its mask's path, the path of the image without it) by id."""
    test = load_split(prepared_dir, "test")
    size = test["images"].shape[1]
    ids = [str(i) for i in test["ids"]]
    cue_masks = np.stack([load_mask(cue_path(i), size) for i in ids])
    swapped, labels = None, None
    if swapped_path is not None:
        swapped = _renderings([swapped_path(i) for i in ids], size)
        if swapped is not None:
            labels = np.asarray([swapped_label(int(y)) for y in test["labels"]])
    found = {}
    for cue, (mask_of, removed_of) in (parts or {}).items():
        removed = _renderings([removed_of(i) for i in ids], size)
        if removed is not None:
            found[cue] = (np.stack([load_mask(mask_of(i), size) for i in ids]), removed)
    return save_cues(out_dir, test["ids"], cue_masks, swapped, labels, note, found or None)
