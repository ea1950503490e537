"""What every segmentation dataset here shares: file lists, mask checks, label look-up tables.

A :class:`SegmentationDataset` is a list of (image file, mask file) pairs plus a 256-entry
look-up table (LUT) that maps the raw mask values of the files to the class ids used for
training (``0..C-1`` and 255 = ignore). Task protocols compose a second LUT on top
(:meth:`SegmentationDataset.with_target_lut`), so remapping a mask for a step costs one
indexing operation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..env import show_progress
from ..store import atomic_save_npy, atomic_write_text
from .cache import cache_paths, file_digests, read_cache, write_cache
from .colours import DISPLAY_COLOURS, VOID_COLOUR, WHITE_BACKGROUND_CLASS, WHITE_COLOURS, cie_lab, colour_distance

__all__ = ["VOID_COLOUR", "cie_lab", "colour_distance"]  # re-exported: figures and tests read them here too

IGNORE_INDEX = 255


class DatasetError(ValueError):
    """A dataset file or folder is missing or malformed (the message names it)."""


def identity_lut() -> np.ndarray:
    """A ``(256,)`` uint8 LUT that keeps every value."""
    return np.arange(256, dtype=np.uint8)


def make_lut(mapping: dict[int, int], *, default: int | None = None) -> np.ndarray:
    """A ``(256,)`` int16 LUT from ``{raw value: class id}``.

    Values not in ``mapping`` map to ``default``; with ``default=None`` they map to -1, which
    :meth:`SegmentationDataset.read_mask` reports as an invalid mask value.
    """
    lut = np.full(256, -1 if default is None else default, dtype=np.int16)
    for raw, cls in mapping.items():
        lut[raw] = cls
    return lut


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset's class space (after its own LUT).

    Attributes:
        name: ``voc``, ``camvid`` or ``shapes``.
        class_names: names of class ids ``0..len-1``.
        palette: ``(len, 3)`` uint8 RGB colours for those ids: the dataset's own colour map (its
            mask files); figures use :attr:`display_palette`.
        has_background: True if id 0 is "background / not yet learned".
    """

    name: str
    class_names: tuple[str, ...]
    palette: np.ndarray
    has_background: bool

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def display_palette(self) -> np.ndarray:
        """``(num_classes, 3)`` uint8 RGB colours for figures: background (id 0 when
        ``has_background``) black, the classes :data:`DISPLAY_COLOURS` in id order, so one class
        has one colour in every notebook. :attr:`palette` stays the dataset's own (its files).

        Raises:
            ValueError: more classes than display colours.
        """
        return self._palette(DISPLAY_COLOURS, (0, 0, 0), "display colours")

    @property
    def white_palette(self) -> np.ndarray:
        """``(num_classes, 3)`` uint8 RGB colours for marks on a white background (scatter points,
        lines): background dark grey, the classes :data:`WHITE_COLOURS` in id order. Masks drawn on
        black use :attr:`display_palette`.

        Raises:
            ValueError: more classes than colours.
        """
        return self._palette(WHITE_COLOURS, WHITE_BACKGROUND_CLASS, "colours for white backgrounds")

    def _palette(self, colours: np.ndarray, background, what: str) -> np.ndarray:
        """``background`` for id 0 (when the dataset has one), then ``colours`` in id order."""
        n = self.num_classes - int(self.has_background)
        if n > len(colours):
            raise ValueError(f"{self.name}: {n} classes but only {len(colours)} {what}")
        head = [np.array([background], np.uint8)] if self.has_background else []
        return np.concatenate(head + [colours[:n]])


