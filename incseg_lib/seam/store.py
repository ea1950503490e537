"""Stored pseudo-labels (one PNG per image beside a manifest) and how each image's new class came out
(found, missed, moved), with the threshold sweep."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.common import IGNORE_INDEX, SegmentationDataset, class_id_lut
from ..data.transforms import eval_transforms
from ..engine import predict
from ..env import show_progress
from ..metrics import ConfusionMatrix
from ..store import atomic_write_png, atomic_write_text, read_manifest
from .labels import DEFAULT_THRESHOLDS, cam_scores, fuse_old, scores_to_labels
from .network import SeamNet
from .options import SeamConfig


# ---------------------------------------------------------------------- stored pseudo-labels
class PseudoLabels:
    """Pseudo-labels of a step's training images, stored as PNGs of dataset ids plus a manifest.

    Folder layout: ``masks/<image id>.png`` and ``manifest.json`` (the identity ``key``, the image
    ids, quality, the threshold sweep, seconds). Each PNG and the manifest are written atomically;
    the manifest last, so a folder without one is rebuilt and a finished one reused. A folder
    holding another key is an error, never silently overwritten.

    Quality (the standard CAM evaluation): each variant is compared with the mask it replaces, on
    the same images: without fusion, the step's training mask (new classes; old and future classes
    background); with fusion, the mask with the old classes kept. Variants: ``cam`` and ``pcm``
    (before/after PCM) without fusion, ``pcm+fuse`` (or ``cam+fuse``) when an old model is given,
    and ``chance``: every pixel drawn uniformly from background and the image's labelled classes
    (the floor any localisation must beat). ``used`` names the variant the step trains on.
    """

    def __init__(self, folder: Path, key: dict):
        self.folder = Path(folder)
        self.key = key
        self.manifest_path = self.folder / "manifest.json"
        self.manifest = None
        manifest = read_manifest(self.manifest_path, "pseudo-label manifest")  # None: made (again)
        if manifest is not None:
            if manifest.get("key") != key:
                raise FileExistsError(
                    f"{self.manifest_path} belongs to other pseudo-labels (its key differs); "
                    "move that folder away or delete it to make them again"
                )
            self.manifest = manifest

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    # Longer than the house limit: one pass over the images that makes each pseudo-label (CAM, PCM,
    # the old model's fusion) and the threshold sweep's counts together, so every image is run once;
    # the per-image steps are the functions of seam.labels.
    def build(
        self,
        model: SeamNet,
        images: SegmentationDataset,
        labels: np.ndarray,
        class_ids: list[int],
        config: SeamConfig,
        *,
        old_model: nn.Module | None = None,
        old_class_order: list[int] | None = None,
        old_classes: list[int] | None = None,
        thresholds=DEFAULT_THRESHOLDS,
        device="cpu",
        progress: bool = True,
    ) -> PseudoLabels:
        """Make and store the pseudo-label of every image.

        Args:
            model: trained :class:`SeamNet`.
            images: the step's training images without transforms (dataset ids; masks are read only
                to measure quality, never to make the labels).
            labels: ``(N, K)`` bool image-level labels; class_ids: their K dataset ids.
            old_model, old_class_order, old_classes: the step t-1 model, its output index -> dataset
                id, and the old classes, for fusion (``config.fuse_old``); None: no fusion.
            thresholds: background scores swept (measured, never used to train).
        """
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        (self.folder / "masks").mkdir(parents=True, exist_ok=True)
        C = images.info.num_classes
        fused = old_model is not None and config.fuse_old
        variants = ["cam", "pcm"] + ([f"{config.cam_source}+fuse"] if fused else [])
        conf = {v: ConfusionMatrix(C) for v in variants + ["chance"]}
        gen = torch.Generator().manual_seed(config.seed)  # the chance baseline's draws
        sweep = {s: [ConfusionMatrix(C) for _ in thresholds] for s in ("cam", "pcm")}
        old_lut = None
        if old_model is not None:
            old_model.to(device).eval()
            old_lut = torch.tensor(list(old_class_order), device=device)
        seen = set(old_classes or []) | set(class_ids) | {0}
        to_train = torch.tensor([c if c in class_ids or c == IGNORE_INDEX else 0 for c in range(256)], device=device)
        to_seen = torch.tensor([c if c in seen or c == IGNORE_INDEX else 0 for c in range(256)], device=device)
        model.to(device).eval()
        finish = eval_transforms()
        ids = []
        for i in tqdm(range(len(images)), desc="pseudo-labels", leave=False, disable=not show_progress(progress)):
            image, gt = finish(*images[i])
            image, gt = image.to(device), gt.to(device)
            lab = torch.as_tensor(labels[i], device=device)
            scores = cam_scores(model, image, lab, config)
            preds = {s: scores_to_labels(scores[s], lab, class_ids, config.bg_threshold) for s in ("cam", "pcm")}
            label = preds[config.cam_source]
            gt_train = to_train[gt]
            if fused:
                old_pred = old_lut[predict(old_model, image[None], device)[0].to(device)]
                label = fuse_old(label, old_pred, old_classes or [])
                conf[variants[-1]].update(label, to_seen[gt])
            choices = torch.tensor([0] + [c for c, y in zip(class_ids, labels[i]) if y])
            conf["chance"].update(
                choices[torch.randint(len(choices), tuple(gt.shape), generator=gen)].to(device), gt_train
            )
            for s in ("cam", "pcm"):
                conf[s].update(preds[s], gt_train)
                for k, t in enumerate(thresholds):
                    sweep[s][k].update(scores_to_labels(scores[s], lab, class_ids, t), gt_train)
            name = images.ids[i]
            atomic_write_png(self.folder / "masks" / f"{name}.png", label.to(torch.uint8).cpu().numpy())
            ids.append(name)
        names = images.info.class_names
        fg = sorted(class_ids)

        def quality(m: ConfusionMatrix, classes: list[int]) -> dict:
            iou = m.iou()
            return {
                "miou": _pct(m.miou([0] + classes)),
                "miou_new": _pct(m.miou(fg)),
                "background": _pct(iou[0]),
                "pixel_acc": _pct(m.pixel_accuracy()),
                "iou": {names[c]: _pct(iou[c]) for c in [0] + classes},
            }

        old_fg = sorted(c for c in (old_classes or []) if c != 0)
        self.manifest = {
            "key": self.key,
            "ids": ids,
            "classes": list(class_ids),
            "config": config.to_dict(),
            "quality": {v: quality(conf[v], fg + (old_fg if "fuse" in v else [])) for v in variants + ["chance"]},
            "used": variants[-1] if fused else config.cam_source,
            "sweep": [
                {"source": s, "threshold": float(t), "miou": _pct(sweep[s][k].miou([0] + fg))}
                for s in ("cam", "pcm")
                for k, t in enumerate(thresholds)
            ],
            "images": len(ids),
            "seconds": round(time.perf_counter() - t0, 2),
            "fused": fused,
        }
        atomic_write_text(self.manifest_path, json.dumps(self.manifest, indent=1))
        return self

    def dataset(self, train_set: SegmentationDataset, lut: np.ndarray) -> SegmentationDataset:
        """``train_set`` (the step's images, any transforms) with the pseudo-labels as masks, remapped
        by ``lut`` (dataset id -> output index, e.g. the step's ``eval_lut`` that keeps fused old classes).

        Raises:
            ValueError: see :meth:`as_dataset`.
        """
        return self.as_dataset(train_set).with_target_lut(lut)

    def as_dataset(self, images: SegmentationDataset) -> SegmentationDataset:
        """``images`` (the step's images) with the pseudo-labels as masks, in dataset ids (no remapping).

        Raises:
            ValueError: the pseudo-labels are not made yet, or were made for other images.
        """
        if not self.complete:
            raise ValueError(f"the pseudo-labels in {self.folder} are not made yet; build them first")
        if list(images.ids) != list(self.manifest["ids"]):
            raise ValueError(
                f"the pseudo-labels in {self.folder} were made for other images than these "
                f"{len(images)}; delete the folder to make them again"
            )
        paths = [self.folder / "masks" / f"{n}.png" for n in self.manifest["ids"]]
        return images._view(mask_paths=paths, raw_lut=class_id_lut(images.info), target_lut=None)

    def quality(self) -> dict:
        return self.manifest["quality"]

    def sweep(self) -> list[dict]:
        return self.manifest["sweep"]

    def best_threshold(self, source: str = "pcm") -> tuple[float, float]:
        """``(threshold, mIoU %)`` of the sweep's best background score for ``source`` (teaching only)."""
        return best_threshold(self.sweep(), source)

    def summary(self) -> dict:
        m = self.manifest
        return {
            "images": m["images"],
            "seconds": m["seconds"],
            "fused": m["fused"],
            "used": m["used"],
            "folder": str(self.folder),
            "quality": {v: {k: q[k] for k in ("miou", "miou_new", "background")} for v, q in m["quality"].items()},
        }


OUTCOMES = ("found", "missed", "moved")


def pseudo_label_outcome(
    pseudo, truth, class_id: int, old_classes, iou_min: float = 0.5, ignore: int = IGNORE_INDEX
) -> dict:
    """Did a pseudo-label find the object of one labelled new class? Our rule, for the course's
    figures (not SEAM's): compare the pixels the pseudo-label gives to ``class_id`` with the ground truth.

    * ``found``: IoU of the pseudo-label's ``class_id`` against the ground truth's is >= ``iou_min``;
    * ``moved``: not found, and the pseudo-label's ``class_id`` covers more pixels of old-class objects
      (the ground truth's old foreground classes) than of the new object itself: the activation moved
      onto an old object (PCM spreads it along pixel affinities, which need not stop at the object)
      and the label paints that object as the new class;
    * ``missed``: neither (too little of the object, or spread over background).

    Args:
        pseudo, truth: ``(H, W)`` dataset class ids (``ignore`` pixels of ``truth`` are left out).
        class_id: a new class of the image-level label.
        old_classes: the classes learned before the step (background ignored if listed).
        iou_min: IoU of a found object (0.5, as a detection counts a hit).

    Returns:
        ``{"class_id", "outcome" (one of :data:`OUTCOMES`), "iou", "on_new" (pixels of the class's
        label on its object), "on_old" (on old objects), "old_class" (the old class it covers most,
        or None), "share" (fraction of the image's valid pixels labelled ``class_id``), "iou_min"}``.
    """
    p, t = np.asarray(pseudo), np.asarray(truth)
    valid = t != ignore
    mine, obj = (p == class_id) & valid, (t == class_id) & valid
    union = int((mine | obj).sum())
    iou = (mine & obj).sum() / union if union else 0.0
    old_fg = [c for c in old_classes if c not in (0, ignore)]
    on_old_each = {c: int((mine & (t == c)).sum()) for c in old_fg}
    on_old, on_new = sum(on_old_each.values()), int((mine & obj).sum())
    outcome = "found" if iou >= iou_min else ("moved" if on_old > on_new else "missed")
    top = max(on_old_each, key=on_old_each.get) if on_old else None
    return {
        "class_id": int(class_id),
        "outcome": outcome,
        "iou": float(iou),
        "on_new": on_new,
        "on_old": on_old,
        "old_class": top,
        "share": float(mine.sum() / max(int(valid.sum()), 1)),
        "iou_min": float(iou_min),
    }


def count_outcomes(outcomes) -> dict:
    """``{"found": n, "missed": n, "moved": n, "objects": total}`` of :func:`pseudo_label_outcome` results."""
    counts = {k: 0 for k in OUTCOMES}
    for o in outcomes:
        counts[o["outcome"]] += 1
    return {**counts, "objects": sum(counts.values())}


def _pct(v) -> float | None:
    return None if v is None or np.isnan(v) else round(float(v) * 100, 2)


def best_threshold(sweep: list[dict], source: str = "pcm") -> tuple[float, float]:
    """``(threshold, mIoU)`` with the highest mIoU among ``sweep`` rows of ``source``.

    Raises:
        ValueError: no row of that source.
    """
    rows = [r for r in sweep if r["source"] == source and r["miou"] is not None]
    if not rows:
        raise ValueError(f"no threshold-sweep row for source {source!r}")
    best = max(rows, key=lambda r: r["miou"])
    return best["threshold"], best["miou"]
