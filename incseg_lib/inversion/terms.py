"""The terms of the DeepInversion objective (module :mod:`incseg_lib.inversion`): BatchNorm statistics,
image priors, pooled class targets (LSE, scale-aware), competition."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.common import IGNORE_INDEX
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD


# ---------------------------------------------------------------------- loss terms
class BNStatistics:
    """Forward hooks on every ``BatchNorm2d`` of a model that measure DeepInversion's feature term.

    After a forward pass, :attr:`losses` holds for each layer ``l`` (model order)
    ``R_l = ||mu_l - running_mean_l||_2 + ||var_l - running_var_l||_2`` with ``mu_l``, ``var_l``
    the per-channel mean and biased variance of the layer's input over batch and pixels
    (NVlabs ``DeepInversionFeatureHook``; Yin et al. Eq. 4). Layers whose input has fewer than 2
    values per channel (a 1x1 map with batch 1) have no variance and are skipped.

    Use as a context manager; the hooks are removed on exit, also when an exception leaves the block::

        with BNStatistics(model) as bn:
            model(x)
            loss = bn.loss(first_multiplier=10)
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        self.handles: list = []
        self.losses: list[torch.Tensor | None] = [None] * len(self.layers)

    def __enter__(self) -> BNStatistics:
        for k, layer in enumerate(self.layers):
            self.handles.append(layer.register_forward_hook(self._hook(k)))
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _hook(self, k: int):
        def hook(module, inputs, output):
            x = inputs[0].float()
            if x.shape[0] * x.shape[2] * x.shape[3] < 2:
                self.losses[k] = None
                return
            mean = x.mean((0, 2, 3))
            var = x.transpose(0, 1).reshape(x.shape[1], -1).var(1, unbiased=False)
            self.losses[k] = torch.linalg.vector_norm(module.running_var - var) + torch.linalg.vector_norm(
                module.running_mean - mean
            )

        return hook

    def loss(self, first_multiplier: float = 10.0) -> torch.Tensor:
        """``sum_l w_l R_l`` of the last forward pass (``w_0 = first_multiplier``, else 1).

        Raises:
            RuntimeError: no forward pass ran inside the block.
        """
        terms = [(first_multiplier if k == 0 else 1.0) * v for k, v in enumerate(self.losses) if v is not None]
        if not terms:
            raise RuntimeError("no BatchNorm statistics recorded: run the model inside the BNStatistics block")
        return torch.stack(terms).sum()


