"""The embedded default dataset: procedurally drawn, VOC-shaped scenes (background + 20 classes).

A teaching stand-in, **not a benchmark**: it lets every notebook run end to end in minutes on a
laptop CPU (and in CI) with no download. Each of the 20 object classes has its own shape,
colour and stripe texture; every image holds one to three objects on a textured background,
objects may overlap, and each object has a 1-pixel void (255) border like VOC's. Because
several classes share an image, old classes do appear in later steps' images, so background
shift is real here too.

The files are written once, in the VOC layout (``VOCdevkit/VOC2012/{JPEGImages,
SegmentationClass, ImageSets/Segmentation}``), deterministically from a seed; the same
parameters always give the same bytes of mask and (up to JPEG) image.
"""

from __future__ import annotations

import colorsys
import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..store import FULL_ERRNOS, DiskFull, _free_bytes, checkpoint_lock
from .common import DatasetError, DatasetInfo
from .registry import DatasetSpec, register_dataset
from .voc import VOC_PALETTE, VOC_TASKS, voc_dataset

SHAPES_VERSION = 2
SHAPES_CLASSES = (
    "background",
    "disc",
    "square",
    "triangle",
    "diamond",
    "cross",
    "ring",
    "star",
    "hexagon",
    "ellipse",
    "crescent",
    "dark-disc",
    "dark-square",
    "dark-triangle",
    "dark-diamond",
    "dark-cross",
    "dark-ring",
    "dark-star",
    "dark-hexagon",
    "dark-ellipse",
    "dark-crescent",
)
SHAPES_INFO = DatasetInfo("shapes", SHAPES_CLASSES, VOC_PALETTE, has_background=True)
#: Relative brightness swing of each object's stripe texture: small enough that no two classes
#: share a colour (:func:`_class_colour`).
STRIPE_AMPLITUDE = 0.12


def _class_colour(k: int) -> np.ndarray:
    """Distinct RGB colour (float 0..1) of class ``k`` in 1..20.

    Two families of ten hues 36 degrees apart: bright (classes 1-10, value 0.95) and dark
    (11-20, value 0.5, hues half-way between the bright ones), so that with the stripes'
    +-12% brightness no two classes share a colour (hues 18 degrees apart, or bright and dark
    overlapping in brightness, left even Joint at 17 IoU on dark-star).
    """
    dark = k > 10
    hue = ((k - 1) % 10) / 10 + (0.05 if dark else 0.0)
    return np.array(colorsys.hsv_to_rgb(hue, 0.95 if dark else 0.8, 0.5 if dark else 0.95))


