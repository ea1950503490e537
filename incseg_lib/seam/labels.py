"""From image-level labels to pseudo-labels: the training images with their class lists, CAM scores at
several scales, thresholded labels, and fusion with the old model's prediction."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.common import SegmentationDataset
from .network import SeamNet
from .options import SeamConfig


# ---------------------------------------------------------------------- training data
class ImageLabelDataset(torch.utils.data.Dataset):
    """Training crops with image-level labels: ``(image (3,H,W) float, labels (K,) float)``.

    Args:
        images: a :class:`SegmentationDataset` of the step's images with training transforms (its
            masks are cropped along and then dropped).
        labels: ``(N, K)`` bool, which of the K classes each *whole* image contains (as an
            annotator would say; a crop may have cut an object out, as in SEAM's random crops).
    """

    def __init__(self, images: SegmentationDataset, labels: np.ndarray):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} image-level labels")
        self.images, self.labels = images, torch.as_tensor(np.asarray(labels), dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image, _ = self.images[i]
        return image, self.labels[i]


def image_labels(presence: np.ndarray, classes: list[int]) -> np.ndarray:
    """``(N, K)`` bool image-level labels of ``classes`` (dataset ids) from ``(N, C)`` class presence."""
    return np.asarray(presence)[:, classes].astype(bool)


# ---------------------------------------------------------------------- inference
@torch.no_grad()
def cam_scores(
    model: SeamNet,
    image: torch.Tensor,
    labels: torch.Tensor,
    config: SeamConfig,
    sources: tuple[str, ...] = ("pcm", "cam"),
) -> dict[str, torch.Tensor]:
    """Multi-scale, flipped, normalised CAMs of one image (SEAM ``infer_SEAM.py``).

    For every scale (and its flip) the foreground maps are upsampled to the image size, masked by
    the image-level label and summed; negative sums are set to 0 and each map is min-max normalised
    to [0, 1] (values within 1e-5 of the minimum set to 0).

    Args:
        model: a trained :class:`SeamNet` (put in eval mode here).
        image: ``(3, H, W)`` normalised.
        labels: ``(K,)`` in {0, 1}.
        sources: ``pcm`` (the refined map SEAM's inference uses) and/or ``cam``.

    Returns:
        ``{source: (K, H, W) float in [0, 1]}``; classes absent from ``labels`` are 0.
    """
    model.eval()
    H, W = image.shape[-2:]
    key = {"pcm": "cam_rv", "cam": "cam"}
    sums = {s: torch.zeros(model.num_foreground, H, W, device=image.device) for s in sources}
    mask = labels.float().to(image.device)[:, None, None]
    for scale in config.scales:
        size = (max(int(round(H * scale)), 8), max(int(round(W * scale)), 8))
        x = F.interpolate(image[None], size, mode="bilinear", align_corners=False)
        batch = torch.cat([x, x.flip(-1)]) if config.flip else x
        out = model(batch)
        for s in sources:
            maps = F.interpolate(out[key[s]][:, 1:].float(), (H, W), mode="bilinear", align_corners=False)
            if config.flip:
                maps = torch.stack([maps[0], maps[1].flip(-1)])
            sums[s] += maps.sum(0) * mask
    result = {}
    for s, m in sums.items():
        m = m.clamp(min=0)
        mx = m.flatten(1).max(1).values[:, None, None]
        mn = m.flatten(1).min(1).values[:, None, None]
        m = torch.where(m < mn + 1e-5, torch.zeros_like(m), (m - mn - 1e-5) / (mx - mn + 1e-5))
        result[s] = m * mask
    return result


def scores_to_labels(
    scores: torch.Tensor, labels: torch.Tensor, class_ids: list[int], threshold: float
) -> torch.Tensor:
    """Pseudo-label from normalised CAMs: argmax over [``threshold``, CAMs of the labelled classes].

    Args:
        scores: ``(K, H, W)`` in [0, 1]; labels: ``(K,)`` in {0, 1}; class_ids: the K dataset ids.
        threshold: the constant background score (SEAM: 0.26).

    Returns:
        ``(H, W)`` int64 dataset ids: 0 (background) or a class of the image-level label.
    """
    present = torch.nonzero(labels > 0).flatten()
    out = torch.zeros(scores.shape[-2:], dtype=torch.long, device=scores.device)
    if len(present) == 0:
        return out
    stack = torch.cat([torch.full_like(scores[:1], threshold), scores[present]])
    arg = stack.argmax(0)
    ids = torch.tensor([0] + [class_ids[i] for i in present.tolist()], device=scores.device)
    return ids[arg]


def fuse_old(pseudo: torch.Tensor, old_prediction: torch.Tensor, old_classes: list[int]) -> torch.Tensor:
    """Old-model fusion, WILSON's rule as a hard label: background only where both say background.

    WILSON (fcdl94/WILSON ``train.py``, weakly branch) trains on ``[sigmoid(old logits), pseudo-labels
    of the new classes]`` with the background target ``min(old background, pseudo background)``. As a
    hard label: a pixel the pseudo-label calls background takes the old model's class when that is an
    old foreground class; a pixel the pseudo-label gives to a new class keeps it (the old model cannot
    know the new classes and calls them the most similar old class).

    Args:
        pseudo: ``(H, W)`` dataset ids from :func:`scores_to_labels`.
        old_prediction: ``(H, W)`` dataset ids predicted by the step t-1 model.
        old_classes: the old classes (dataset ids; background ignored).

    Returns:
        ``(H, W)`` dataset ids.
    """
    fg = [c for c in old_classes if c != 0]
    if not fg:
        return pseudo
    old = torch.isin(old_prediction, torch.tensor(fg, device=old_prediction.device)) & (pseudo == 0)
    return torch.where(old, old_prediction, pseudo)


DEFAULT_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))
