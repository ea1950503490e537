"""One synthesis: optimise a batch of images from noise against the frozen old model
(NVlabs/DeepInversion ``deepinversion.py`` ``DeepInversionClass.get_images``), and their pseudo-
labels."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.common import IGNORE_INDEX
from ..data.transforms import denormalize
from .options import InversionConfig
from .terms import (
    BNStatistics,
    class_loss,
    competition,
    cosine_lr,
    image_priors,
    input_range,
    lse_pool,
    scale_aware_pool,
    scale_aware_terms,
)


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
        l_out, l_in = scale_aware_terms(logits, fg[targets.argmax(1)], scales)
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