def _shape_mask(kind: int, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of shape ``kind`` (0..9) in rotated coordinates ``u, v`` with radius ``r``."""
    d = np.hypot(u, v)
    if kind == 0:
        return d < r
    if kind == 1:
        return np.maximum(abs(u), abs(v)) < 0.8 * r
    if kind == 2:
        return (v < 0.7 * r) & (v > -r) & (abs(u) < (v + r) * 0.6)
    if kind == 3:
        return abs(u) + abs(v) < r
    if kind == 4:
        return ((abs(u) < 0.3 * r) & (abs(v) < r)) | ((abs(v) < 0.3 * r) & (abs(u) < r))
    if kind == 5:
        return (d < r) & (d > 0.45 * r)
    if kind == 6:
        return d < r * (0.7 + 0.3 * np.cos(5 * np.arctan2(v, u)))
    if kind == 7:
        return np.maximum(abs(u) * 0.866 + abs(v) * 0.5, abs(v)) < 0.85 * r
    if kind == 8:
        return (u / r) ** 2 + (v / (0.5 * r)) ** 2 < 1
    return (d < r) & (np.hypot(u - 0.45 * r, v) > 0.75 * r)


def draw_scene(rng: np.random.Generator, size: int, max_objects: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Draw one scene.

    Returns:
        image ``(size, size, 3)`` uint8 RGB and mask ``(size, size)`` uint8 with ids 0..20 and 255.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # Background: low-frequency colour gradient plus fine noise.
    c0, c1 = rng.uniform(0.2, 0.8, 3), rng.uniform(0.2, 0.8, 3)
    t = (np.sin(xx / size * rng.uniform(1, 4) + rng.uniform(0, 6)) + np.cos(yy / size * rng.uniform(1, 4))) / 4 + 0.5
    img = c0 * t[..., None] + c1 * (1 - t[..., None])
    img += rng.normal(0, 0.06, img.shape)
    mask = np.zeros((size, size), np.uint8)
    void = np.zeros((size, size), bool)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        k = int(rng.integers(1, 21))
        r = rng.uniform(0.16, 0.32) * size
        cy, cx = rng.uniform(r * 0.6, size - r * 0.6, 2)
        a = rng.uniform(0, 2 * np.pi)
        u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
        v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
        obj = _shape_mask((k - 1) % 10, u, v, r)
        if obj.sum() < 12:
            continue
        stripes = 1 + STRIPE_AMPLITUDE * np.sin((u * np.cos(k) + v * np.sin(k)) * (0.6 + 0.05 * k))
        colour = _class_colour(k)[None, None, :] * stripes[..., None]
        img = np.where(obj[..., None], colour + rng.normal(0, 0.03, img.shape), img)
        mask[obj] = k
        void &= ~obj
        void |= obj & ~_erode(obj)
    mask[void] = 255
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), mask


def _erode(m: np.ndarray) -> np.ndarray:
    out = m.copy()
    out[1:, :] &= m[:-1, :]
    out[:-1, :] &= m[1:, :]
    out[:, 1:] &= m[:, :-1]
    out[:, :-1] &= m[:, 1:]
    return out


def _open(root, split: str, incremental: bool, transforms):
    """The shapes' ``split`` (generated into ``root`` on first use), in VOC's layout and ids."""
    ds = voc_dataset(ensure_shapes(root), split, transforms)
    ds.info = SHAPES_INFO
    return ds


def ensure_shapes(root: Path, *, n_train: int = 400, n_val: int = 100, size: int = 80, seed: int = 0) -> Path:
    """Generate the dataset under ``root`` if it is not there yet (seconds); return ``root``.

    Made under a file lock (``.<root name>.lock`` beside it) and written to a temporary name that
    is renamed when complete: processes that start together (two notebooks of a suite, the ranks
    of a ``torchrun``) make it once, the others wait and reuse it, and none deletes a dataset
    another is reading (before the lock, a late rank replaced the folder the first was checking).

    Raises:
        DatasetError: ``root`` holds files that are not an incseg shapes dataset.
    """

    root = Path(root).expanduser()
    params = {"version": SHAPES_VERSION, "n_train": n_train, "n_val": n_val, "size": size, "seed": seed}
    marker = root / "shapes.json"

    def current() -> bool:
        return marker.is_file() and json.loads(marker.read_text()) == params

    if current():
        return root
    if root.is_dir() and any(root.iterdir()) and not marker.is_file():
        raise DatasetError(
            f"{root} exists and is not an incseg shapes dataset (no shapes.json); "
            "choose an empty or new data_root for 'shapes'"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    with checkpoint_lock(root.with_name(f".{root.name}")):
        if current():  # another process made it while this one waited
            return root
        _write_shapes(root, params)
    return root


def _write_shapes(root: Path, params: dict) -> None:
    """Draw every image and mask into a temporary folder, then replace ``root`` with it (the temporary
    folder is removed when anything fails; a full disk names the folder)."""

    tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _draw_into(tmp, params)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            raise DiskFull(root.parent, "the shapes dataset", 4_000_000, _free_bytes(root.parent)) from None
        raise
    if root.exists():  # an older version of the dataset (the lock keeps every reader of this one out)
        shutil.rmtree(root)
    os.replace(tmp, root)


def _draw_into(tmp: Path, params: dict) -> None:
    voc = tmp / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(VOC_PALETTE)] = VOC_PALETTE
    palette[255] = (224, 224, 192)
    for split, n, offset in (("train", params["n_train"], 0), ("val", params["n_val"], 1_000_000)):
        ids = []
        for i in range(n):
            rng = np.random.default_rng([params["seed"], offset + i])
            img, mask = draw_scene(rng, params["size"])
            name = f"{split}_{i:05d}"
            Image.fromarray(img).save(voc / "JPEGImages" / f"{name}.jpg", quality=95)
            m = Image.fromarray(mask)  # mode L; putpalette makes it P
            m.putpalette(palette.ravel().tolist())
            m.save(voc / "SegmentationClass" / f"{name}.png")
            ids.append(name)
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (tmp / "shapes.json").write_text(json.dumps(params))
    (tmp / "README.txt").write_text(
        "incseg embedded 'shapes' dataset: procedurally drawn, VOC layout, a teaching stand-in, "
        "not a benchmark. Delete this folder to regenerate it.\n"
    )


SPEC = register_dataset(
    DatasetSpec(
        name="shapes",
        label="embedded shapes",
        info=SHAPES_INFO,
        tasks=VOC_TASKS,  # 20 shape classes in VOC's places: VOC's protocols apply as they are
        open=_open,
        eval_split="val",
        one_step_task="15-5",
        profile_values={"cpu": dict(crop_size=64, epochs=10)},
        source="drawn procedurally by this module (SHAPES_VERSION), generated on first use",
    )
)
