"""Segmentation losses.

Every loss is averaged over the non-ignored pixels (label != 255) of the batch, so its scale
does not depend on how much void a crop holds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data.common import IGNORE_INDEX


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Pixel-wise cross-entropy ``-1/|P| sum_{i in P} log softmax(logits_i)[y_i]``, P = labelled pixels.

    Args:
        logits: ``(B, C, H, W)`` float.
        target: ``(B, H, W)`` int64, values ``0..C-1`` or ``ignore_index``.

    Returns:
        Scalar tensor; 0 (with a gradient path) if no pixel is labelled.
    """
    if (target != ignore_index).any():
        return F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="mean")
    return logits.sum() * 0.0


def bisenet_loss(outputs: dict, target: torch.Tensor, criterion=cross_entropy, aux_weight: float = 1.0) -> dict:
    """BiSeNet's joint loss (Yu et al. ECCV 2018, Eq. 2-3): ``l(out) + aux_weight * sum_k l(aux_k)``.

    Args:
        outputs: the model's dict (``out``, and ``aux`` in training mode).
        target: ``(B, H, W)`` labels.
        criterion: ``(logits, target) -> scalar`` classification loss (e.g. :func:`cross_entropy`).

    Returns:
        ``{"loss": total, "principal": ..., "aux": ...}`` (scalar tensors).
    """
    principal = criterion(outputs["out"], target)
    aux = sum((criterion(a, target) for a in outputs.get("aux", [])), torch.zeros((), device=target.device))
    return {"loss": principal + aux_weight * aux, "principal": principal, "aux": aux}
