"""Exemplar memory for rehearsal: a few stored images of old classes, replayed at later steps.

Soft MiB / SMiB ("Incremental Learning in Semantic Segmentation using Exemplars") showed that a
few stored images per old class recover much of what MiB forgets; SSUL-M (Cha et al., NeurIPS
2021) shares one fixed total budget between all seen classes and fills half of every batch from
memory. This module provides both budgets, three selection strategies, the labelling rules and
the replay sampler:

* **budget** ``per-class``: ``m`` images per class (the seed's 1, 5, 15, 25, 50, 100), or
  ``total``: ``M`` images shared by every seen class (``M // classes`` each; older classes give
  up their last-chosen images when new classes arrive).
* **selection** among the images *available at the step where the class was learned* (the
  step's training images: in the disjoint setting never an image holding a future class):
  ``random`` (a seeded uniform draw of images from that set), ``class-balanced`` (classes in a
  random order take turns picking an unused image that contains them) and ``herding`` (iCaRL,
  Rebuffi et al. CVPR 2017, Alg. 4: per class, greedily pick the image whose class-pooled
  feature brings the running mean of the chosen features closest to the class mean). No image
  is ever stored twice.
* **labels**: an exemplar keeps the ground truth of the classes seen when it was stored (later
  classes become background); the new step's images keep only the new classes, as in MiB. The
  seed code's "old labels on new data" (old-class ground truth kept on every new image) changes
  the benchmark and is only offered as an explicitly named variant.
* **replay**: :class:`ReplayBatchSampler` fills a fixed share of every batch (default half) from
  memory, instead of a one-off union of the two sets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Sampler

from .data.common import SegmentationDataset
from .data.transforms import eval_transforms
from .env import show_progress
from .losses import known_background
from .store import atomic_write_text, read_json

BUDGET_MODES = ("per-class", "total")
STRATEGIES = ("random", "class-balanced", "herding")


@dataclass(frozen=True)
class ReplayConfig:
    """How rehearsal is done (part of a checkpoint's identity).

    Attributes:
        budget: images per class (``per-class``) or in all (``total``); > 0.
        mode: ``per-class`` or ``total``.
        strategy: ``random``, ``class-balanced`` or ``herding``.
        share: fraction of every batch drawn from memory, in (0, 1) (SSUL-M: 0.5).
        old_labels_on_new: the seed code's variant: new-step images keep old-class labels
            (changes the benchmark; off by default).

    Raises:
        ValueError: a value out of range (names it and the valid choices).
    """

    budget: int = 5
    mode: str = "per-class"
    strategy: str = "class-balanced"
    share: float = 0.5
    old_labels_on_new: bool = False

    def __post_init__(self):
        if int(self.budget) <= 0:
            raise ValueError(f"exemplar budget must be a positive number of images, got {self.budget!r}")
        if self.mode not in BUDGET_MODES:
            raise ValueError(f"budget mode {self.mode!r}; choose one of {BUDGET_MODES}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"selection strategy {self.strategy!r}; choose one of {STRATEGIES}")
        if not 0 < float(self.share) < 1:
            raise ValueError(f"replay share must be in (0, 1) (a fraction of each batch), got {self.share!r}")

    @property
    def tag(self) -> str:
        """Short name for folders and tables, e.g. ``5pc-class-balanced`` or ``100tot-herding``."""
        base = f"{self.budget}{'pc' if self.mode == 'per-class' else 'tot'}-{self.strategy}"
        if self.share != 0.5:
            base += f"-s{self.share:g}"
        return base + ("-oldlabels" if self.old_labels_on_new else "")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Exemplar:
    """One stored image: where it is in the training list and what it keeps."""

    index: int  # index into the (unfiltered, class-id) training dataset
    image_id: str
    cls: int  # the class it was chosen for
    step: int  # the step whose classes it was chosen for
    classes: list[int] = field(default_factory=list)  # labels it keeps: classes seen at that step


class ExemplarMemory:
    """The exemplar memory: which training images are stored, for which class, with which labels.

    Args:
        config: a :class:`ReplayConfig` (budget, mode, strategy).
        seed: seed of the random choices (class order, random draws).
    """

    def __init__(self, config: ReplayConfig, seed: int = 0):
        self.config = config
        self.seed = int(seed)
        self.items: list[Exemplar] = []

    # ------------------------------------------------------------------ budget
    def quota(self, classes: list[int]) -> dict[int, int]:
        """Images allowed per class: ``budget`` each, or ``budget // len(classes)`` (remainder to
        the earliest classes) in ``total`` mode."""
        if self.config.mode == "per-class":
            return {c: self.config.budget for c in classes}
        base, extra = divmod(self.config.budget, max(len(classes), 1))
        return {c: base + (1 if k < extra else 0) for k, c in enumerate(classes)}

    def per_class(self) -> dict[int, list[Exemplar]]:
        out: dict[int, list[Exemplar]] = {}
        for e in self.items:
            out.setdefault(e.cls, []).append(e)
        return out

    # ------------------------------------------------------------------ selection
    def update(
        self,
        split,
        dataset: SegmentationDataset,
        *,
        model=None,
        device="cpu",
        cache_dir: Path | None = None,
        progress: bool = False,
    ) -> list[Exemplar]:
        """Store exemplars of the classes learned at ``split.step`` (call after training it).

        Args:
            split: the :class:`~incseg_lib.tasks.IncrementalSplit` of the step just trained.
            dataset: the unfiltered training dataset (class ids, no transforms).
            model: the model after that step; needed by ``herding`` (its pooled features).

        Returns:
            The exemplars added. In ``total`` mode older classes first shrink to the new quota
            (keeping their earliest-chosen images, which herding ranks best).

        Raises:
            ValueError: herding without a model.
        """
        new = [c for c in split.new_classes if c != 0]
        seen = [c for c in split.seen_classes if c != 0]
        quota = self.quota(seen)
        if self.config.mode == "total":  # older classes give up their last-chosen images
            kept = []
            for c, items in self.per_class().items():
                kept += items[: quota.get(c, 0)]
            self.items = kept
        candidates = split.train_indices(dataset, cache_dir).tolist()  # available at this step only
        presence = dataset.class_presence(cache_dir)
        used = {e.index for e in self.items}
        rng = np.random.default_rng(self.seed * 1009 + split.step)
        order = [new[i] for i in rng.permutation(len(new))]
        strategy = self.config.strategy
        if strategy == "random":
            chosen = self._random(candidates, presence, order, quota, used, rng)
        elif strategy == "class-balanced":
            chosen = self._balanced(candidates, presence, order, quota, used, rng)
        else:
            if model is None:
                raise ValueError("herding selects by the model's features: pass the model of the step just trained")
            chosen = self._herding(candidates, presence, order, quota, used, dataset, model, device, progress)
        added = [Exemplar(int(i), dataset.ids[i], int(c), split.step, list(split.seen_classes)) for c, i in chosen]
        self.items += added
        return added

    @staticmethod
    def _random(candidates, presence, order, quota, used, rng):
        pool = [i for i in candidates if i not in used]
        pool = [pool[k] for k in rng.permutation(len(pool))][: sum(quota[c] for c in order)]
        chosen = []
        for i in pool:  # book each drawn image under a new class it shows (the rarest so far)
            mine = [c for c in order if presence[i, c]]
            if mine:
                counts = {c: sum(1 for cc, _ in chosen if cc == c) for c in mine}
                chosen.append((min(mine, key=lambda c: counts[c]), i))
        return chosen

    @staticmethod
    def _balanced(candidates, presence, order, quota, used, rng):
        pools = {c: [i for i in candidates if presence[i, c]] for c in order}
        pools = {c: [p[k] for k in rng.permutation(len(p))] for c, p in pools.items()}
        taken = set(used)
        counts = {c: 0 for c in order}
        chosen = []
        progress_made = True
        while progress_made:  # round robin: each class in turn picks one unused image containing it
            progress_made = False
            for c in order:
                if counts[c] >= quota[c]:
                    continue
                while pools[c] and pools[c][0] in taken:
                    pools[c].pop(0)
                if pools[c]:
                    i = pools[c].pop(0)
                    taken.add(i)
                    counts[c] += 1
                    chosen.append((c, i))
                    progress_made = True
        return chosen

    @staticmethod
    def _herding(candidates, presence, order, quota, used, dataset, model, device, progress):
        taken = set(used)
        chosen = []
        for c in order:
            pool = [i for i in candidates if presence[i, c] and i not in taken]
            if not pool or quota[c] <= 0:
                continue
            feats = herding_features(model, dataset, pool, c, device=device, progress=progress)
            for k in herding_order(feats, quota[c]):
                taken.add(pool[k])
                chosen.append((c, pool[k]))
        return chosen

    # ------------------------------------------------------------------ training data
    def dataset(
        self, split, base: SegmentationDataset, transforms: Callable | None = None
    ) -> SegmentationDataset | ConcatDataset:
        """The stored images labelled for training at ``split.step``.

        Each exemplar keeps the ground truth of the classes seen when it was stored; labels are
        the model's output indices of ``split``. Its background (every pixel of no kept class,
        classes learned after storage included) carries the code
        :func:`~incseg_lib.losses.known_background` of the outputs it was annotated for, so MiB's
        unbiased cross-entropy merges it only with the classes learned since (other losses read
        it as background 0).
        """
        by_classes: dict[tuple, list[int]] = {}
        for e in self.items:
            by_classes.setdefault(tuple(e.classes), []).append(e.index)
        parts = []
        for classes, idx in by_classes.items():
            lut = annotated_lut(split.lut_keeping(list(classes)), len(classes))
            parts.append(base.subset(idx).with_target_lut(lut).with_transforms(transforms))
        if not parts:
            raise ValueError("the exemplar memory is empty; nothing to replay")
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    # ------------------------------------------------------------------ size and persistence
    def __len__(self) -> int:
        return len(self.items)

    def size_bytes(self, base: SegmentationDataset) -> int:
        """Bytes the stored images and masks take as files (what a memory on disk costs)."""
        return int(
            sum(base.image_paths[e.index].stat().st_size + base.mask_paths[e.index].stat().st_size for e in self.items)
        )

    def summary(self, base: SegmentationDataset) -> dict:
        """Images, bytes and images per class name."""
        per = {base.info.class_names[c]: len(v) for c, v in sorted(self.per_class().items())}
        return {"images": len(self), "bytes": self.size_bytes(base), "per_class": per}

    def save(self, path: Path) -> None:
        """Write the memory as JSON, atomically."""
        atomic_write_text(
            Path(path),
            json.dumps(
                {"config": self.config.to_dict(), "seed": self.seed, "items": [asdict(e) for e in self.items]}, indent=1
            ),
        )

    @classmethod
    def load(cls, path: Path) -> ExemplarMemory:
        """The memory saved at ``path`` by :meth:`save`.

        Raises:
            CorruptFile: truncated or not a memory (moved aside, so it is selected again).
        """

        def build(state):
            mem = cls(ReplayConfig(**state["config"]), state["seed"])
            mem.items = [Exemplar(**e) for e in state["items"]]
            return mem

        return read_json(path, "exemplar memory", build)


# ---------------------------------------------------------------------- herding
@torch.no_grad()
def herding_features(
    model, dataset: SegmentationDataset, indices: list[int], cls: int, *, device="cpu", progress: bool = False
) -> torch.Tensor:
    """Class-pooled encoder features: for each image, the mean of the model's 1/32 features over
    the pixels of class ``cls`` (soft-weighted by the class's share of each feature cell).

    Returns:
        ``(len(indices), D)`` float32, L2-normalised rows (iCaRL normalises its features).
    """
    from tqdm.auto import tqdm

    tf = eval_transforms()
    model = model.to(device).eval()
    out = []
    for i in tqdm(indices, desc=f"herding features class {cls}", leave=False, disable=not show_progress(progress)):
        x, y = tf(*dataset[i])
        feats = model(x[None].to(device))["features"][0].float()  # (D, h, w)
        onehot = (y == cls).float()[None, None].to(device)
        w = torch.nn.functional.adaptive_avg_pool2d(onehot, feats.shape[-2:])[0, 0]
        f = (feats * w).sum((1, 2)) / w.sum().clamp_min(1e-6)
        out.append(torch.nn.functional.normalize(f, dim=0).cpu())
    return torch.stack(out)


def herding_order(features: torch.Tensor, k: int) -> list[int]:
    """iCaRL's herding (Rebuffi et al., CVPR 2017, Alg. 4): ``k`` row indices of ``features``.

    Step j picks ``argmin_i || mu - (S + f_i) / j ||`` over unpicked rows, with ``mu`` the mean of
    all rows and ``S`` the sum of the rows picked so far; the order is the priority.

    Args:
        features: ``(N, D)`` float.
    """
    mu = features.mean(0)
    picked: list[int] = []
    acc = torch.zeros_like(mu)
    for j in range(1, min(k, len(features)) + 1):
        dist = ((mu - (acc + features) / j) ** 2).sum(1)
        if picked:
            dist[picked] = float("inf")
        i = int(dist.argmin())
        picked.append(i)
        acc += features[i]
    return picked


def annotated_lut(lut: np.ndarray, n_known: int) -> np.ndarray:
    """``lut`` with its background (0) outputs replaced by the annotated-background code for an
    image annotated for outputs ``0..n_known-1`` (:func:`~incseg_lib.losses.known_background`)."""

    out = lut.copy()
    out[(lut == 0) & (np.arange(256) != 255)] = known_background(n_known)
    return out


# ---------------------------------------------------------------------- replay sampling
class ReplayBatchSampler(Sampler):
    """Batches over ``ConcatDataset([new, memory])`` with a fixed share from memory.

    Each batch holds ``m = round(share * batch_size)`` memory images (clamped to 1..B-1) and
    ``B - m`` new images; an epoch is one pass over the new images (``len(new) // (B - m)``
    batches, last partial batch dropped); memory images are drawn in reshuffled passes.

    Args:
        n_new, n_memory: sizes of the two parts (indices ``0..n_new-1`` and ``n_new..``).
        generator: ``torch.Generator`` for the shuffles (``fit`` seeds it per epoch).

    Raises:
        ValueError: an empty part or a batch too small to share.
    """

    def __init__(self, n_new: int, n_memory: int, batch_size: int, share: float = 0.5, generator=None):
        if n_new < 1 or n_memory < 1:
            raise ValueError(f"replay needs new and memory images (got {n_new} new, {n_memory} in memory)")
        if batch_size < 2:
            raise ValueError(f"a replay batch needs at least 2 images, got batch_size={batch_size}")
        self.n_new, self.n_memory, self.batch_size = n_new, n_memory, batch_size
        self.m = min(max(int(round(share * batch_size)), 1), batch_size - 1)
        self.generator = generator

    def __len__(self) -> int:
        return max(self.n_new // (self.batch_size - self.m), 1)

    def __iter__(self) -> Iterator[list[int]]:
        g = self.generator
        new = torch.randperm(self.n_new, generator=g).tolist()
        step = self.batch_size - self.m
        mem: list[int] = []
        for b in range(len(self)):
            chunk = new[b * step : (b + 1) * step] or new[:step]
            while len(mem) < self.m:
                mem += (torch.randperm(self.n_memory, generator=g) + self.n_new).tolist()
            yield chunk + mem[: self.m]
            mem = mem[self.m :]
