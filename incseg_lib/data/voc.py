"""PASCAL VOC 2012 segmentation: class names, palette, loading, download, resized copies.

Layout (the official one): ``ROOT/VOCdevkit/VOC2012/{JPEGImages, SegmentationClass,
ImageSets/Segmentation/{train,val}.txt}``; the optional SBD-augmented masks live in
``VOC2012/SegmentationClassAug`` with the list ``ImageSets/Segmentation/train_aug.txt``
(10,582 images = SBD train+val plus VOC train, minus VOC val, as used by MiB).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..env import show_progress
from ..store import atomic_write_text
from .common import DatasetError, DatasetInfo, SegmentationDataset, make_lut, read_id_list
from .download import download, extract, move_tree
from .registry import DatasetSpec, register_dataset

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


def voc_colormap(n: int = 256) -> np.ndarray:
    """The VOC colour map: ``(n, 3)`` uint8, colour of class id ``i`` at row ``i`` (255 = cream)."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


VOC_PALETTE = voc_colormap()[: len(VOC_CLASSES)]
VOC_INFO = DatasetInfo("voc", VOC_CLASSES, VOC_PALETTE, has_background=True)

_r = lambda a, b: list(range(a, b + 1))  # noqa: E731  inclusive range
#: MiB's VOC protocols (Cermelli et al., CVPR 2020, Sec. 4): ``A-B`` learns ``A`` classes at step 0,
#: then ``B`` per step, in VOC's class order.
VOC_TASKS: dict[str, list[list[int]]] = {
    "offline": [_r(0, 20)],
    "19-1": [_r(0, 19), [20]],
    "15-5": [_r(0, 15), _r(16, 20)],
    "15-1": [_r(0, 15)] + [[c] for c in range(16, 21)],
    "10-1": [_r(0, 10)] + [[c] for c in range(11, 21)],
    "joint": [_r(0, 20)],  # Joint upper bound: every class at once (= offline for VOC)
}

VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
VOC_MD5 = "6cd6e144f989b92b3379bac3b3de84fd"
# SBD masks converted to VOC PNGs (the archive MiB's download script uses); no published
# checksum exists, so the extracted content is checked instead (12,031 masks).
VOC_AUG_URL = "https://www.dropbox.com/s/oeu149j8qtbs1x0/SegmentationClassAug.zip?dl=1"
VOC_AUG_COUNT = 12031

FETCH_HINT = "fetch it with `incseg data voc --root DIR` (or point data_root at an existing VOCdevkit)"


def find_voc2012(root: Path) -> Path:
    """Resolve ``root`` (a folder holding ``VOCdevkit``, ``VOCdevkit`` itself, or ``VOC2012``).

    Raises:
        DatasetError: no VOC2012 folder there; the message names the path and the fetch command.
    """
    root = Path(root).expanduser()
    for cand in (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root):
        if (cand / "JPEGImages").is_dir() and (cand / "ImageSets" / "Segmentation").is_dir():
            return cand
    raise DatasetError(
        f"no PASCAL VOC 2012 folder found at {root} (expected VOCdevkit/VOC2012/"
        f"JPEGImages and ImageSets/Segmentation); {FETCH_HINT}"
    )


def voc_dataset(root: Path, split: str = "train", transforms=None) -> SegmentationDataset:
    """VOC 2012 ``train``, ``val`` or ``train_aug`` as a :class:`SegmentationDataset`.

    Class ids 0..20 (0 background), 255 ignored (the void border).

    Raises:
        DatasetError: missing folder or list (names the path and the fetch command).
    """
    voc = find_voc2012(root)
    if split not in ("train", "val", "train_aug", "trainval"):
        raise ValueError(f"VOC split {split!r} unknown; choose train, val, train_aug or trainval")
    lists = voc / "ImageSets" / "Segmentation"
    mask_dir = voc / ("SegmentationClassAug" if split == "train_aug" else "SegmentationClass")
    hint = FETCH_HINT + (" --aug" if split == "train_aug" else "")
    ids = read_id_list(lists / f"{split}.txt", hint)
    return SegmentationDataset(
        VOC_INFO,
        ids,
        [voc / "JPEGImages" / f"{i}.jpg" for i in ids],
        [mask_dir / f"{i}.png" for i in ids],
        make_lut({**{c: c for c in range(21)}, 255: 255}),
        transforms,
    )


def fetch_voc(root: Path, *, aug: bool = False, progress: bool = True) -> Path:
    """Download and extract VOC 2012 trainval (and optionally the SBD aug masks) into ``root``.

    Resumable (re-run after an interruption) and md5-verified (VOC archive). Returns the
    VOC2012 folder. Writes ``train_aug.txt`` when ``aug`` is set.
    """
    root = Path(root).expanduser()
    archives = root / "archives"
    try:
        voc = find_voc2012(root)
    except DatasetError:
        tar = download(VOC_URL, archives / "VOCtrainval_11-May-2012.tar", md5=VOC_MD5, progress=progress)
        extract(tar, root, progress=progress)
        voc = find_voc2012(root)
    if aug:
        aug_dir = voc / "SegmentationClassAug"
        if not aug_dir.is_dir() or len(list(aug_dir.glob("*.png"))) < VOC_AUG_COUNT:
            z = download(VOC_AUG_URL, archives / "SegmentationClassAug.zip", progress=progress)
            tmp = root / "_aug_tmp"
            extract(z, tmp, members_prefix="SegmentationClassAug/", progress=progress)
            move_tree(tmp / "SegmentationClassAug", aug_dir)
        n = len(list(aug_dir.glob("*.png")))
        if n != VOC_AUG_COUNT:
            raise DatasetError(
                f"{aug_dir} holds {n} masks, expected {VOC_AUG_COUNT}; delete it and "
                "the archive under archives/ and run again"
            )
        write_train_aug_list(voc)
    return voc


