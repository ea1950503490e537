"""PLOP's pieces (Douillard et al., "PLOP: Learning without Forgetting for Continual Semantic
Segmentation", CVPR 2021), as its official code runs them (arthurdouillard/CVPR2021_PLOP).

- **Local POD** (:func:`local_pod`): each intermediate map of the old and the new model squared,
  width- and height-pooled over a 1x1, 2x2 and 4x4 grid of cells, concatenated; the per-image L2
  distance between the old and new embeddings, averaged over the batch, weighted per map and by
  ``sqrt(classes seen / new classes)``, summed over the maps and divided by their number
  (``train.py`` ``features_distillation``, ``_local_pod``).
- **Pseudo-labels by entropy** (:func:`entropy_thresholds`, :func:`pseudo_label`): before a step,
  per old class, the median of the old model's entropy over background-labelled pixels the old
  model assigns to that class; during the step a background pixel takes the old model's class
  where its entropy is below that class's threshold, else it is ignored, and each image's
  cross-entropy is weighted by the fraction of its background pixels so labelled (``train.py``
  ``find_median``, ``Trainer.train``).

MiB's classifier initialisation and plain cross-entropy complete the method
(:func:`incseg_lib.methods.get_method` ``"plop"``; ``argparser.py``, ``--method PLOP``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .data.common import IGNORE_INDEX

#: PLOP's weights (``argparser.py``, ``--method PLOP``): ``pod_factor`` for the feature maps, the
#: ``pod_options`` "after" factor for the logits.
POD_FEATURE_WEIGHT = 0.01
POD_LOGITS_WEIGHT = 0.0005
POD_SCALES = (1, 2, 4)  # ``spp_scales``
ENTROPY_THRESHOLD_FLOOR = 0.001  # ``--threshold``
ENTROPY_BINS = 100  # ``find_median``'s histogram


def pod_embedding(x: torch.Tensor, scales: tuple[int, ...] = POD_SCALES) -> torch.Tensor:
    """Local POD embedding of a map ``(B, C, H, W)``: squared, then for each scale ``s`` split into an
    ``s x s`` grid of cells, each cell pooled over its width (``(B, C, h)``) and over its height
    (``(B, C, w)``), all concatenated into ``(B, D)`` (``train.py`` ``_local_pod``, with PLOP's
    ``pod_prepro="pow"`` and no normalisation).

    PLOP cuts cells of ``W // s`` pixels in both directions, so a map that is not square, or whose
    side is not a multiple of ``s``, silently loses rows or columns; here the rows and the columns
    are each split into ``s`` parts covering the whole map (``torch.tensor_split``), which is the same
    on the square multiples PLOP meets (512 crops). A side shorter than ``s`` pixels (BiSeNet's 1/32
    map of a 64 px crop is 2 x 2) is split into one part per pixel instead of empty cells.
    """
    x = x.float().pow(2)
    emb = []
    for s in scales:
        for rows in torch.tensor_split(x, min(s, x.shape[2]), dim=2):
            for cell in torch.tensor_split(rows, min(s, x.shape[3]), dim=3):
                emb.append(cell.mean(dim=3).flatten(1))  # width-pooled: one value per row and channel
                emb.append(cell.mean(dim=2).flatten(1))  # height-pooled: one per column and channel
    return torch.cat(emb, dim=1)


def merge_new_into_background(logits: torch.Tensor, num_old: int) -> torch.Tensor:
    """The new model's logits ``(B, C, H, W)`` on the old model's outputs: the new classes' logits
    summed into background's, the old classes kept (``features_distillation``,
    ``handle_extra_channels="sum"``): ``(B, num_old, H, W)``."""
    merged = logits[:, :num_old].clone()
    merged[:, 0] = logits[:, 0] + logits[:, num_old:].sum(dim=1)
    return merged


def local_pod(
    old_maps: list[torch.Tensor],
    new_maps: list[torch.Tensor],
    num_old: int,
    num_seen: int,
    num_new: int,
    feature_weight: float = POD_FEATURE_WEIGHT,
    logits_weight: float = POD_LOGITS_WEIGHT,
) -> torch.Tensor:
    """PLOP's Local POD loss between the old and the new model's maps (the last one the logits).

    ``sum_m w_m * sqrt(num_seen / num_new) * mean_b ||e_old(b) - e_new(b)||_2 / M`` with ``e`` the
    :func:`pod_embedding` of map ``m``, ``w_m`` = ``feature_weight`` for the feature maps and
    ``logits_weight`` for the logits (whose new-class channels are merged into background,
    :func:`merge_new_into_background`), M the number of maps (``train.py`` ``features_distillation``:
    ``torch.frobenius_norm(a - b, dim=-1)``, not squared; ``use_pod_schedule``).

    Args:
        old_maps, new_maps: lists of ``(B, C_m, H_m, W_m)``; the last is the logits, ``(B, num_old,
            h, w)`` for the old model and ``(B, num_seen, h, w)`` for the new.
        num_old: outputs of the old model (background included).
        num_seen: classes the new model knows (background included); num_new: those added now.

    Returns:
        Scalar tensor (gradients flow into ``new_maps``).

    Raises:
        ValueError: the two lists differ in length.
    """
    if len(old_maps) != len(new_maps):
        raise ValueError(f"POD needs the same maps of both models, got {len(old_maps)} and {len(new_maps)}")
    schedule = math.sqrt(num_seen / num_new)
    total = new_maps[0].new_zeros(())
    last = len(new_maps) - 1
    for i, (a, b) in enumerate(zip(old_maps, new_maps)):
        if i == last:
            b = merge_new_into_background(b, num_old)
        dist = torch.linalg.vector_norm(pod_embedding(a.detach()) - pod_embedding(b), dim=-1)
        total = total + (logits_weight if i == last else feature_weight) * schedule * dist.mean()
    return total / len(new_maps)


def plop_entropy(probs: torch.Tensor, num_seen: int) -> torch.Tensor:
    """The entropy PLOP thresholds: ``-mean_c(p_c log p_c) / log C_old / log num_seen`` per pixel.

    PLOP's ``entropy`` (``train.py``) takes the *mean* over the old model's ``C_old`` outputs and
    divides by ``log C_old``; ``find_median`` and ``Trainer.train`` then divide by ``log`` of the
    classes seen (new ones included). Both thresholds and comparisons use this same scale, so it is
    kept as the code has it (about ``[0, 0.02]`` for VOC 15-1), which matters only against the
    floor of 0.001.

    Args:
        probs: ``(B, C_old, H, W)`` the old model's softmax.
        num_seen: classes the new model knows (background included).

    Returns:
        ``(B, H, W)``.
    """
    c_old = probs.shape[1]
    h = -(probs * torch.log(probs + 1e-8)).mean(dim=1) / math.log(c_old + 1e-8)
    return h / math.log(num_seen)


def entropy_thresholds(
    entropies: torch.Tensor,
    classes: torch.Tensor,
    num_old: int,
    floor: float = ENTROPY_THRESHOLD_FLOOR,
    bins: int = ENTROPY_BINS,
) -> torch.Tensor:
    """Per old class, the median of ``entropies`` (values in [0, 1)) over the pixels the old model
    assigns to it, read from a ``bins``-bin histogram with linear interpolation inside the bin, and at
    least ``floor`` (``train.py`` ``find_median``).

    PLOP's ``find_median`` walks the histogram adding the *bin index* to its running count instead of
    the bin's count (``running_sum += lower_border * nb_bins``), so it stops at the first bin that
    alone holds half the pixels and, when none does, returns inf, -inf or NaN; the median it means,
    the bin where the cumulative count passes half, is computed here.

    Args:
        entropies: ``(N,)`` :func:`plop_entropy` of the background-labelled pixels.
        classes: ``(N,)`` the old model's class (output index) of each.
        num_old: outputs of the old model.

    Returns:
        ``(num_old,)`` float thresholds; a class with no pixel gets ``floor``.
    """
    hist = torch.zeros(num_old, bins, dtype=torch.float64)
    b = (entropies.double() * bins).long().clamp(0, bins - 1)
    hist.index_put_((classes.long(), b), torch.ones_like(b, dtype=torch.float64), accumulate=True)
    thresholds = torch.full((num_old,), float(floor), dtype=torch.float64)
    for c in range(num_old):
        total = hist[c].sum()
        if total == 0:
            continue
        cum = torch.cumsum(hist[c], 0)
        k = int(torch.searchsorted(cum, total / 2))  # first bin whose cumulative count reaches half
        before = cum[k - 1] if k > 0 else torch.zeros((), dtype=torch.float64)
        median = (k + (total / 2 - before) / hist[c, k]) / bins
        thresholds[c] = max(float(median), floor)
    return thresholds.float()


def pseudo_label(
    target: torch.Tensor, old_logits: torch.Tensor, thresholds: torch.Tensor, num_seen: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """PLOP's pseudo-labels and per-image weights (``train.py`` ``Trainer.train``, ``pseudo="entropy"``,
    ``classif_adaptive_factor``).

    A background-labelled pixel takes the old model's class where its :func:`plop_entropy` is below
    that class's threshold (the class may be background itself), else it is ignored (255); other
    pixels keep their label. Each image's weight is the fraction of its background pixels that got
    a confident label (0 for an image without background).

    Args:
        target: ``(B, H, W)`` int64 labels of the step (0 background, 255 ignored).
        old_logits: ``(B, C_old, H, W)`` the old model's logits at the same resolution.
        thresholds: ``(C_old,)`` from :func:`entropy_thresholds`.
        num_seen: classes the new model knows.

    Returns:
        ``(labels (B, H, W) int64, weights (B,) float)``.
    """
    probs = torch.softmax(old_logits.float(), dim=1)
    pred = probs.argmax(dim=1)
    confident = plop_entropy(probs, num_seen) < thresholds.to(probs.device)[pred]
    background = target == 0
    labels = target.clone()
    labels[background & ~confident] = IGNORE_INDEX
    labels[background & confident] = pred[background & confident]
    num = (background & confident).float().sum(dim=(1, 2))
    den = background.float().sum(dim=(1, 2))
    return labels, num / (den + 1e-6)


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with a weight per image: ``sum_b w_b sum_{i in P_b} -log p(i, y_i) / |P|`` over the
    labelled pixels P (PLOP scales each image's per-pixel loss by its ``classif_adaptive_factor``;
    its ``.mean()`` then also counts the ignored pixels, which this library leaves out of every
    classification loss: :mod:`incseg_lib.losses`).

    Args:
        logits: ``(B, C, H, W)``; target: ``(B, H, W)`` with 255 ignored; weights: ``(B,)``.
    """
    ce = F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="none")  # (B, H, W)
    labelled = (target != IGNORE_INDEX).float()
    return (ce * weights[:, None, None]).sum() / labelled.sum().clamp(min=1)
