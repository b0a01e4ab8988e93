"""Kaggle Cats and Dogs (Microsoft's PetImages archive) and its synthetic twin.

Real source: the ``kagglecatsanddogs_5340.zip`` archive (25,000 JPEGs in
``PetImages/Cat`` and ``PetImages/Dog``; about 1,700 are zero-byte, truncated or not
JPEG at all, and each folder also holds a ``Thumbs.db``). Microsoft publishes no
digest, so the project pins none; the first download stops and prints the digest for
the user to pin (see ``fetch_archive``).

Synthetic twin: the same ``PetImages/{Cat,Dog}/<n>.jpg`` layout, generated offline from
a seed. Both classes share one palette and background generator; they differ in two
fine stripe patterns of graded strength (see :func:`draw_animal`): on the ears
(horizontal for "cats", vertical for "dogs", faint on some images, half hidden by a leaf
on others) and on a collar (coarser, showing the wrong class on some images). Every image has a ground-truth foreground mask in
``masks/{Cat,Dog}/<n>.png``, its cue mask (both cues' visible pixels) in ``cue_masks/``,
each cue's own mask in ``cue_parts/<cue>/``, the same scene without that cue in
``removed/<cue>/`` (for the cues' measured importance) and with the other class's cues in
``swapped/`` (for ``cue_flip_rate``).
A few deliberately corrupt files (zero-byte, truncated, not a JPEG) make the loader's
skip path run on every build.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import Field, model_validator

from xaibench.data.images import cues_from_files
from xaibench.data.images import prepare as prepare_images
from xaibench.schema import Strict

log = logging.getLogger(__name__)

URL = "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
ARCHIVE_NAME = "kagglecatsanddogs_5340.zip"
SHA256 = None  # not published by Microsoft: pin yours in params (datasets.catsdogs.real.sha256)
CLASSES = ("Cat", "Dog")


class SyntheticParams(Strict):
    """``datasets.catsdogs.synthetic``: size of the procedural twin and how much evidence its
    two cues carry (:func:`draw_animal`)."""

    n_per_class: int = Field(ge=4)
    n_corrupt: int = Field(ge=0)
    min_size: int = Field(ge=32)
    max_size: int = Field(ge=32)
    ear_contrast: tuple[float, float] = (0.1, 1.0)     # the ear stripes' contrast, drawn per image
    collar_contrast: tuple[float, float] = (0.3, 0.8)  # the collar stripes' contrast, drawn per image
    collar_agreement: float = Field(0.75, ge=0.5, le=1)  # share of images whose collar shows their own class
    occlusion: float = Field(0.3, ge=0, le=1)          # share of images with a leaf over one ear

    @model_validator(mode="after")
    def _sizes_ordered(self):
        if self.max_size < self.min_size:
            raise ValueError(f"max_size ({self.max_size}) must be >= min_size ({self.min_size})")
        for key in ("ear_contrast", "collar_contrast"):
            low, high = getattr(self, key)
            if not 0 <= low <= high <= 1:
                raise ValueError(f"{key} {[low, high]}: give [low, high] with 0 <= low <= high <= 1")
        return self


# ---------------------------------------------------------------- synthetic twin

_PALETTE = np.array(
    [[0.85, 0.55, 0.25], [0.45, 0.30, 0.20], [0.90, 0.88, 0.80], [0.25, 0.25, 0.28],
     [0.70, 0.60, 0.45], [0.95, 0.75, 0.45]]
)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Textured background: two random colours mixed by random low-frequency waves."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    field = np.zeros((h, w))
    for _ in range(3):
        fy, fx = rng.uniform(1, 6, size=2)
        field += np.sin(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 2 * np.pi))
    field = (field - field.min()) / (np.ptp(field) + 1e-9)
    a, b = rng.uniform(0.15, 0.85, size=(2, 3))
    image = a * field[..., None] + b * (1 - field[..., None])
    for _ in range(rng.integers(3, 7)):  # clutter: distractor blobs of palette colours
        blob = _ellipse(yy * max(h, w), xx * max(h, w), rng.uniform(0, h), rng.uniform(0, w),
                        rng.uniform(4, 14), rng.uniform(4, 14))
        image[blob] = _PALETTE[rng.integers(len(_PALETTE))]
    return image + rng.normal(0, 0.08, size=(h, w, 3))


def _ellipse(yy, xx, cy, cx, ry, rx):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _triangle(yy, xx, p0, p1, p2):
    """Pixels inside the triangle p0 p1 p2 (points as (y, x))."""
    def side(a, b):
        return (xx - b[1]) * (a[0] - b[0]) - (a[1] - b[1]) * (yy - b[0])

    d0, d1, d2 = side(p0, p1), side(p1, p2), side(p2, p0)
    has_neg = (d0 < 0) | (d1 < 0) | (d2 < 0)
    has_pos = (d0 > 0) | (d1 > 0) | (d2 > 0)
    return ~(has_neg & has_pos)


EAR_STRIPES_PER_SIDE = 12.8  # stripe period = side / 12.8: 10 px at 128 px, 5 px at 64
CUES = ("ears", "collar")     # the twin's two cues, the first the stronger (see draw_animal)


COLLAR_STRIPES_PER_SIDE = 9.0  # coarser: 7 px at 64 px (a blur of sigma 5 erases both)


def _stripes(yy, xx, h, w, vertical: int, phase: float, per_side: float) -> np.ndarray:
    """Boolean stripe pattern, period side / ``per_side``: horizontal (``vertical`` 0) or
    vertical (1); both survive the horizontal flip of training augmentation unchanged."""
    across = xx / w if vertical else yy / h
    return np.sin(2 * np.pi * across * per_side + phase) > 0


@dataclass(frozen=True)
class AnimalScene:
    """Everything :func:`draw_scene` draws from the generator for one image: the background,
    the head's geometry and masks, colours, noise, the cues' contrasts and phases, the leaf.
    :meth:`render` paints it with one class's cues; the label and the cues left out draw
    nothing, so one scene renders the image, its swapped-cue twin and its cue-removed
    copies without drawing them again."""

    background: np.ndarray
    yy: np.ndarray
    xx: np.ndarray
    h: int
    w: int
    ears: np.ndarray          # visible ear pixels (after the leaf and the collar)
    collar: np.ndarray        # visible collar pixels
    mask: np.ndarray          # the foreground, leaf excluded
    ears_drawn: np.ndarray    # the ears and collar as painted, before the leaf hides them
    collar_drawn: np.ndarray
    head_or_parts: np.ndarray
    base: np.ndarray
    band: np.ndarray
    fur: np.ndarray
    ear_phase: float
    collar_phase: float
    ear_contrast: float
    collar_contrast: float
    collar_agrees: bool
    leaf: np.ndarray | None
    leaf_colour: np.ndarray
    ear_noise: np.ndarray
    collar_noise: np.ndarray

    def render(self, label: int, without: tuple[str, ...] = ()) -> np.ndarray:
        """The image [h, w, 3] in [0, 1] with class ``label``'s cues (``without``: cues drawn
        plain, their part in its colour and no stripes)."""
        def striped(colour, pattern, contrast, noise):
            dark = 0.12 if colour.mean() > 0.5 else 0.85          # contrast with the part's colour, whatever it is
            shade = colour + contrast * (dark - colour)
            return np.where(pattern[..., None], shade, colour) + noise

        yy, xx, h, w = self.yy, self.xx, self.h, self.w
        collar_shows = label if self.collar_agrees else 1 - label
        ear_pattern = (_stripes(yy, xx, h, w, label, self.ear_phase, EAR_STRIPES_PER_SIDE) if "ears" not in without
                       else np.zeros((h, w), bool))
        collar_pattern = (_stripes(yy, xx, h, w, collar_shows, self.collar_phase, COLLAR_STRIPES_PER_SIDE)
                          if "collar" not in without else np.zeros((h, w), bool))
        fur = np.where(self.ears_drawn[..., None], striped(self.base, ear_pattern, self.ear_contrast, self.ear_noise),
                       self.fur)
        fur = np.where(self.collar_drawn[..., None],
                       striped(self.band, collar_pattern, self.collar_contrast, self.collar_noise), fur)
        image = np.where(self.head_or_parts[..., None], fur, self.background)
        if self.leaf is not None:      # a leaf over one ear: its pixels no longer carry the class
            image = np.where(self.leaf[..., None], self.leaf_colour + self.ear_noise, image)
        return np.clip(image, 0, 1)


def draw_scene(rng: np.random.Generator, h: int, w: int, params: "SyntheticParams | None" = None) -> AnimalScene:
    """Draw one synthetic scene (see :func:`draw_animal`, which renders it)."""
    params = params or SyntheticParams(n_per_class=4, n_corrupt=0, min_size=h, max_size=h)
    background = _background(rng, h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    r = rng.uniform(0.22, 0.3) * min(h, w)
    cy = rng.uniform(0.42, 0.6) * h
    cx = rng.uniform(0.3, 0.7) * w
    head = _ellipse(yy, xx, cy, cx, r, r * rng.uniform(0.95, 1.2))
    ears = np.zeros_like(head)
    pointed = rng.random() < 0.5
    if pointed:
        for sign in (-1, 1):
            base_x = cx + sign * 0.55 * r
            ears |= _triangle(yy, xx, (cy - 0.5 * r, base_x - 0.45 * r), (cy - 0.5 * r, base_x + 0.45 * r),
                              (cy - 1.6 * r, base_x + sign * 0.15 * r))
    else:  # drooping ears
        for sign in (-1, 1):
            ears |= _ellipse(yy, xx, cy + 0.1 * r, cx + sign * 1.05 * r, 0.75 * r, 0.35 * r)
    ears &= ~head
    collar = _ellipse(yy, xx, cy + 0.95 * r, cx, 0.28 * r, 0.9 * r)
    kind = rng.integers(3)  # fur texture, shared by both classes: plain, stripes or spots
    texture = np.zeros((h, w))
    if kind == 1:
        angle = rng.uniform(0, np.pi)
        wave = np.sin((np.cos(angle) * yy + np.sin(angle) * xx) * 2 * np.pi / (0.35 * r))
        texture = (wave > 0.3).astype(float)
    elif kind == 2:
        for _ in range(rng.integers(5, 9)):
            texture += _ellipse(yy, xx, cy + rng.uniform(-0.8, 0.8) * r, cx + rng.uniform(-0.8, 0.8) * r,
                                0.18 * r, 0.18 * r)
        texture = np.minimum(texture, 1.0)
    mask = head | ears | collar
    base, accent = _PALETTE[rng.choice(len(_PALETTE), size=2, replace=False)]
    band = _PALETTE[rng.integers(len(_PALETTE))] * rng.uniform(0.8, 1.0)
    fur = base * (1 - texture[..., None]) + accent * 0.6 * texture[..., None]
    fur = fur + rng.normal(0, 0.08, size=(h, w, 3))
    for eye_x in (cx - 0.35 * r, cx + 0.35 * r):
        fur[_ellipse(yy, xx, cy - 0.1 * r, eye_x, 0.1 * r, 0.1 * r)] = 0.05
    ear_phase, collar_phase = rng.uniform(0, 2 * np.pi, size=2)
    ear_contrast = rng.uniform(*params.ear_contrast)
    collar_contrast = rng.uniform(*params.collar_contrast)
    collar_agrees = rng.random() < params.collar_agreement
    occluded = rng.random() < params.occlusion
    leaf_side, leaf_size = rng.choice([-1, 1]), rng.uniform(0.45, 0.7)
    leaf_colour = _PALETTE[rng.integers(len(_PALETTE))]
    ear_noise = rng.normal(0, 0.04, size=(h, w, 3))
    collar_noise = rng.normal(0, 0.04, size=(h, w, 3))
    ears_drawn, collar_drawn, head_or_parts = ears.copy(), collar.copy(), mask.copy()
    leaf = None
    if occluded:
        ear_y, ear_x = (cy - 1.0 * r, cx + leaf_side * 0.6 * r) if pointed else (cy + 0.1 * r, cx + leaf_side * 1.05 * r)
        leaf = _ellipse(yy, xx, ear_y, ear_x, leaf_size * r, leaf_size * r * 0.8)
        ears &= ~leaf
        collar &= ~leaf
        mask &= ~leaf
    ears &= ~collar
    return AnimalScene(background, yy, xx, h, w, ears, collar, mask, ears_drawn, collar_drawn, head_or_parts, base,
                       band, fur, ear_phase, collar_phase, ear_contrast, collar_contrast, collar_agrees, leaf,
                       leaf_colour, ear_noise, collar_noise)


def draw_animal(rng: np.random.Generator, label: int, h: int, w: int, params: "SyntheticParams | None" = None,
                without: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One synthetic image [h, w, 3] in [0, 1], its foreground mask, its cue mask (the
    pixels that carry the label: both cues, where visible) and each cue's own mask
    (``{"ears": .., "collar": ..}``), all [h, w] bool: :func:`draw_scene`, rendered.

    Round head with two ears and a collar; the ears' shape (pointed or drooping), the
    colours and the fur texture (plain, stripes, spots) are drawn alike for both classes.
    The class is carried by two fine stripe patterns (period 1/12.8 of the side), between
    a part's colour and a dark (light on dark) one, so both classes have the same mean
    colour and a Gaussian blur of sigma 5 (RISE's insertion canvas) erases them:

    * the ears (the strong cue): horizontal stripes for label 0 ("cat"), vertical for 1
      ("dog"), at a contrast drawn per image from ``params.ear_contrast`` (graded: some
      images show it faintly), and with probability ``params.occlusion`` a plain leaf
      (an ellipse of a palette colour) hides part of the ears; the cue mask keeps only
      the visible ear pixels;
    * the collar (the weak cue): coarser stripes, horizontal or vertical as the ears', at
      ``params.collar_contrast``; it shows the image's own class with probability
      ``params.collar_agreement`` and the other class's otherwise, so a model can lean on
      it less than on the ears (how much less is measured, not assumed:
      :func:`xaibench.studies.reliability.cue_importance`).

    ``without``: cues drawn plain (their part in its colour, no stripes): the same scene
    with that cue removed, the importance measurement's input. The label and ``without``
    draw nothing from ``rng``: the same ``rng`` state renders the same scene with the other
    class's cues (``cue_flip_rate``) or without a cue (:meth:`AnimalScene.render`).
    """
    scene = draw_scene(rng, h, w, params)
    return (scene.render(label, without), scene.mask, scene.ears | scene.collar,
            {"ears": scene.ears, "collar": scene.collar})


