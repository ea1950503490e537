"""Datasets: VOC 2012, CamVid and the embedded ``shapes`` stand-in, behind one loader.

Each dataset is one module that registers its :class:`~incseg_lib.data.registry.DatasetSpec`
(classes and colours, splits, task table, how to open and fetch it, its sizes per profile);
everything here reads the registry.

>>> from incseg_lib.data import load_dataset
>>> train = load_dataset("shapes", "train")            # generated on first use
>>> image, mask = train[0]                              # tv_tensors.Image (3,H,W), Mask (H,W)
"""

from __future__ import annotations

from pathlib import Path

from ..env import default_data_root
from .camvid import CAMVID_CLASSES, camvid_dataset, fetch_camvid
from .common import IGNORE_INDEX, DatasetError, DatasetInfo, SegmentationDataset
from .registry import DatasetSpec, dataset_names, dataset_spec, register_dataset, unregister_dataset
from .shapes import ensure_shapes
from .voc import VOC_CLASSES, VOC_PALETTE, fetch_voc, resize_voc, voc_dataset

__all__ = [
    "CAMVID_CLASSES",
    "IGNORE_INDEX",
    "VOC_CLASSES",
    "VOC_PALETTE",
    "DatasetError",
    "DatasetInfo",
    "DatasetSpec",
    "SegmentationDataset",
    "camvid_dataset",
    "dataset_info",
    "dataset_names",
    "dataset_spec",
    "ensure_shapes",
    "eval_split",
    "fetch_camvid",
    "fetch_voc",
    "load_dataset",
    "register_dataset",
    "resize_voc",
    "train_split",
    "unregister_dataset",
    "voc_dataset",
]


def train_split(dataset: str, voc_split: str = "train") -> str:
    """The training list of ``dataset``: VOC ``train``/``train_aug``, CamVid ``trainval`` (as BiSeNet)."""
    return dataset_spec(dataset).train_split(voc_split)


def eval_split(dataset: str) -> str:
    """The split results are reported on: ``val`` (VOC, shapes), ``test`` (CamVid)."""
    return dataset_spec(dataset).eval_split


def dataset_info(dataset: str, incremental: bool = True) -> DatasetInfo:
    """Class names and palette of ``dataset`` without opening its files (``incremental=False``: its
    own ids, CamVid without background).

    Raises:
        ValueError: unknown dataset (lists the registered ones).
    """
    spec = dataset_spec(dataset)
    return spec.info if incremental or spec.offline_info is None else spec.offline_info


def load_dataset(
    dataset: str, split: str, *, root: str | Path = "", incremental: bool = True, transforms=None, max_images: int = 0
) -> SegmentationDataset:
    """Open ``split`` of ``dataset`` (a registered name: ``shapes``, ``voc``, ``camvid``).

    Args:
        root: dataset folder; ``""`` = ``default_data_root() / dataset``. ``shapes`` is generated
            there on first use.
        incremental: CamVid only: reserve id 0 for background (True) or keep its 11 ids (False).
        max_images: keep only the first N images (0 = all), for quick looks.

    Raises:
        DatasetError: the folder or a list is missing (names the path and the fetch command).
        DownloadError: the dataset was missing, fetching was on (Colab, or ``INCSEG_FETCH=1``;
            see :func:`~incseg_lib.env.auto_fetch`) and the download failed.
        ValueError: unknown dataset or split.

    A missing VOC or CamVid is downloaded into ``root`` first when
    :func:`~incseg_lib.env.auto_fetch` says so: the official archives, checksum-verified and
    resumable, with a progress bar (:func:`fetch_voc`, :func:`fetch_camvid`).
    """
    spec = dataset_spec(dataset)
    root = Path(root).expanduser() if root else default_data_root() / dataset
    ds = spec.opened(root, split, incremental, transforms)
    if max_images and max_images < len(ds):
        ds = ds.subset(range(max_images))
    return ds
