"""Class-incremental task protocols: which classes each step learns, and which images it sees.

The VOC protocols are MiB's (Cermelli et al., "Modeling the Background for Incremental Learning
in Semantic Segmentation", CVPR 2020, Sec. 4): a task ``A-B`` learns ``A`` classes at step 0,
then ``B`` classes per step. Two settings (MiB, Sec. 4.1):

* **disjoint**: the images of step t contain at least one class of step t and otherwise only
  classes learned before (no future class anywhere in the image);
* **overlapped**: every image containing at least one class of step t; future classes may be
  in it and are labelled background.

Labels at step t (docs/design.md, Conventions): pixels of classes not learned *at* step t -- old and future --
are background 0 (the *background shift*); 255 stays ignored (MiB's code maps it to 0 in
training: ``void_label="background"``). Validation at step t covers every class seen so far
(unseen classes are background), on all validation images; MiB's test protocol (images with a
seen class, unseen classes ignored) is ``eval_dataset(..., unseen="ignore")``.

Per-image class presence is read once per dataset split and cached; split membership is then
a vectorised look-up, itself cached as JSON per (dataset, task, setting, step).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import dataset_info, dataset_names, dataset_spec
from .data.cache import cache_paths, read_cache, write_cache
from .data.common import IGNORE_INDEX, SegmentationDataset
from .store import atomic_write_text

ALIASES = {"15-5s": "15-1"}
SETTINGS = ("disjoint", "overlapped")


def task_names(dataset: str) -> list[str]:
    """Valid task names for ``dataset`` (aliases included)."""
    names = list(_table(dataset))
    return names + [a for a, t in ALIASES.items() if t in names]


def base_signature(dataset: str, task: str) -> str:
    """What step 0 of ``task`` depends on: its classes and how many classes the task has in all.

    Step 0 trains on the step-0 classes, and its images (overlapped: containing a step-0 class;
    disjoint: also no later class) do not depend on how the later classes are split into steps,
    so VOC ``15-5`` and ``15-1`` both give ``"0-15of21"``. Offline tasks keep their name.
    """
    steps = get_task(dataset, task)
    if len(steps) == 1:
        return ALIASES.get(task, task)
    first, total = steps[0], sum(len(s) for s in steps)
    if first == list(range(first[0], first[-1] + 1)):
        return f"{first[0]}-{first[-1]}of{total}"
    return ",".join(map(str, first)) + f"of{total}"


def first_new_class(dataset: str, task: str) -> str:
    """Name of the first class added after step 0 (where old ends and new begins in a table)."""

    steps = get_task(dataset, task)
    return dataset_info(dataset, incremental=True).class_names[steps[1][0]] if len(steps) > 1 else ""


def one_class_steps(task: str) -> bool:
    """Whether every step after step 0 of ``task`` adds a single class (VOC ``15-1`` alias ``15-5s``,
    ``10-1``, ``19-1``; CamVid ``8-1``), read from the protocol tables, so without a dataset;
    False for an offline or unknown task."""
    name = ALIASES.get(task, task)
    for table in (dataset_spec(n).tasks for n in dataset_names()):
        if name in table:
            return len(table[name]) > 1 and all(len(s) == 1 for s in table[name][1:])
    return False


def task_steps(task: str) -> int:
    """How many steps ``task`` has, step 0 included (``15-1``: 6, ``10-1``: 11), read from the
    protocol tables, so without a dataset; 0 for an unknown task."""
    name = ALIASES.get(task, task)
    for table in (dataset_spec(n).tasks for n in dataset_names()):
        if name in table:
            return len(table[name])
    return 0


def _table(dataset: str) -> dict:
    """The task table of ``dataset`` (its :class:`~incseg_lib.data.registry.DatasetSpec`)."""
    return dataset_spec(dataset).tasks


def get_task(dataset: str, task: str) -> list[list[int]]:
    """The classes of each step of ``task``: a list of lists of class ids.

    Raises:
        ValueError: unknown task; the message lists the valid ones.
    """
    table = _table(dataset)
    name = ALIASES.get(task, task)
    if name not in table:
        raise ValueError(f"unknown task {task!r} for {dataset}; valid tasks: {', '.join(task_names(dataset))}")
    return [list(s) for s in table[name]]


@dataclass(frozen=True)
class IncrementalSplit:
    """One step of a task protocol.

    Args:
        dataset: ``voc``, ``shapes`` or ``camvid``.
        task: e.g. ``15-5``, ``15-1`` (alias ``15-5s``), ``offline``.
        step: 0-based step index.
        setting: ``disjoint`` or ``overlapped``.

    Model outputs are ordered by step (``class_order``); with the built-in protocols that is
    the dataset's own id order, so output index == class id.

    Raises:
        ValueError: unknown task, setting, or a step out of range (the message lists valid ones).
    """

    dataset: str
    task: str
    step: int
    setting: str = "overlapped"

    def __post_init__(self):
        steps = get_task(self.dataset, self.task)
        if self.setting not in SETTINGS:
            raise ValueError(f"unknown setting {self.setting!r}; choose one of {SETTINGS}")
        if not 0 <= self.step < len(steps):
            raise ValueError(f"task {self.task} has steps 0..{len(steps) - 1}; step {self.step} does not exist")

    # ---------------------------------------------------------------- class lists
    @property
    def steps(self) -> list[list[int]]:
        return get_task(self.dataset, self.task)

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    @property
    def is_offline(self) -> bool:
        return len(self.steps) == 1

    @property
    def class_order(self) -> list[int]:
        """All classes of the task in the order the model's outputs hold them."""
        return [c for s in self.steps for c in s]

    @property
    def new_classes(self) -> list[int]:
        """Classes learned at this step."""
        return self.steps[self.step]

    @property
    def old_classes(self) -> list[int]:
        """Classes learned before this step (background included)."""
        return [c for s in self.steps[: self.step] for c in s]

    @property
    def seen_classes(self) -> list[int]:
        return self.old_classes + self.new_classes

    @property
    def future_classes(self) -> list[int]:
        return [c for s in self.steps[self.step + 1 :] for c in s]

    @property
    def classes_per_step(self) -> list[int]:
        """Output channels added at steps 0..step (the incremental classifier's head sizes)."""
        return [len(s) for s in self.steps[: self.step + 1]]

    @property
    def num_seen(self) -> int:
        return len(self.seen_classes)

    @property
    def base_classes(self) -> list[int]:
        """Classes of step 0 (MiB's "old" in the final old/new/all report, background included)."""
        return self.steps[0]

    @property
    def added_classes(self) -> list[int]:
        """Classes added after step 0 up to this step (MiB's "new")."""
        return [c for s in self.steps[1 : self.step + 1] for c in s]

    # ---------------------------------------------------------------- label maps
    def _lut(self, keep: list[int]) -> np.ndarray:
        out_index = {c: i for i, c in enumerate(self.class_order)}
        lut = np.zeros(256, dtype=np.uint8)  # everything else -> background 0
        for c in keep:
            lut[c] = out_index[c]
        lut[IGNORE_INDEX] = IGNORE_INDEX
        return lut

    def lut_keeping(self, keep: list[int]) -> np.ndarray:
        """``(256,)`` uint8: dataset class id -> this task's output index for ``keep``, else background."""
        return self._lut([c for c in keep if c in self.class_order])

    def train_lut(self, void_label: str = "ignore") -> np.ndarray:
        """``(256,)`` uint8: training labels of this step (only the new classes kept).

        In an offline task every class is kept. ``void_label``: ``ignore`` keeps void (255)
        ignored; ``background`` maps it to 0 as MiB's dataset code does in training
        (fcdl94/MiB ``dataset/voc.py``: ``inverted_order[255] = masking_value = 0``). Crop padding
        is added after this look-up, so it stays ignored either way.

        Raises:
            ValueError: unknown ``void_label``.
        """
        if void_label not in ("ignore", "background"):
            raise ValueError(f"void_label {void_label!r}; choose 'ignore' or 'background'")
        lut = self._lut(self.new_classes if not self.is_offline else self.class_order)
        if void_label == "background":
            lut[IGNORE_INDEX] = 0
        return lut

    def eval_lut(self) -> np.ndarray:
        """``(256,)`` uint8: validation labels at this step (every seen class kept; 255 kept)."""
        return self._lut(self.seen_classes)

    # ---------------------------------------------------------------- image membership
    def select(self, presence: np.ndarray) -> np.ndarray:
        """Indices of the training images of this step.

        Args:
            presence: ``(N, C)`` bool, which dataset class ids each image contains (255 excluded),
                from :meth:`SegmentationDataset.class_presence`.

        Returns:
            ``(M,)`` int64 sorted indices. Offline: every image. Otherwise images containing a
            new (non-background) class; in the disjoint setting also no future class.
        """
        if self.is_offline:
            return np.arange(len(presence))
        new = [c for c in self.new_classes if c != 0]
        keep = presence[:, new].any(axis=1)
        if self.setting == "disjoint" and self.future_classes:
            keep &= ~presence[:, self.future_classes].any(axis=1)
        return np.flatnonzero(keep)

    def train_indices(
        self, dataset: SegmentationDataset, cache_dir: Path | None = None, progress: bool = False
    ) -> np.ndarray:
        """:meth:`select` on ``dataset``, cached as JSON under ``cache_dir`` (or a writable cache
        folder; deterministic). A corrupt cache is named, moved aside and rebuilt."""
        name = (
            f"split-{dataset.info.name}-{dataset.content_fingerprint()}-{self.task}-{self.setting}-step{self.step}.json"
        )
        caches = cache_paths(cache_dir, name)

        def load(p):
            idx = json.loads(p.read_text())["indices"]
            if not isinstance(idx, list) or not all(isinstance(i, int) and 0 <= i < len(dataset) for i in idx):
                raise ValueError("its indices are not image numbers of this dataset")
            return np.asarray(idx, dtype=np.int64)

        idx = read_cache(caches, load, "split")
        if idx is not None:
            return idx
        idx = self.select(dataset.class_presence(cache_dir, progress=progress))
        text = json.dumps({"task": self.task, "setting": self.setting, "step": self.step, "indices": idx.tolist()})
        write_cache(caches, lambda p: atomic_write_text(p, text), "split")
        return idx

    def train_dataset(
        self,
        dataset: SegmentationDataset,
        cache_dir: Path | None = None,
        progress: bool = False,
        void_label: str = "ignore",
    ) -> SegmentationDataset:
        """The step's training images with the step's labels (``void_label``: see :meth:`train_lut`).

        Raises:
            ValueError: no image of the dataset qualifies (names task, setting, step, classes).
        """
        idx = self.train_indices(dataset, cache_dir, progress)
        if len(idx) == 0:
            names = [dataset.info.class_names[c] for c in self.new_classes]
            raise ValueError(
                f"no training image for {dataset.info.name} task {self.task} ({self.setting}) step "
                f"{self.step}: none contains {names}"
                + (" without future classes; try the overlapped setting" if self.setting == "disjoint" else "")
            )
        return dataset.subset(idx).with_target_lut(self.train_lut(void_label))

    def eval_dataset(
        self, dataset: SegmentationDataset, unseen: str = "background", cache_dir: Path | None = None
    ) -> SegmentationDataset:
        """The validation images of this step, labelled with the classes seen so far.

        ``unseen``: ``background`` -- every image, classes not seen yet are background (this
        suite's default); ``ignore`` -- MiB's test protocol (fcdl94/MiB ``dataset/voc.py`` with
        ``train=False``: images holding at least one seen non-background class, unseen classes
        mapped to 255 and ignored). ``cache_dir`` caches the per-image class presence.

        Raises:
            ValueError: unknown ``unseen``.
        """
        if unseen == "background":
            return dataset.with_target_lut(self.eval_lut())
        if unseen != "ignore":
            raise ValueError(f"unseen={unseen!r}; choose 'background' or 'ignore'")
        lut = self.eval_lut()
        for c in self.future_classes:
            lut[c] = IGNORE_INDEX
        seen = [c for c in self.seen_classes if c != 0]
        keep = np.flatnonzero(dataset.class_presence(cache_dir)[:, seen].any(axis=1))
        return dataset.subset(keep).with_target_lut(lut)