def image_priors(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Total variation of ``x`` ``(B, C, H, W)``: ``(TV_1, TV_2)`` (NVlabs ``get_image_prior_losses``).

    Differences along x, y and both diagonals; ``TV_2`` = sum of the four differences' Frobenius
    norms, ``TV_1`` = sum of their mean absolute values. Both are 0 for a constant image.
    """
    d = [
        x[:, :, :, :-1] - x[:, :, :, 1:],
        x[:, :, :-1, :] - x[:, :, 1:, :],
        x[:, :, 1:, :-1] - x[:, :, :-1, 1:],
        x[:, :, :-1, :-1] - x[:, :, 1:, 1:],
    ]
    tv1 = sum(di.abs().mean() for di in d)
    tv2 = sum(torch.linalg.vector_norm(di) for di in d)
    return tv1, tv2


def lse_pool(logits: torch.Tensor, r: float) -> torch.Tensor:
    """Log-sum-exp pooling (Pinheiro & Collobert, CVPR 2015, Eq. 2): ``(B, C, H, W)`` -> ``(B, C)``.

    ``s_c = 1/r * log(1/HW * sum_hw exp(r * z_chw))``, computed stably (``logsumexp``). Lies between
    the mean (r -> 0) and the max (r -> inf) of the class's logits.
    """
    flat = logits.flatten(2)
    flat = flat.float() if flat.dtype in (torch.float16, torch.bfloat16) else flat
    return (torch.logsumexp(r * flat, dim=2) - math.log(flat.shape[2])) / r


def topk_pixels(scales: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """``k = ceil(s * H * W)`` per image (at least 1, at most all pixels) for target fractions ``scales`` ``(B,)``."""
    return torch.ceil(scales.float() * num_pixels).long().clamp(1, num_pixels)


def scale_aware_pool(logits: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The class scores of SegInversion's Scale-Aware Aggregation, as read here: for each image ``b`` and
    class, the mean of its ``k_b`` highest pixel logits, ``k_b`` = :func:`topk_pixels` of the image's
    target fraction ``s_b``: ``(B, K, H, W)`` -> ``(B, K)``.

    "Half-Real Half-Fake Distillation for Class-Incremental Semantic Segmentation" (Huang et al.,
    arXiv 2104.00875) introduces SegInversion with a Scale-Aware Aggregation module "for controlling
    the scale (the number of pixels) of synthetic objects"; its full text is not available here, so
    this is one reading of that abstract: a top-k mean is high only when at least ``k`` pixels score
    the class, so the object cannot shrink to a few pixels (which log-sum-exp pooling allows), and
    :func:`outside_term` keeps it from flooding the image.
    """
    flat = logits.flatten(2).float()  # (B, K, HW)
    k = topk_pixels(scales, flat.shape[2])
    top = flat.sort(dim=2, descending=True).values
    inside = (torch.arange(flat.shape[2], device=flat.device)[None, :] < k[:, None]).float()  # (B, HW)
    return (top * inside[:, None]).sum(2) / k[:, None].float()


def _target_log_prob(logits: torch.Tensor, target: torch.Tensor, scales: torch.Tensor) -> tuple:
    """``(log p_c, inside)``: ``(B, HW)`` the log softmax probability (over all outputs, background
    included) of each image's target class, and the ``(B, HW)`` {0, 1} mask of the ``k_b``
    (:func:`topk_pixels`) pixels where it is highest."""
    log_p = torch.log_softmax(logits.float(), dim=1).flatten(2)  # (B, C, HW)
    lp_c = log_p.gather(1, target.view(-1, 1, 1).expand(-1, 1, log_p.shape[2]))[:, 0]  # (B, HW)
    k = topk_pixels(scales, lp_c.shape[1])
    ranks = lp_c.argsort(dim=1, descending=True).argsort(dim=1)  # each pixel's rank for its class
    return lp_c, (ranks < k[:, None]).float()


def outside_term(logits: torch.Tensor, target: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The scale-aware target's term against flooding: outside the ``k_b`` pixels that score image
    ``b``'s target class highest, ``-log(1 - p_c)`` with ``p_c`` the old model's softmax probability of
    that class over all its outputs (background included), averaged over those pixels and the images.
    It is zero where the outside pixels already belong to other outputs, and grows where the class
    floods them.

    Args:
        logits: ``(B, C, H, W)`` the old model's logits; target: ``(B,)`` output index of each image's
            target class; scales: ``(B,)`` target fractions.
    """
    return _outside(*_target_log_prob(logits, target, scales))


def _outside(lp_c: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    outside = 1.0 - inside
    nll = -torch.log1p(-lp_c.exp().clamp(max=1 - 1e-6))
    return ((nll * outside).sum(1) / outside.sum(1).clamp(min=1)).mean()


def inside_term(logits: torch.Tensor, target: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The scale-aware target's term against shrinking: over the ``k_b`` pixels that score image ``b``'s
    target class highest, ``-log p_c`` (softmax over all the old model's outputs, background
    included), averaged over those pixels and the images; arguments as :func:`outside_term`.

    Why (our addition to the reading of the abstract): the top-k mean of :func:`scale_aware_pool`
    enters a cross-entropy over the *foreground* classes only (NVlabs' class target), so its ``k``
    pixels may score the class above the other objects and still be background for the old model;
    the pseudo-labels, an argmax over all outputs, then hold a much smaller object than asked (on the
    demo, 0-8 % of the image for targets of 5-40 %). This term asks those ``k`` pixels to *be* the
    class; with :func:`outside_term` the pair is a per-pixel binary cross-entropy of ``p_c`` against
    the mask of the class's ``k`` best pixels. Zero when those pixels are already the class.
    """
    return _inside(*_target_log_prob(logits, target, scales))


def _inside(lp_c: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    return ((-lp_c * inside).sum(1) / inside.sum(1).clamp(min=1)).mean()


def scale_aware_terms(logits: torch.Tensor, target: torch.Tensor, scales: torch.Tensor) -> tuple:
    """``(outside_term, inside_term)`` of :func:`outside_term` and :func:`inside_term` from one ranking of
    the pixels (what a synthesis iteration computes; the same values as the two calls)."""
    ranked = _target_log_prob(logits, target, scales)
    return _outside(*ranked), _inside(*ranked)


def scale_aware_score(
    logits: torch.Tensor, target: int, scale: float, outside_weight: float = 1.0, inside_weight: float = 10.0
) -> torch.Tensor:
    """One image's scale-aware score of class ``target`` (``logits`` ``(C, H, W)``): the top-k mean of its
    logits minus ``outside_weight`` x :func:`outside_term` and ``inside_weight`` x :func:`inside_term`;
    highest when about ``scale`` of the pixels are the class."""
    s, t = torch.tensor([float(scale)]), torch.tensor([target])
    pooled = scale_aware_pool(logits[None, [target]], s)[0, 0]
    return pooled - outside_weight * outside_term(logits[None], t, s) - inside_weight * inside_term(logits[None], t, s)


def object_sizes(masks, ignore: int = IGNORE_INDEX) -> np.ndarray:
    """The fraction of its image's pixels each object covers: one value per (image, foreground class
    present) of ``masks`` (``(H, W)`` class-id arrays; background 0 and ``ignore`` are not objects)."""
    sizes = []
    for m in masks:
        m = np.asarray(m)
        ids, counts = np.unique(m, return_counts=True)
        sizes += [c / m.size for i, c in zip(ids.tolist(), counts.tolist()) if i not in (0, ignore)]
    return np.asarray(sizes, dtype=float)


def measured_scales(sizes: np.ndarray) -> tuple[float, ...]:
    """Small, medium and large target fractions: the quartiles (25, 50, 75 %) of object ``sizes``.

    Raises:
        ValueError: no object to measure.
    """
    if not len(sizes):
        raise ValueError("no object in the masks to measure scales from")
    return tuple(round(float(q), 4) for q in np.quantile(sizes, (0.25, 0.5, 0.75)))


def class_loss(pooled: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Image-level loss on pooled foreground logits.

    Args:
        pooled: ``(B, K)`` pooled logits of the K old foreground outputs (background excluded).
        targets: ``(B, K)`` {0, 1}: the classes each image must show.

    Returns:
        Cross-entropy of the softmax over the K classes when every image has exactly one target
        (NVlabs' ``nn.CrossEntropyLoss`` on class logits), else multi-label BCE with logits
        averaged over images and classes.
    """
    t = targets.float()
    if bool((t.sum(1) == 1).all()):
        return F.cross_entropy(pooled, t.argmax(1))
    return F.binary_cross_entropy_with_logits(pooled, t)


def competition(old_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 3.0) -> torch.Tensor:
    """Adaptive DeepInversion's competition term ``1 - JS(P_student || P_old)`` per pixel.

    NVlabs ``get_images``: softmax at temperature 3 of both outputs, probabilities clamped to
    [0.01, 0.99], ``JS = (KL(M||P) + KL(M||Q)) / 2`` (``KLDivLoss(batchmean)``, here over pixels),
    the term ``1 - clamp(JS, 0, 1)``: minimising it makes the two models *disagree*.

    Args:
        old_logits: ``(B, C, H, W)`` logits of the old model (its C outputs).
        student_logits: ``(B, C', H, W)``, C' >= C; only its first C outputs are compared.
    """
    c = old_logits.shape[1]
    p = F.softmax(student_logits[:, :c].float() / temperature, 1).permute(0, 2, 3, 1).reshape(-1, c)
    q = F.softmax(old_logits.float() / temperature, 1).permute(0, 2, 3, 1).reshape(-1, c)
    m = (0.5 * (p + q)).clamp(0.01, 0.99)
    p, q = p.clamp(0.01, 0.99), q.clamp(0.01, 0.99)
    kl = lambda a: F.kl_div(a.log(), m, reduction="batchmean")  # noqa: E731  KL(m || a)
    return 1.0 - torch.clamp(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0)


def input_range(device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)`` ``(1, 3, 1, 1)``: the normalised values of pixel 0 and 1 (NVlabs ``clip``)."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return -mean / std, (1 - mean) / std


def cosine_lr(base: float, it: int, total: int, warmup: int) -> float:
    """NVlabs ``lr_cosine_policy``: linear warm-up over ``warmup`` iterations, then cosine to 0."""
    if it < warmup:
        return base * (it + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (it - warmup) / max(total - warmup, 1))) * base