def _to_jpeg_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((image * 255).round().astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def generate_synthetic(root: str | Path, params: SyntheticParams, seed: int) -> dict:
    """Write the twin into ``root``; return counts written: ``PetImages/`` (the images),
    ``masks/`` (foreground), ``cue_masks/`` (both cues: the pixels that carry the label),
    ``cue_parts/<cue>/`` (each cue's own pixels), ``removed/<cue>/`` (the scene with that cue
    drawn plain) and ``swapped/`` (each scene rendered with the other class's cues), all
    keyed ``<class>/<n>``.

    Deterministic: the same (params, seed) give the same bytes.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for cls in CLASSES:
        (root / "PetImages" / cls).mkdir(parents=True, exist_ok=True)
        for folder in ("masks", "cue_masks", "swapped", *(f"{part}/{cue}" for part in ("cue_parts", "removed")
                                                          for cue in CUES)):
            (root / folder / cls).mkdir(parents=True, exist_ok=True)
        (root / "PetImages" / cls / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 not an image")
    for label, cls in enumerate(CLASSES):
        for index in range(params.n_per_class):
            h, w = rng.integers(params.min_size, params.max_size + 1, size=2)
            scene = draw_scene(rng, int(h), int(w), params)   # drawn once, rendered four times
            image, mask, cue, parts = (scene.render(label), scene.mask, scene.ears | scene.collar,
                                       {"ears": scene.ears, "collar": scene.collar})
            renderings = {"swapped": scene.render(1 - label),
                          **{f"removed/{c}": scene.render(label, without=(c,)) for c in CUES}}
            (root / "PetImages" / cls / f"{index}.jpg").write_bytes(_to_jpeg_bytes(image))
            for folder, rendering in renderings.items():
                (root / folder / cls / f"{index}.jpg").write_bytes(_to_jpeg_bytes(rendering))
            masks = {"masks": mask, "cue_masks": cue, **{f"cue_parts/{c}": parts[c] for c in CUES}}
            for folder, array in masks.items():
                Image.fromarray(array.astype(np.uint8) * 255).save(root / folder / cls / f"{index}.png")
    kinds = ("zero_byte", "truncated", "not_jpeg")
    for k in range(params.n_corrupt):
        cls = CLASSES[k % 2]
        path = root / "PetImages" / cls / f"{params.n_per_class + k}.jpg"
        kind = kinds[k % 3]
        if kind == "zero_byte":
            path.write_bytes(b"")
        elif kind == "truncated":
            good = _to_jpeg_bytes(draw_animal(rng, k % 2, 96, 96, params)[0])
            path.write_bytes(good[: len(good) // 3])
        else:
            path.write_bytes(b"<html>this is not a JPEG</html>\n")
    return {"images": 2 * params.n_per_class, "corrupt_files": params.n_corrupt}


# ---------------------------------------------------------------- loader (both sources)

def list_images(root: str | Path, max_per_class: int | None = None) -> list[tuple[Path, int, str]]:
    """(path, label, image_id) for every ``*.jpg`` under ``root/PetImages/{Cat,Dog}``.

    Sorted by numeric file name so subsets are deterministic; label 0 = Cat, 1 = Dog.
    """
    root = Path(root)
    pet = root / "PetImages"
    if not pet.is_dir():
        raise FileNotFoundError(f"{pet} not found: run the download stage first (dvc repro download@catsdogs)")
    items = []
    for label, cls in enumerate(CLASSES):
        files = sorted((pet / cls).glob("*.jpg"), key=lambda p: (len(p.stem), p.stem))
        if max_per_class is not None:
            files = files[:max_per_class]
        items.extend((path, label, f"{cls}/{path.stem}") for path in files)
    return items


def mask_path(root: str | Path, image_id: str) -> Path:
    """Where the ground-truth mask of ``image_id`` lives (exists for the twin only)."""
    return Path(root) / "masks" / f"{image_id}.png"


def prepare(raw_dir, out_dir, dataset_params, seed: int) -> dict:
    """Decode (skipping corrupt files), resize and split into train/val/test."""
    cfg = dataset_params.preprocess
    if cfg.test_fraction is None:
        raise ValueError("datasets.catsdogs.preprocess.test_fraction must be set: the archive has no test split")
    max_per_class = dataset_params.real.max_images_per_class if dataset_params.source == "real" else None
    items = list_images(raw_dir, max_per_class)
    return prepare_images(items, out_dir, cfg.image_size, cfg.val_fraction, cfg.test_fraction, seed,
                          mask_lookup=lambda image_id: mask_path(raw_dir, image_id))


def prepare_cues(raw_dir, prepared_dir, out_dir, dataset_params) -> dict:
    """Cue masks (both cues, and each apart), swapped renderings and the renderings
    without each cue of the test split (twin only)."""
    raw_dir = Path(raw_dir)
    return cues_from_files(out_dir, prepared_dir, lambda i: raw_dir / "cue_masks" / f"{i}.png",
                           lambda i: raw_dir / "swapped" / f"{i}.jpg", lambda y: 1 - y,
                           note="cues: the ear stripes (strong) and the collar stripes (weak); their orientation "
                                "is the class",
                           parts={c: (lambda i, c=c: raw_dir / "cue_parts" / c / f"{i}.png",
                                      lambda i, c=c: raw_dir / "removed" / c / f"{i}.jpg") for c in CUES})