class SegmentationDataset(torch.utils.data.Dataset):
    """Image/mask pairs on disk, read as ``tv_tensors`` for ``transforms.v2``.

    Args:
        info: the class space (names, palette).
        ids: image ids, in list order.
        image_paths, mask_paths: one file per id.
        raw_lut: ``(256,)`` int16, raw mask value -> class id, 255 ignore, -1 invalid.
        transforms: callable ``(image, mask) -> (image, mask)``; see :mod:`incseg_lib.data.transforms`.
        target_lut: optional ``(256,)`` uint8 LUT applied after ``raw_lut`` (task remapping).

    ``__getitem__`` returns ``(image, mask)``: without transforms, a ``tv_tensors.Image``
    ``(3, H, W)`` uint8 and a ``tv_tensors.Mask`` ``(H, W)`` uint8; the transforms decide the rest.

    Raises (when reading an item):
        DatasetError: a file is missing, a mask holds a value outside the dataset's ids and 255,
            or image and mask sizes differ. The message names the file.
    """

    def __init__(
        self,
        info: DatasetInfo,
        ids: Sequence[str],
        image_paths: Sequence[Path],
        mask_paths: Sequence[Path],
        raw_lut: np.ndarray,
        transforms: Callable | None = None,
        target_lut: np.ndarray | None = None,
    ):
        if not (len(ids) == len(image_paths) == len(mask_paths)):
            raise ValueError("ids, image_paths and mask_paths must have the same length")
        self.info = info
        self.ids = list(ids)
        self.image_paths = [Path(p) for p in image_paths]
        self.mask_paths = [Path(p) for p in mask_paths]
        self.raw_lut = raw_lut
        self.transforms = transforms
        self.target_lut = target_lut
        self.verified = False  # set by a passing check(): reads then skip the per-file checks

    # ------------------------------------------------------------------ views
    def _view(self, **changes) -> SegmentationDataset:
        """A shallow copy with ``changes``; other files or another label mapping are not verified."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        if {"image_paths", "mask_paths", "raw_lut"} & set(changes) and "verified" not in changes:
            changes = {**changes, "verified": False}
        new.__dict__.update(changes)
        return new

    def subset(self, indices: Sequence[int]) -> SegmentationDataset:
        """A view holding only ``indices`` (in that order)."""
        idx = [int(i) for i in indices]
        return self._view(
            ids=[self.ids[i] for i in idx],
            image_paths=[self.image_paths[i] for i in idx],
            mask_paths=[self.mask_paths[i] for i in idx],
            verified=self.verified,
        )

    def with_transforms(self, transforms: Callable | None) -> SegmentationDataset:
        return self._view(transforms=transforms)

    def with_target_lut(self, lut: np.ndarray | None) -> SegmentationDataset:
        """A view whose masks are further remapped by ``lut`` (``(256,)`` uint8), e.g. a task step."""
        return self._view(target_lut=lut)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self.ids)

    def read_mask(self, i: int) -> np.ndarray:
        """Mask ``i`` as class ids, ``(H, W)`` uint8 (after ``raw_lut``, before ``target_lut``).

        Checked on every read (exists, single channel, valid values) until :meth:`check` has passed
        for this dataset (then cached: ``verified``), after which a read only decodes and maps.
        """
        path = self.mask_paths[i]
        if not self.verified and not path.is_file():
            raise DatasetError(f"mask file {path} does not exist (dataset {self.info.name}, id {self.ids[i]})")
        try:
            with Image.open(path) as im:
                mode = im.mode
                raw = np.asarray(im)
        except OSError as e:
            raise DatasetError(
                f"mask file {path} cannot be decoded ({e}); dataset {self.info.name}, "
                f"id {self.ids[i]}: replace or remove it"
            ) from None
        if self.verified:
            return self.raw_lut[raw].astype(np.uint8)
        raw = _mask_values(raw, mode, path)
        if raw.ndim != 2:
            raise DatasetError(
                f"mask {path} has shape {raw.shape}; expected a single-channel (H, W) image of class "
                "ids (an 8-bit palette or greyscale PNG), not a colour picture"
            )
        mapped = self.raw_lut[raw]
        if mapped.min() < 0:
            bad = sorted(set(np.unique(raw[mapped < 0]).tolist()))
            valid = [v for v in range(256) if self.raw_lut[v] >= 0]
            raise DatasetError(
                f"mask {path} holds value(s) {bad}, outside the {self.info.name} class ids "
                f"{_ranges(valid)}; fix or remove this file"
            )
        return mapped.astype(np.uint8)

    def read_image(self, i: int) -> torch.Tensor:
        """Image ``i`` as ``(3, H, W)`` uint8 RGB (16-bit and float greyscale scaled, not clipped:
        :func:`to_rgb8`)."""
        # PIL, not torchvision.io: torchvision's decoders (about 10% faster here, same pixels) are
        # deprecated since torchvision 0.29 in favour of TorchCodec.
        path = self.image_paths[i]
        try:
            with Image.open(path) as im:
                rgb = to_rgb8(im)
        except FileNotFoundError:
            raise DatasetError(
                f"image file {path} does not exist (dataset {self.info.name}, id {self.ids[i]})"
            ) from None
        except OSError as e:  # truncated or not an image: name the file
            raise DatasetError(
                f"image file {path} cannot be decoded ({e}); dataset {self.info.name}, "
                f"id {self.ids[i]}: replace or remove it (`incseg data check` lists every such file)"
            ) from None
        return torch.from_numpy(rgb).permute(2, 0, 1)

    def image_size(self, i: int) -> tuple[int, int]:
        """``(H, W)`` of image ``i`` from its header (no decoding)."""
        with Image.open(self.image_paths[i]) as im:
            return im.height, im.width

    def __getitem__(self, i: int):
        from torchvision import tv_tensors

        image = self.read_image(i)
        mask = self.read_mask(i)
        if not self.verified and tuple(image.shape[-2:]) != mask.shape:
            raise DatasetError(
                f"image {self.image_paths[i]} is {tuple(image.shape[-2:])} (H, W) but its mask "
                f"{self.mask_paths[i]} is {mask.shape}; they must match"
            )
        if self.target_lut is not None:
            mask = self.target_lut[mask]
        image = tv_tensors.Image(image)
        mask = tv_tensors.Mask(torch.from_numpy(mask))
        if self.transforms is not None:
            return self.transforms(image, mask)
        return image, mask

    # ------------------------------------------------------------------ class presence
    def content_fingerprint(self) -> str:
        """Hash of what the files are, not where: ids, a digest of every image's and mask's bytes,
        label mapping.

        The same data at another path, in a moved checkout or on a student's machine gives the
        same value (checkpoint keys, on-disk caches, the data check and evaluation reuse use it); any edit of a
        file, a relabelled mask of the same byte size included, changes it. Each file's digest
        (BLAKE2b) is cached by path, size and modification time (:func:`file_digests`), so a
        re-run reads no file again. Missing files count as ``missing`` (the data check names them).
        """
        digests = file_digests([p for pair in zip(self.image_paths, self.mask_paths) for p in pair])
        h = hashlib.sha1()
        h.update(self.info.name.encode())
        h.update(self.raw_lut.tobytes())
        for i, im, m in zip(self.ids, self.image_paths, self.mask_paths):
            h.update(f"{i}|{im.suffix}|{digests[str(im)]}|{digests[str(m)]}\n".encode())
        return h.hexdigest()[:16]

    def check(self, cache_dir: Path | None = None, progress: bool = True, max_listed: int | None = 10) -> int:
        """Check every file once: it exists, decodes, the mask's values are valid and its size is the image's.

        A passing check is remembered under ``cache_dir`` (keyed by :meth:`content_fingerprint`), so
        the second call is a look-up. Returns the number of images checked (0 when cached).

        Raises:
            DatasetError: listing up to ``max_listed`` bad files (None: all of them) with what is
                wrong with each and how to fix it, and how many there are in all.
        """
        stamps = cache_paths(cache_dir, f"checked-{self.info.name}-{self.content_fingerprint()}")
        if any(p.is_file() for p in stamps):
            self.verified = True
            return 0
        from tqdm.auto import tqdm

        problems = []
        for i in tqdm(range(len(self)), desc=f"checking {self.info.name} files", disable=not show_progress(progress)):
            try:
                if not self.image_paths[i].is_file():
                    raise DatasetError(f"image file {self.image_paths[i]} does not exist (id {self.ids[i]})")
                mask = self.read_mask(i)
                with Image.open(self.image_paths[i]) as im:
                    im.load()
                    size = (im.height, im.width)
                if size != mask.shape:
                    raise DatasetError(f"image {self.image_paths[i]} is {size} (H, W) but its mask is {mask.shape}")
            except DatasetError as e:
                problems.append(str(e))
            except OSError as e:
                problems.append(f"image file {self.image_paths[i]} cannot be decoded ({e}): replace or remove it")
            except Exception as e:  # noqa: BLE001  one odd file never hides the others
                problems.append(f"id {self.ids[i]} ({self.mask_paths[i]}): {type(e).__name__}: {e}")
        if problems:
            shown = problems if max_listed is None else problems[:max_listed]
            listed = "\n  ".join(shown)
            more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
            raise DatasetError(
                f"{len(problems)} of {len(self)} {self.info.name} images are unusable:\n  {listed}{more}"
            )
        write_cache(stamps, lambda p: atomic_write_text(p, f"{len(self)} images checked\n"), "data check")
        self.verified = True
        return len(self)

    def class_presence(self, cache_dir: Path | None = None, progress: bool = False) -> np.ndarray:
        """Which classes each mask contains: ``(N, num_classes)`` bool, 255 not counted.

        Every mask is read (and checked) once; the result is cached as ``.npy`` under
        ``cache_dir`` (or a writable cache folder, :func:`cache_paths`) keyed by :meth:`content_fingerprint`,
        so task splits are look-ups afterwards. A corrupt cache is named, moved aside and rebuilt.
        """
        shape = (len(self), self.info.num_classes)
        caches = cache_paths(cache_dir, f"presence-{self.info.name}-{self.content_fingerprint()}.npy")

        def load(p):
            arr = np.load(p, allow_pickle=False)
            if arr.shape != shape or arr.dtype != bool:
                raise ValueError(f"holds a {arr.dtype} array of shape {arr.shape}, not {shape} booleans")
            return arr

        arr = read_cache(caches, load, "class-presence")
        if arr is not None:
            return arr
        from tqdm.auto import tqdm

        out = np.zeros((len(self), self.info.num_classes), dtype=bool)
        for i in tqdm(range(len(self)), desc=f"indexing {self.info.name} masks", disable=not show_progress(progress)):
            counts = np.bincount(self.read_mask(i).ravel(), minlength=256)
            out[i] = counts[: self.info.num_classes] > 0
        write_cache(caches, lambda p: atomic_save_npy(p, out), "class-presence")
        return out


def _mask_values(raw: np.ndarray, mode: str, path: Path) -> np.ndarray:
    """A decoded mask as uint8 class values, or a :class:`DatasetError` saying what the file is instead.

    8-bit palette (``P``) and greyscale (``L``) masks pass as they are; a 16- or 32-bit greyscale mask
    whose values all fit in 0..255 is read losslessly; a 1-bit (black-and-white) file holds no class ids.
    """
    if mode == "1" or raw.dtype == bool:
        raise DatasetError(
            f"mask {path} is a 1-bit black-and-white image; a mask holds one class id per pixel: "
            "save it as an 8-bit palette or greyscale PNG with the dataset's ids"
        )
    if raw.dtype != np.uint8 and raw.ndim == 2:
        if raw.size and (raw.min() < 0 or raw.max() > 255):
            raise DatasetError(
                f"mask {path} is a {mode} image with values up to {int(raw.max())}; class ids "
                "and 255 (ignore) must fit in 8 bits: save it as an 8-bit palette or greyscale PNG"
            )
        raw = raw.astype(np.uint8)
    return raw


def class_id_lut(info: DatasetInfo) -> np.ndarray:
    """The LUT of masks already stored in ``info``'s class ids (each id to itself, 255 kept)."""
    return make_lut({**{c: c for c in range(info.num_classes)}, IGNORE_INDEX: IGNORE_INDEX})


