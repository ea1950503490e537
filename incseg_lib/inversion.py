"""DeepInversion for segmentation: synthesise images of the old classes from the old model.

When no old image may be stored, the old model itself can be *inverted*: starting from noise, a
batch of images is optimised until the frozen model recognises chosen old classes in it, while
the statistics of its features match what the model saw in training (Yin et al., "Dreaming to
Distill: Data-free Knowledge Transfer via DeepInversion", CVPR 2020). For a segmentation model
the class target is image-level, on pooled segmentation logits (the idea of inverting a
segmenter with image-level targets, as in Half-Real Half-Fake distillation / SegInversion).

Objective for a batch ``x`` (``(B, 3, H, W)`` in the model's ImageNet-normalised input space,
Yin et al. Eq. 3-5 and NVlabs/DeepInversion ``deepinversion.py``, ``DeepInversionClass.get_images``)::

    L(x) = main * L_cls(x) + r_feature * sum_l w_l R_l(x) + tv_l2 * TV_2(x) + tv_l1 * TV_1(x)
           + l2 * mean_b ||x_b||_2 + adi * (1 - JS(old || student))

* ``L_cls``: classification of the log-sum-exp pooled logits of the old *foreground* outputs
  (:func:`lse_pool`; cross-entropy with one class per image, multi-label BCE with several);
  background is never a target, so the images show objects, not empty scenes.
* ``R_l``: :class:`BNStatistics` on every BatchNorm layer, ``||mu_l(x) - mu_l||_2 +
  ||var_l(x) - var_l||_2`` against the running statistics; the first layer weighted
  ``first_bn_multiplier`` (NVlabs: 10), the others 1. The running statistics summarise the
  training images' appearance layer by layer, so matching them should make the images look like
  data rather than adversarial noise (Yin et al.'s argument; :func:`transfer_check` is their test).
* ``TV_2`` / ``TV_1``: :func:`image_priors` (NVlabs ``get_image_prior_losses``).
* ADI (Adaptive DeepInversion, Yin et al. Sec. 3.3; off by default): the Jensen-Shannon divergence
  between the old and the current (student) model's outputs, maximised, so the images fall where
  the student disagrees (:func:`competition`).

Each iteration applies a random jitter (roll) and a random horizontal flip; the image is clamped to
the valid normalised range after each Adam step (NVlabs ``utils.clip``). Schedule: NVlabs'
``setting_id=0`` (multi-resolution: 2k iterations on a 2x average-pooled image, then 1k at full
resolution, Adam betas (0.5, 0.9), learning rate 0.2 with cosine decay after a linear warm-up),
scaled down by :class:`InversionConfig`; by default the half-resolution phase optimises a
half-size image that is upsampled to start the full phase (:attr:`InversionConfig.multires`).
The best iterate of the full-resolution phase is kept (NVlabs meant to keep the best, but its
``best_cost`` is never updated, so it keeps the last).

The seed course project's attempt made replay worse than plain MiB; its flaws and where this module
avoids them: synthetic images not normalised like inputs (here the optimised tensor *is* a
normalised input, clamped to its range, and stored de-normalised); a pooling temperature redrawn
every iteration (here fixed, :attr:`InversionConfig.lse_r`); background drawn as a target (here
only old foreground classes); distillation fed integer labels (here replay uses MiB's unbiased
distillation on the old model's logits, as for exemplars); BN hooks never removed
(:class:`BNStatistics` is a context manager that removes them, also on error); 20k iterations per
class (here a few hundred per *batch* of classes, multi-resolution).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.common import IGNORE_INDEX, DatasetInfo, SegmentationDataset, class_id_lut
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize
from .env import show_progress
from .exemplars import annotated_lut
from .store import atomic_write_png, atomic_write_text, read_manifest

AGGREGATIONS = ("lse", "scale-aware")


@dataclass(frozen=True)
class InversionConfig:
    """How the synthetic memory is made (part of its identity: a change makes a new memory).

    Defaults follow NVlabs/DeepInversion ``imagenet_inversion.py`` (its argparse defaults) unless
    said otherwise.

    Attributes:
        images_per_class: synthetic images per old foreground class (> 0).
        classes_per_image: classes each image is asked to show (1: cross-entropy; more: multi-label
            BCE, the extra classes drawn at random among the other old classes).
        batch_size: images optimised together (BN statistics are batch statistics: >= 2).
        resolution: side of the square images in pixels.
        iterations_low: iterations on the 2x average-pooled image (NVlabs setting 0: 2000).
        iterations_full: iterations at full resolution (NVlabs setting 0: 1000).
        lr: Adam learning rate (NVlabs ``--lr`` 0.2), cosine decay after a warm-up of
            ``warmup`` x the phase's iterations (NVlabs: 100 of 2000 = 0.05).
        r_feature: weight of the BN feature-statistics term (NVlabs ``--r_feature`` 0.05).
        first_bn_multiplier: extra weight of the first BN layer (NVlabs 10).
        tv_l2, tv_l1: total-variation weights (NVlabs 1e-4 and 0).
        l2: weight of the images' L2 norm (NVlabs 1e-5).
        main: weight of the classification term (NVlabs ``main_loss_multiplier`` 1).
        adi: weight of Adaptive DeepInversion's competition term (0 = off; NVlabs uses 0.2 with ADI).
        jitter: random shift each iteration, as a fraction of the side (NVlabs: 30 px at 224).
        flip: random horizontal flips each iteration (NVlabs ``--do_flip``).
        multires: how the half-resolution phase feeds the full one. ``nvlabs``: one full-resolution
            tensor, average-pooled 2x in the first phase (NVlabs ``get_images``); the pooling never
            sees the tensor's within-block detail, so the full phase starts from the initial noise
            there (the BN term jumps ~4x at the switch). ``upsample`` (default, our change): the
            first phase optimises a half-resolution tensor, bilinearly upsampled to start the
            second, which then starts from a smooth image.
        lse_r: temperature ``r`` of log-sum-exp pooling (Pinheiro & Collobert, CVPR 2015, Eq. 2;
            r -> 0 is average pooling, r -> inf max pooling). Fixed: the seed project redrew it at
            every iteration. 5: an object must cover part of the image, not one pixel; our choice.
        confidence: pseudo-labels keep a pixel only if the old model's probability of its argmax
            exceeds this (else 255); 0.5 = the class outweighs all others together; our choice.
        share: fraction of every training batch drawn from the synthetic memory (as exemplars:
            SSUL-M's 0.5).
        replay_labels: what the classification loss sees on replayed synthetic images: ``pseudo``
            (the old model's pseudo-labels, as exemplars' ground truth) or ``none`` (every pixel
            ignored: the images only feed the method's distillation; FT then learns nothing
            from them).
        seed: seed of the noise, jitter, flips and extra classes (each batch seeded on its own, so
            a resumed run makes the same images).
        aggregation: how the class target pools the logits: ``lse`` (log-sum-exp over the image,
            :func:`lse_pool`; says nothing of how much of the image the class covers) or
            ``scale-aware`` (:func:`scale_aware_pool`, :func:`inside_term` and :func:`outside_term`: the class covers
            about a chosen fraction of the pixels, SegInversion's Scale-Aware Aggregation as read
            here).
        scales: with ``scale-aware``, the fractions of the image's pixels the target class should
            cover, given to the images in turn (image ``i`` gets ``scales[i % len(scales)]``); empty:
            the quartiles (25, 50, 75 %) of the old classes' sizes in the step's real training masks
            (:func:`object_sizes`), so the memory covers the sizes the data has.
        outside_weight: with ``scale-aware``, the weight of :func:`outside_term` (our choice: 1,
            the class term's).
        inside_weight: with ``scale-aware``, the weight of :func:`inside_term` (our choice, measured
            by ``benchmarks/scale_control.py`` on the demo's 15 old classes asked for 5/15/40 % of
            the image: median pseudo-labelled size 0/6.5/2.4 % at 0 (the class term alone), 1/9/9 %
            at 1, 6.5/15/29 % at 10, 8/18/40 % at 30; 10 is the closest on the small and medium
            targets without the class term losing its weight against the BN statistics).
    """

    images_per_class: int = 4
    classes_per_image: int = 1
    batch_size: int = 8
    resolution: int = 160
    iterations_low: int = 200
    iterations_full: int = 100
    lr: float = 0.2
    warmup: float = 0.05
    r_feature: float = 0.05
    first_bn_multiplier: float = 10.0
    tv_l2: float = 1e-4
    tv_l1: float = 0.0
    l2: float = 1e-5
    main: float = 1.0
    adi: float = 0.0
    jitter: float = 30 / 224
    multires: str = "upsample"
    flip: bool = True
    lse_r: float = 5.0
    confidence: float = 0.5
    share: float = 0.5
    replay_labels: str = "pseudo"
    seed: int = 0
    aggregation: str = "lse"
    scales: tuple[float, ...] = ()
    outside_weight: float = 1.0
    inside_weight: float = 10.0

    def __post_init__(self):
        checks = [
            ("images_per_class", self.images_per_class >= 1, "a positive number of images"),
            ("classes_per_image", self.classes_per_image >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 2, "at least 2 (BN statistics are batch statistics)"),
            ("resolution", self.resolution >= 32, "at least 32 pixels (the model's stride is 32)"),
            ("iterations_low", self.iterations_low >= 0, ">= 0"),
            ("iterations_full", self.iterations_full >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("warmup", 0 <= self.warmup < 1, "in [0, 1)"),
            ("jitter", 0 <= self.jitter < 0.5, "a fraction of the side in [0, 0.5)"),
            ("lse_r", self.lse_r > 0, "> 0"),
            ("confidence", 0 <= self.confidence < 1, "in [0, 1)"),
            ("share", 0 < self.share < 1, "in (0, 1) (a fraction of each batch)"),
            ("multires", self.multires in ("upsample", "nvlabs"), "'upsample' or 'nvlabs'"),
            ("replay_labels", self.replay_labels in ("pseudo", "none"), "'pseudo' or 'none'"),
            ("aggregation", self.aggregation in AGGREGATIONS, " or ".join(map(repr, AGGREGATIONS))),
            ("scales", all(0 < float(v) < 1 for v in self.scales), "fractions of the image in (0, 1)"),
            ("outside_weight", self.outside_weight >= 0, ">= 0"),
            ("inside_weight", self.inside_weight >= 0, ">= 0"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"InversionConfig.{name}={getattr(self, name)!r}; it must be {what}")
        for name in ("r_feature", "first_bn_multiplier", "tv_l2", "tv_l1", "l2", "main", "adi"):
            if getattr(self, name) < 0:
                raise ValueError(f"InversionConfig.{name}={getattr(self, name)!r}; loss weights must be >= 0")

    @property
    def tag(self) -> str:
        """Short name for tables, e.g. ``di-4pc-200+100it-160px``."""
        t = f"di-{self.images_per_class}pc-{self.iterations_low}+{self.iterations_full}it-{self.resolution}px"
        default = InversionConfig()
        for name in ("r_feature", "tv_l2", "l2", "adi", "share"):
            if getattr(self, name) != getattr(default, name):
                t += f"-{name.replace('_', '')}{getattr(self, name):g}"
        if self.scale_aware:
            t += "-scale" + "".join(f"-{v:g}" for v in self.scales)
            for name in ("outside_weight", "inside_weight"):
                if getattr(self, name) != getattr(default, name):
                    t += f"-{name.split('_')[0]}{getattr(self, name):g}"
        return t + ("-nolabels" if self.replay_labels == "none" else "")

    @property
    def scale_aware(self) -> bool:
        return self.aggregation == "scale-aware"

    def to_dict(self) -> dict:
        """The settings as a dict (part of the memory's key and the run's name). With ``lse`` the
        scale-aware fields are left out, so the keys of LSE memories made before they existed hold."""
        d = asdict(self)
        d["scales"] = [float(v) for v in self.scales]
        if not self.scale_aware:
            for name in ("aggregation", "scales", "outside_weight", "inside_weight"):
                d.pop(name)
        return d


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


# ---------------------------------------------------------------------- synthesis
@dataclass
class SynthesisResult:
    """What :func:`synthesize` returns.

    Attributes:
        images: ``(B, 3, R, R)`` float, normalised inputs (the best full-resolution iterate).
        history: one dict per iteration: ``iteration``, ``phase`` (``low``/``full``), ``total``,
            ``class``, ``bn``, ``tv_l2``, ``l2``, ``adi``, ``target_prob`` (mean softmax probability of
            the target classes over the pooled foreground logits).
        snapshots: ``{iteration: (B, 3, R, R) float in [0, 1]}`` de-normalised images at the requested
            iterations (full resolution; for pictures of an image emerging from noise).
        seconds: wall time.
    """

    images: torch.Tensor
    history: list[dict]
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    seconds: float = 0.0


def synthesize(
    model: nn.Module,
    targets: torch.Tensor,
    fg_outputs: list[int],
    config: InversionConfig,
    *,
    student: nn.Module | None = None,
    generator: torch.Generator | None = None,
    snapshot_at: tuple[int, ...] = (),
    device=None,
    progress: Callable[[int], None] | None = None,
    scales=None,
) -> SynthesisResult:
    """Optimise a batch of images from noise so that ``model`` sees ``targets`` in them.

    Args:
        model: the frozen old model (put in eval mode here and restored after; its weights get no
            gradient). Its forward returns a dict with ``out`` ``(B, C, H, W)``.
        targets: ``(B, K)`` {0, 1}: classes (columns = ``fg_outputs``) each image must show.
        fg_outputs: the model's output indices of the K old foreground classes.
        config: :class:`InversionConfig`.
        student: the current model, for the ADI term (needed when ``config.adi > 0``).
        generator: seeds the noise, jitter and flips (CPU generator).
        snapshot_at: iterations (1-based, counted over both phases) whose images to keep.
        progress: called with 1 after each iteration (e.g. a tqdm bar's ``update``).
        scales: ``(B,)`` fractions of the image each image's (first) target class should cover;
            needed with ``aggregation="scale-aware"``.

    Returns:
        :class:`SynthesisResult`.

    Raises:
        ValueError: ``targets`` of the wrong shape, ADI asked without a student, or scale-aware
            synthesis without a scale per image.
    """
    if targets.ndim != 2 or targets.shape[1] != len(fg_outputs):
        raise ValueError(
            f"targets must be (B, {len(fg_outputs)}) over the old foreground outputs, got {tuple(targets.shape)}"
        )
    if config.adi > 0 and student is None:
        raise ValueError("InversionConfig.adi > 0 needs the current model: pass student=")
    device = torch.device(device or next(model.parameters()).device)
    g = generator or torch.Generator().manual_seed(config.seed)
    targets = targets.to(device)
    if config.scale_aware:
        if scales is None or len(scales) != len(targets):
            raise ValueError("scale-aware synthesis needs one target scale per image: pass scales=")
        scales = torch.as_tensor(scales, dtype=torch.float32, device=device)
    low, high = input_range(device)
    b, r = targets.shape[0], config.resolution
    upsample = config.multires == "upsample" and config.iterations_low > 0
    side = r // 2 if upsample else r
    x = torch.randn(b, 3, side, side, generator=g).to(device).requires_grad_(True)
    fg = torch.as_tensor(fg_outputs, device=device)
    history, snapshots = [], {}
    best, best_loss = None, float("inf")
    start = time.perf_counter()
    it = 0
    with _frozen(model, student), BNStatistics(model) as bn:
        for phase, factor, n_iter in (("low", 2, config.iterations_low), ("full", 1, config.iterations_full)):
            if n_iter == 0:
                continue
            if upsample and phase == "full":
                x = F.interpolate(x.detach(), size=(r, r), mode="bilinear", align_corners=False)
                x = torch.max(torch.min(x, high), low).requires_grad_(True)
            pool = factor if (phase == "low" and not upsample) else 1
            opt = torch.optim.Adam([x], lr=config.lr, betas=(0.5, 0.9), eps=1e-8)
            lim = int(config.jitter * r) // factor
            warm = int(round(config.warmup * n_iter))
            for k in range(n_iter):
                it += 1
                for group in opt.param_groups:
                    group["lr"] = cosine_lr(config.lr, k, n_iter, warm)
                xin = _augment(x, pool, lim, config.flip, g)
                opt.zero_grad(set_to_none=True)
                total, terms = _objective(model, student, xin, fg, targets, config, bn, scales)
                total.backward()
                value = float(total.detach())
                if phase == "full" and value < best_loss:  # the iterate this loss was measured on
                    best_loss, best = value, x.detach().clone()
                opt.step()
                with torch.no_grad():
                    x.data = torch.max(torch.min(x.data, high), low)
                history.append({"iteration": it, "phase": phase, "total": value, **terms})
                if it in snapshot_at:
                    shot = x.detach() if x.shape[-1] == r else F.interpolate(x.detach(), size=(r, r), mode="nearest")
                    snapshots[it] = denormalize(shot).cpu()
                if progress is not None:
                    progress(1)
    return SynthesisResult(best, history, snapshots, time.perf_counter() - start)


@contextmanager
def _frozen(model: nn.Module, student: nn.Module | None):
    """``model`` (and the ``student``, compared, never trained here) in eval mode without parameter
    gradients while images are synthesised; their modes and flags come back afterwards."""
    nets = [m for m in (model, student) if m is not None]
    saved = [(m.training, [p.requires_grad for p in m.parameters()]) for m in nets]
    for m in nets:
        m.eval().requires_grad_(False)
    try:
        yield
    finally:
        for m, (training, flags) in zip(nets, saved):
            for p, req in zip(m.parameters(), flags):
                p.requires_grad_(req)
            m.train(training)


def _augment(x: torch.Tensor, pool: int, lim: int, flip: bool, g: torch.Generator) -> torch.Tensor:
    """What the old model sees of ``x`` this iteration: average-pooled by ``pool`` (the low-resolution
    phase), rolled by a random jitter of up to ``lim`` pixels, flipped with probability 1/2."""
    xin = F.avg_pool2d(x, pool) if pool > 1 else x
    if lim:
        dx, dy = torch.randint(-lim, lim + 1, (2,), generator=g).tolist()
        xin = torch.roll(xin, shifts=(dx, dy), dims=(2, 3))
    if flip and bool(torch.rand(1, generator=g) < 0.5):
        xin = torch.flip(xin, dims=(3,))
    return xin


def _objective(model, student, xin, fg, targets, config: InversionConfig, bn: BNStatistics, scales=None) -> tuple:
    """DeepInversion's loss on one batch (NVlabs/DeepInversion ``deepinversion.py``, ``get_images``):
    the class target (log-sum-exp pooled, or scale-aware with its outside term), BatchNorm
    statistics, image priors and (``adi > 0``) the competition term; ``(total, the terms as numbers
    for the loss curves)``."""
    logits = model(xin)["out"]
    if config.scale_aware:
        pooled = scale_aware_pool(logits[:, fg], scales)
        ranked = _target_log_prob(logits, fg[targets.argmax(1)], scales)  # once for both terms
        l_out, l_in = _outside(*ranked), _inside(*ranked)
    else:
        pooled = lse_pool(logits[:, fg], config.lse_r)
    l_cls = class_loss(pooled, targets)
    l_bn = bn.loss(config.first_bn_multiplier)
    tv1, tv2 = image_priors(xin)
    l_l2 = torch.linalg.vector_norm(xin.flatten(1), dim=1).mean()
    total = config.main * l_cls + config.r_feature * l_bn + config.tv_l2 * tv2 + config.tv_l1 * tv1 + config.l2 * l_l2
    if config.scale_aware:
        total = total + config.outside_weight * l_out + config.inside_weight * l_in
    l_adi = torch.zeros((), device=xin.device)
    if config.adi > 0:
        l_adi = competition(logits, student(xin)["out"])
        total = total + config.adi * l_adi
    with torch.no_grad():
        prob = (F.softmax(pooled.float(), 1) * targets).sum(1) / targets.sum(1)
    terms = {
        "class": l_cls.item(),
        "bn": l_bn.item(),
        "tv_l2": tv2.item(),
        "l2": l_l2.item(),
        "adi": l_adi.item(),
        "target_prob": prob.mean().item(),
    }
    if config.scale_aware:
        terms["outside"] = l_out.item()
        terms["inside"] = l_in.item()
    return total, terms


@torch.no_grad()
def pseudo_labels(model: nn.Module, images: torch.Tensor, confidence: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The old model's labels of ``images``: argmax over its (old) outputs, unsure pixels 255.

    Args:
        images: ``(B, 3, H, W)`` normalised.
        confidence: a pixel keeps its argmax only if the softmax probability exceeds this.

    Returns:
        ``(labels, prob)``: ``(B, H, W)`` int64 output indices of the old model or 255, and the
        ``(B, H, W)`` float max probability.
    """
    was = model.training
    model.eval()
    prob, labels = F.softmax(model(images)["out"].float(), 1).max(1)
    model.train(was)
    return labels.masked_fill(prob <= confidence, IGNORE_INDEX), prob


def snapshot_iterations(config: InversionConfig) -> tuple[int, ...]:
    """Iterations whose images :meth:`SyntheticMemory.build` keeps for its first batch: the first,
    a quarter and the end of the low-resolution phase, the middle and the end of the full one."""
    lo, total = config.iterations_low, config.iterations_low + config.iterations_full
    marks = [1, lo // 4, lo, lo + config.iterations_full // 2, total]
    return tuple(sorted({m for m in marks if 1 <= m <= total}))


def image_targets(classes: list[int], config: InversionConfig) -> list[list[int]]:
    """The classes each synthetic image is asked to show (dataset class ids).

    ``images_per_class`` images per class, class after class; with ``classes_per_image`` > 1 each
    image adds ``classes_per_image - 1`` other classes drawn (seeded) among ``classes``.
    """
    rng = np.random.default_rng(config.seed)
    out = []
    for c in classes:
        for _ in range(config.images_per_class):
            others = [o for o in classes if o != c]
            extra = (
                rng.choice(others, size=min(config.classes_per_image - 1, len(others)), replace=False).tolist()
                if config.classes_per_image > 1 and others
                else []
            )
            out.append([int(c)] + [int(e) for e in extra])
    return out


# ---------------------------------------------------------------------- the synthetic memory
class SyntheticMemory:
    """Synthetic images of the old classes with pseudo-labels, stored as PNGs plus a manifest.

    Folder layout: ``images/NNNNN.png`` (RGB, de-normalised), ``masks/NNNNN.png`` (dataset class ids
    of the old model's pseudo-labels, 255 unsure), ``manifest.json``: the identity ``key``, the
    :class:`InversionConfig`, the finished batches (targets, seconds, loss curves) and totals. A
    batch is written (images, masks, then the manifest, each atomically) before the next begins, so
    a killed synthesis resumes at the first unfinished batch; a finished memory is reused.

    Args:
        folder: where the memory lives.
        key: what determines it (old checkpoint key + settings); a folder holding another key is an
            error, never silently overwritten.
    """

    def __init__(self, folder: Path, key: dict):
        self.folder = Path(folder)
        self.key = key
        self.manifest_path = self.folder / "manifest.json"
        self.manifest = self._load()

    def _load(self) -> dict:
        manifest = read_manifest(self.manifest_path, "synthetic memory manifest")
        if manifest is None:  # none yet, or corrupt: synthesised from the start
            return {"key": self.key, "batches": [], "complete": False}
        if manifest.get("key") != self.key:
            raise FileExistsError(
                f"{self.manifest_path} belongs to another synthesis (its key differs); "
                "move that folder away or delete it to synthesise again"
            )
        return manifest

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    def _save(self) -> None:
        atomic_write_text(self.manifest_path, json.dumps(self.manifest, indent=1))

    def build(
        self,
        model: nn.Module,
        class_ids: list[int],
        out_index: dict[int, int],
        class_order: list[int],
        config: InversionConfig,
        *,
        student: nn.Module | None = None,
        device=None,
        progress: bool = True,
        print_fn: Callable = print,
        scales: tuple[float, ...] = (),
    ) -> SyntheticMemory:
        """Synthesise every image not made yet (batch by batch) and write it.

        Args:
            model: the old model (eval mode is set during synthesis).
            class_ids: old foreground classes (dataset ids) to synthesise.
            out_index: dataset class id -> the old model's output index, for every old class.
            class_order: the old model's output index -> dataset class id (pseudo-labels are stored
                as dataset ids).
            config: :class:`InversionConfig`.
            student: the current model, for ADI.
            scales: with scale-aware aggregation and no ``config.scales``, the target fractions
                measured on the real data (:func:`measured_scales`), given to the images in turn.

        Raises:
            ValueError: scale-aware aggregation without any scale.
        """
        from tqdm.auto import tqdm

        targets = image_targets(class_ids, config)
        pool = tuple(config.scales) or tuple(scales)
        if config.scale_aware and not pool:
            raise ValueError("scale-aware synthesis needs target scales: set InversionConfig.scales or pass scales=")
        image_scales = [pool[i % len(pool)] for i in range(len(targets))] if config.scale_aware else []
        fg_ids = list(class_ids)
        fg_outputs = [out_index[c] for c in fg_ids]
        batches = [targets[i : i + config.batch_size] for i in range(0, len(targets), config.batch_size)]
        done = {b["index"] for b in self.manifest["batches"]}
        todo = [k for k in range(len(batches)) if k not in done]
        per_batch = config.iterations_low + config.iterations_full
        (self.folder / "images").mkdir(parents=True, exist_ok=True)
        (self.folder / "masks").mkdir(parents=True, exist_ok=True)
        self.manifest.update(config=config.to_dict(), classes=fg_ids, num_images=len(targets), scales=list(pool))
        if todo and done:
            print_fn(f"  synthesis resumed: {len(done)} of {len(batches)} batches already made")
        to_class_id = torch.full((256,), IGNORE_INDEX, dtype=torch.uint8)  # output index -> class id
        to_class_id[: len(class_order)] = torch.as_tensor(class_order, dtype=torch.uint8)
        bar = tqdm(total=len(todo) * per_batch, desc="DeepInversion", unit="it", disable=not show_progress(progress))
        try:
            for k in todo:
                batch = batches[k]
                t = torch.zeros(len(batch), len(fg_ids))
                for row, classes in enumerate(batch):
                    for c in classes:
                        t[row, fg_ids.index(c)] = 1
                g = torch.Generator().manual_seed(config.seed * 100_003 + k)
                shots = snapshot_iterations(config) if k == 0 else ()
                res = synthesize(
                    model,
                    t,
                    fg_outputs,
                    config,
                    student=student,
                    generator=g,
                    device=device,
                    snapshot_at=shots,
                    progress=bar.update,
                    scales=image_scales[k * config.batch_size : (k + 1) * config.batch_size] or None,
                )
                if res.snapshots:  # the first batch at several iterations: how an image emerges
                    self._write_snapshots(res.snapshots)
                names = self._write_batch(k, config, model, res.images, to_class_id)
                hist = res.history
                self.manifest["batches"].append(
                    {
                        "index": k,
                        "names": names,
                        "targets": batch,
                        "seconds": round(res.seconds, 3),
                        "final": hist[-1] if hist else {},
                        "curve": [h for h in hist if h["iteration"] % max(1, per_batch // 50) == 0 or h is hist[-1]],
                    }
                )
                self.manifest["batches"].sort(key=lambda b: b["index"])
                self._save()
        finally:
            bar.close()
        secs = sum(b["seconds"] for b in self.manifest["batches"])
        n = self.manifest["num_images"]
        self.manifest.update(
            complete=True,
            seconds=round(secs, 2),
            seconds_per_image=round(secs / max(n, 1), 3),
            image_iterations_per_second=round(n * per_batch / max(secs, 1e-9), 2),
        )
        self._save()
        return self

    def _write_snapshots(self, snapshots: dict[int, torch.Tensor]) -> None:
        """The first batch at several iterations, one PNG row per iteration (``snapshots/it-N.png``)."""
        from torchvision.utils import make_grid

        (self.folder / "snapshots").mkdir(exist_ok=True)
        files = []
        for i, imgs in sorted(snapshots.items()):
            grid = make_grid(imgs, nrow=len(imgs), padding=2, pad_value=1.0)
            f = self.folder / "snapshots" / f"it-{i:05d}.png"
            atomic_write_png(f, (grid * 255).round().byte().permute(1, 2, 0).numpy())
            files.append({"iteration": i, "file": f"snapshots/{f.name}"})
        self.manifest["snapshots"] = files

    def _write_batch(
        self, k: int, config: InversionConfig, model: nn.Module, images: torch.Tensor, to_class_id: torch.Tensor
    ) -> list[str]:
        """Batch ``k``'s images and the old model's pseudo-labels (dataset ids) as PNGs; their names."""
        labels, _ = pseudo_labels(model, images, config.confidence)
        ids = to_class_id[labels.cpu()]
        rgb = (denormalize(images) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        names = []
        for row in range(len(images)):
            name = f"{k * config.batch_size + row:05d}"
            atomic_write_png(self.folder / "images" / f"{name}.png", rgb[row])
            atomic_write_png(self.folder / "masks" / f"{name}.png", ids[row].numpy())
            names.append(name)
        return names

    # ------------------------------------------------------------------ reading
    @property
    def names(self) -> list[str]:
        return [n for b in self.manifest["batches"] for n in b["names"]]

    @property
    def targets(self) -> list[list[int]]:
        return [t for b in self.manifest["batches"] for t in b["targets"]]

    def __len__(self) -> int:
        return len(self.names)

    def as_dataset(self, info: DatasetInfo) -> SegmentationDataset:
        """The memory as a :class:`SegmentationDataset` of dataset class ids (no task remapping)."""
        names = self.names
        if not names:
            raise ValueError(f"the synthetic memory in {self.folder} is empty; build it first")
        return SegmentationDataset(
            info,
            [f"synthetic-{n}" for n in names],
            [self.folder / "images" / f"{n}.png" for n in names],
            [self.folder / "masks" / f"{n}.png" for n in names],
            class_id_lut(info),
        )

    def dataset(
        self, split, info: DatasetInfo, transforms: Callable | None = None, labels: str = "pseudo"
    ) -> SegmentationDataset:
        """The memory labelled for training at ``split.step``, like an exemplar memory.

        Pseudo-labels keep the old classes they name; their background carries the
        annotated-background code of the old outputs
        (:func:`~incseg_lib.losses.known_background`), so MiB's unbiased cross-entropy merges it
        only with the classes learned since. ``labels="none"``: every pixel 255 (distillation only).
        """

        old = split.old_classes
        if labels not in ("pseudo", "none"):
            raise ValueError(f"labels={labels!r}; choose 'pseudo' or 'none'")
        if labels == "none":
            lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        else:
            lut = annotated_lut(split.lut_keeping(old), len(old))
        return self.as_dataset(info).with_target_lut(lut).with_transforms(transforms)

    def size_bytes(self) -> int:
        return int(sum((self.folder / d / f"{n}.png").stat().st_size for n in self.names for d in ("images", "masks")))

    def summary(self) -> dict:
        """Images, bytes, synthesis seconds, seconds per image and image-iterations per second."""
        m = self.manifest
        return {
            "images": len(self),
            "bytes": self.size_bytes(),
            "seconds": m.get("seconds"),
            "seconds_per_image": m.get("seconds_per_image"),
            "image_iterations_per_second": m.get("image_iterations_per_second"),
            "folder": str(self.folder),
        }

    def loss_curves(self) -> list[dict]:
        """Every stored loss-curve point of every batch, with its ``batch`` index (for plots)."""
        return [{**h, "batch": b["index"]} for b in self.manifest["batches"] for h in b["curve"]]


# ---------------------------------------------------------------------- transfer check
#: The transfer check's size rule: the target must cover at least this fraction of the image (our
#: choice: 1%, 41 pixels of a 64 px image; on the demo's shapes, 95% of the real step-0 objects
#: cover 3% or more of their image, 99% cover 0.7% or more).
TRANSFER_MIN_FRACTION = 0.01


def target_recognised(prediction, target: int, min_fraction: float = TRANSFER_MIN_FRACTION) -> bool:
    """The transfer check's rule for one synthetic image: does a model's prediction show the target?

    Yes when ``target`` is the prediction's majority foreground class (more pixels than any other
    class except background 0; ties count as yes) and covers at least ``min_fraction`` of the
    pixels. Majority, not mere presence: a segmentation model "names" the image's object as a
    classifier would (DeepInversion's check is a second network's top-1 classification of the
    synthetic images, Yin et al. CVPR 2020, Sec. 4.1-4.2).

    Args:
        prediction: ``(H, W)`` class ids (background 0, ignored 255 never counts).
        target: the class id the image was synthesised for.
        min_fraction: the smallest share of the image's pixels the target may cover, in [0, 1].

    Returns:
        True if recognised.
    """
    pred = np.asarray(prediction).astype(np.int64)
    counts = np.bincount(pred[(pred != 0) & (pred != IGNORE_INDEX)].ravel(), minlength=int(target) + 1)
    mine = int(counts[int(target)])
    return mine > 0 and mine >= counts.max() and mine >= min_fraction * pred.size


@torch.no_grad()
def transfer_check(
    model: nn.Module,
    images: torch.Tensor,
    targets: list[int],
    class_order,
    *,
    min_fraction: float = TRANSFER_MIN_FRACTION,
    batch_size: int = 16,
    device=None,
) -> dict:
    """Do a model's predictions show the classes synthetic images were made for? (DeepInversion's
    transfer check: Yin et al., "Dreaming to Distill", CVPR 2020, Sec. 4; NVlabs/DeepInversion
    ``imagenet_inversion.py`` ``--verifier``: a second network, trained independently, classifies the
    synthetic images; images only the inverted network recognises are adversarial, not data.)

    Each image is predicted (argmax over the model's outputs) and judged by :func:`target_recognised`.

    Args:
        model: a segmentation model returning ``{"out": (B, C, H, W)}`` (put in eval mode here, and
            back after).
        images: ``(N, 3, H, W)`` float, normalised like the model's inputs.
        targets: ``N`` class ids (dataset ids), the class each image was asked to show.
        class_order: the model's output index -> dataset class id (``C`` values).
        min_fraction: see :func:`target_recognised`.

    Returns:
        ``{"per_class": {class_id: {"images", "recognised", "rate"}}, "overall": {"images",
        "recognised", "rate"}, "per_image": [{"target", "recognised", "fraction" (share of pixels
        predicted as the target), "majority" (the majority foreground class, or 0)}], "predictions":
        (N, H, W) int64 dataset ids}``; rates in [0, 1].

    Raises:
        ValueError: ``images`` and ``targets`` of different lengths, or no image.
    """
    if len(images) != len(targets):
        raise ValueError(f"{len(images)} images but {len(targets)} targets")
    if not len(images):
        raise ValueError("no synthetic image to check")
    device = torch.device(device or next(model.parameters()).device)
    order = torch.as_tensor(list(class_order), dtype=torch.long)
    was = model.training
    model.eval()
    try:
        preds = torch.cat(
            [
                order[model(images[i : i + batch_size].to(device))["out"].argmax(1).cpu()]
                for i in range(0, len(images), batch_size)
            ]
        )
    finally:
        model.train(was)
    per_image, per_class = [], {}
    for p, t in zip(preds.numpy(), targets):
        fg = p[(p != 0) & (p != IGNORE_INDEX)]
        ok = target_recognised(p, int(t), min_fraction)
        per_image.append(
            {
                "target": int(t),
                "recognised": ok,
                "fraction": float((p == int(t)).mean()),
                "majority": int(np.bincount(fg).argmax()) if fg.size else 0,
            }
        )
        c = per_class.setdefault(int(t), {"images": 0, "recognised": 0})
        c["images"] += 1
        c["recognised"] += int(ok)
    for c in per_class.values():
        c["rate"] = c["recognised"] / c["images"]
    hits = sum(r["recognised"] for r in per_image)
    overall = {"images": len(per_image), "recognised": hits, "rate": hits / len(per_image)}
    per_class = dict(sorted(per_class.items()))
    return {"per_class": per_class, "overall": overall, "per_image": per_image, "predictions": preds}
