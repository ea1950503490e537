"""Datasets: VOC 2012, CamVid and the embedded ``shapes`` stand-in, behind one loader.

>>> from incseg_lib.data import load_dataset
>>> train = load_dataset("shapes", "train")            # generated on first use
>>> image, mask = train[0]                              # tv_tensors.Image (3,H,W), Mask (H,W)
"""

from __future__ import annotations

from pathlib import Path

from ..env import auto_fetch, default_data_root
from .camvid import CAMVID_CLASSES, CAMVID_INCREMENTAL_INFO, CAMVID_INFO, camvid_dataset, fetch_camvid
from .common import IGNORE_INDEX, DatasetError, DatasetInfo, SegmentationDataset
from .shapes import SHAPES_INFO, ensure_shapes
from .voc import VOC_CLASSES, VOC_INFO, VOC_PALETTE, fetch_voc, resize_voc, voc_dataset

__all__ = [
    "CAMVID_CLASSES",
    "IGNORE_INDEX",
    "VOC_CLASSES",
    "VOC_PALETTE",
    "DatasetError",
    "DatasetInfo",
    "SegmentationDataset",
    "camvid_dataset",
    "dataset_info",
    "ensure_shapes",
    "eval_split",
    "fetch_camvid",
    "fetch_voc",
    "load_dataset",
    "resize_voc",
    "train_split",
    "voc_dataset",
]


def train_split(dataset: str, voc_split: str = "train") -> str:
    """The training list of ``dataset``: VOC ``train``/``train_aug``, CamVid ``trainval`` (as BiSeNet)."""
    return {"voc": voc_split, "camvid": "trainval"}.get(dataset, "train")


def eval_split(dataset: str) -> str:
    """The split results are reported on: ``val`` (VOC, shapes), ``test`` (CamVid)."""
    return "test" if dataset == "camvid" else "val"


def dataset_info(dataset: str, incremental: bool = True) -> DatasetInfo:
    """Class names and palette of ``dataset`` without opening its files."""

    infos = {"shapes": SHAPES_INFO, "voc": VOC_INFO, "camvid": CAMVID_INCREMENTAL_INFO if incremental else CAMVID_INFO}
    if dataset not in infos:
        raise ValueError(f"unknown dataset {dataset!r}; choose shapes, voc or camvid")
    return infos[dataset]


def load_dataset(
    dataset: str, split: str, *, root: str | Path = "", incremental: bool = True, transforms=None, max_images: int = 0
) -> SegmentationDataset:
    """Open ``split`` of ``dataset`` (``shapes``, ``voc`` or ``camvid``).

    Args:
        root: dataset folder; ``""`` = ``default_data_root() / dataset``. ``shapes`` is generated
            there on first use.
        incremental: CamVid only: reserve id 0 for background (True) or keep its 11 ids (False).
        max_images: keep only the first N images (0 = all), for quick looks.

    Raises:
        DatasetError: the folder or a list is missing (names the path and the fetch command).
        DownloadError: the dataset was missing, fetching was on (Colab, or ``INCSEG_FETCH=1``;
            see :func:`~incseg_lib.config.auto_fetch`) and the download failed.
        ValueError: unknown dataset or split.

    A missing VOC or CamVid is downloaded into ``root`` first when
    :func:`~incseg_lib.config.auto_fetch` says so: the official archives, checksum-verified and
    resumable, with a progress bar (:func:`fetch_voc`, :func:`fetch_camvid`).
    """
    root = Path(root).expanduser() if root else default_data_root() / dataset
    if dataset == "shapes":
        ds = voc_dataset(ensure_shapes(root), split, transforms)
        ds.info = SHAPES_INFO
    elif dataset == "voc":
        ds = _opened(
            lambda: voc_dataset(root, split, transforms), lambda: fetch_voc(root, aug=split == "train_aug"), "voc", root
        )
    elif dataset == "camvid":
        ds = _opened(
            lambda: camvid_dataset(root, split, background=incremental, transforms=transforms),
            lambda: fetch_camvid(root),
            "camvid",
            root,
        )
    else:
        raise ValueError(f"unknown dataset {dataset!r}; choose shapes, voc or camvid")
    if max_images and max_images < len(ds):
        ds = ds.subset(range(max_images))
    return ds


def _opened(open_fn, fetch_fn, name: str, root: Path):
    """``open_fn()``; if the dataset is missing and :func:`auto_fetch` holds, ``fetch_fn()`` then retry."""
    try:
        return open_fn()
    except DatasetError:
        if not auto_fetch():
            raise
    print(f"{name} is not at {root}: fetching it there (set INCSEG_FETCH=0 to stop this)")
    fetch_fn()
    return open_fn()