def write_train_aug_list(voc: Path) -> Path:
    """Write ``train_aug.txt``: every SegmentationClassAug mask whose id is not in ``val.txt``."""
    lists = voc / "ImageSets" / "Segmentation"
    val = set(read_id_list(lists / "val.txt", FETCH_HINT))
    ids = sorted(p.stem for p in (voc / "SegmentationClassAug").glob("*.png") if p.stem not in val)
    out = lists / "train_aug.txt"
    atomic_write_text(out, "\n".join(ids) + "\n")
    return out


# ---------------------------------------------------------------------- resized copies
def _resize_one(args):
    """Resize one image and its masks (one job per id, so no two workers write the same file)."""
    img_src, img_dst, masks, short = args
    with Image.open(img_src) as im:
        w, h = im.size
        s = short / min(w, h)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        if not Path(img_dst).is_file():
            _save_atomic(im.convert("RGB").resize(size, Image.BILINEAR, reducing_gap=None), img_dst, "JPEG", quality=90)
    for mask_src, mask_dst in masks:
        with Image.open(mask_src) as m:
            _save_atomic(m.resize(size, Image.NEAREST), mask_dst, "PNG")  # keeps the palette and 255


def _save_atomic(image: Image.Image, path: Path, fmt: str, **kw) -> None:
    """Save to a temporary name, then rename: an interrupted copy never leaves a truncated file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    image.save(tmp, format=fmt, **kw)
    os.replace(tmp, path)


def resize_voc(src_root: Path, dst_root: Path, short_side: int, *, workers: int = 2, progress: bool = True) -> Path:
    """Write a copy of a VOC 2012 folder with every image's shorter side at ``short_side`` px.

    Images: bilinear (antialiased). Masks: nearest neighbour, palette and 255 kept. Lists are
    copied. Existing output files are kept (re-running completes an interrupted copy).

    Returns:
        The new ``VOCdevkit/VOC2012`` folder under ``dst_root``.
    """
    if short_side < 16:
        raise ValueError(f"--short-side must be at least 16 px, got {short_side}")
    src = find_voc2012(src_root)
    dst = Path(dst_root).expanduser() / "VOCdevkit" / "VOC2012"
    if dst.resolve() == src.resolve():
        raise ValueError(f"the resized copy would overwrite {src}; choose another output folder")
    lists_src = src / "ImageSets" / "Segmentation"
    (dst / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    for lst in lists_src.glob("*.txt"):
        atomic_write_text(dst / "ImageSets" / "Segmentation" / lst.name, lst.read_text())
    mask_dirs = [d for d in ("SegmentationClass", "SegmentationClassAug") if (src / d).is_dir()]
    for d in mask_dirs + ["JPEGImages"]:
        (dst / d).mkdir(parents=True, exist_ok=True)
    ids = sorted({i for lst in lists_src.glob("*.txt") for i in read_id_list(lst, FETCH_HINT)})
    jobs = []
    for i in ids:
        img_dst = dst / "JPEGImages" / f"{i}.jpg"
        masks = [
            (src / d / f"{i}.png", dst / d / f"{i}.png")
            for d in mask_dirs
            if (src / d / f"{i}.png").is_file() and not (dst / d / f"{i}.png").is_file()
        ]
        if masks or not img_dst.is_file():
            jobs.append((src / "JPEGImages" / f"{i}.jpg", img_dst, masks, short_side))
    if workers > 1 and len(jobs) > 50:
        with ProcessPoolExecutor(workers) as ex:
            list(
                tqdm(
                    ex.map(_resize_one, jobs, chunksize=32),
                    total=len(jobs),
                    desc="resizing VOC",
                    disable=not show_progress(progress),
                )
            )
    else:
        for j in tqdm(jobs, desc="resizing VOC", disable=not show_progress(progress)):
            _resize_one(j)
    return dst


SPEC = register_dataset(
    DatasetSpec(
        name="voc",
        label="PASCAL VOC 2012",
        info=VOC_INFO,
        tasks=VOC_TASKS,
        open=lambda root, split, incremental, transforms: voc_dataset(root, split, transforms),
        train_split=lambda voc_split: voc_split,
        eval_split="val",
        fetch=lambda root, split: fetch_voc(root, aug=split == "train_aug"),
        one_step_task="15-5",
        profile_values={"smoke": dict(crop_size=96, max_train_images=64, max_val_images=32)},
        source="Everingham et al., IJCV 2010; SBD masks for train_aug (Hariharan et al., ICCV 2011)",
    )
)
