"""Segmentation metrics from a streaming confusion matrix.

Accumulate per batch, reduce once (as mmsegmentation's ``IoUMetric``). ``ignore_index`` pixels
(255) are left out. A class absent from both prediction and ground truth has IoU ``NaN`` and is
left out of every mean, not counted as 0. For incremental tasks, MiB's report (Cermelli et al.
CVPR 2020, Tables 1-3): "old" = classes of step 0 (background included), "new" = classes added
after step 0, "all" = every class seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class ConfusionMatrix:
    """``(C, C)`` int64 counts, rows = ground truth, columns = prediction.

    Args:
        num_classes: C, classes ``0..C-1``.
        ignore_index: label value skipped (255).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred: ``(B, H, W)`` or ``(N,)`` int class ids in ``0..C-1``.
            target: same shape, ids in ``0..C-1`` or ``ignore_index``.

        Raises:
            ValueError: shapes differ, or a target value is neither a class id nor ``ignore_index``.
        """
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        C = self.num_classes
        t = target.reshape(-1).long()
        p = pred.reshape(-1).long()
        keep = t != self.ignore_index
        t, p = t[keep], p[keep]
        if t.numel() and (t.min() < 0 or t.max() >= C):
            raise ValueError(
                f"target holds values outside 0..{C - 1} and {self.ignore_index}: "
                f"{sorted(set(t[(t < 0) | (t >= C)].unique().tolist()))}"
            )
        counts = torch.bincount(t * C + p, minlength=C * C)
        self.mat += counts.reshape(C, C).cpu()

    def reset(self) -> None:
        self.mat.zero_()

    def merge(self, other: ConfusionMatrix) -> None:
        self.mat += other.mat

    # ------------------------------------------------------------------ reductions
    def iou(self) -> np.ndarray:
        """Per-class IoU ``TP / (TP + FP + FN)``, ``(C,)`` float in [0, 1], NaN where the class
        is absent from both ground truth and prediction."""
        m = self.mat.double()
        tp = m.diag()
        denom = m.sum(0) + m.sum(1) - tp
        iou = torch.where(denom > 0, tp / denom.clamp(min=1), torch.full_like(tp, float("nan")))
        return iou.numpy()

    def miou(self, classes: Sequence[int] | None = None) -> float:
        """Mean IoU over ``classes`` (all when None), NaN classes left out; NaN if none is left."""
        iou = self.iou()
        if classes is not None:
            iou = iou[list(classes)] if len(classes) else np.array([])
        iou = iou[~np.isnan(iou)]
        return float(iou.mean()) if iou.size else float("nan")

    def pixel_accuracy(self) -> float:
        """Correct pixels / labelled pixels, in [0, 1]."""
        total = self.mat.sum().item()
        return float(self.mat.diag().sum().item() / total) if total else float("nan")

    def class_accuracy(self) -> np.ndarray:
        """Per-class recall ``TP / (TP + FN)``, NaN for classes absent from the ground truth."""
        m = self.mat.double()
        gt = m.sum(1)
        return torch.where(gt > 0, m.diag() / gt.clamp(min=1), torch.full_like(gt, float("nan"))).numpy()

    def summary(
        self,
        class_names: Sequence[str],
        old_classes: Sequence[int] | None = None,
        new_classes: Sequence[int] | None = None,
    ) -> dict:
        """A JSON-able dict: ``iou`` by class name, ``miou_all``, ``miou_old``, ``miou_new``, ``pixel_acc``.

        ``old_classes``/``new_classes`` are indices into the matrix; ``miou_new`` is NaN (stored as
        None) when there are no new classes (offline or step 0).
        """
        if len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for {self.num_classes} classes")
        iou = self.iou()
        return {
            "iou": {n: _num(v) for n, v in zip(class_names, iou)},
            "miou_all": _num(self.miou()),
            "miou_old": _num(self.miou(old_classes)) if old_classes is not None else _num(self.miou()),
            "miou_new": _num(self.miou(new_classes)) if new_classes else None,
            "pixel_acc": _num(self.pixel_accuracy()),
        }


def _num(v: float) -> float | None:
    return None if v is None or np.isnan(v) else round(float(v), 6)


def harmonic_iou(old: float | None, new: float | None) -> float | None:
    """hIoU, the harmonic mean of old- and new-class mIoU: ``2 old new / (old + new)``.

    The single number DKD (Baek et al., NeurIPS 2022) and later class-incremental segmentation
    papers report beside old / new / all: it is high only when a method both keeps the old classes
    and learns the new ones (all-class mIoU is dominated by the old ones, 16 of 21 on VOC 15-1).

    Args:
        old, new: mIoU in [0, 1] (or in %; the result has the same unit); None when not measured.

    Returns:
        hIoU in the unit of its inputs; 0 when both are 0; None when either is None or NaN.
    """
    if old is None or new is None or old != old or new != new:
        return None
    return 0.0 if old + new == 0 else 2 * old * new / (old + new)