def read_id_list(path: Path, fetch_hint: str) -> list[str]:
    """Read an id list (one per line; SegNet's ``/a/b/NAME.png /a/b/NAMEannot.png`` lines too)."""
    if not path.is_file():
        raise DatasetError(f"list file {path} does not exist; {fetch_hint}")
    ids, seen, repeated = [], set(), []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if line:
            name = Path(line.split()[0]).stem
            if name in seen:
                repeated.append(f"{name} (line {n})")
            seen.add(name)
            ids.append(name)
    if repeated:  # trained twice, and one image counted twice in every evaluation: never silently
        shown = ", ".join(repeated[:5]) + (f" and {len(repeated) - 5} more" if len(repeated) > 5 else "")
        raise DatasetError(
            f"list file {path} names {len(repeated)} image(s) more than once: {shown}; remove the repeated lines"
        )
    return ids


def _ranges(values: list[int]) -> str:
    """``[0,1,2,3,255]`` -> ``'0..3 and 255'``."""
    parts, start, prev = [], None, None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            parts.append(f"{start}..{prev}" if prev > start else str(start))
            start = prev = v
    if start is not None:
        parts.append(f"{start}..{prev}" if prev > start else str(start))
    return " and ".join(parts)


def json_dumps(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str)


def to_rgb8(im: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of a PIL image, one writable copy.

    PIL's ``convert("RGB")`` clips a 16-bit greyscale image (modes ``I;16*``, ``I``) at 255, so a
    photo saved in 16 bits reads as nearly all white; such images, and 32-bit float ones (``F``),
    are scaled to 0..255 by their type's full range (65535 for 16 bits; 1.0 for floats in [0, 1],
    else the image's own maximum) instead.
    """
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "F":
            top = 1.0 if a.size and a.max() <= 1.0 else max(float(a.max()) if a.size else 1.0, 1.0)
        else:
            top = 65535.0 if im.mode.startswith("I;16") or (a.size and a.max() > 255) else 255.0
        grey = np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.array(im.convert("RGB"))
