"""Exercise checks for the teaching labs: a student's function against the library's, on small tensors.

Each numbered notebook holds two or three exercise cells (tagged ``exercise``): the student writes
one function of the lesson's core from its equation, between ``# BEGIN SOLUTION`` and
``# END SOLUTION`` markers; the next cell (tagged ``check``) calls :func:`check` with the exercise's
name and the function. ``incseg student --out DIR`` writes copies whose solution parts are replaced
by ``raise NotImplementedError(...)``; there the check raises :class:`ExerciseNotDone` until the
student writes the body.

>>> from incseg_lib.exercises import check
>>> check("unbiased_ce", my_unbiased_ce)       # prints "unbiased_ce: correct" or raises

Every check compares with the library function that the notebooks themselves run (cited in each
check), on seeded random inputs, to float32 tolerance.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch

from .engine import poly_lr
from .exemplars import ExemplarMemory, ReplayConfig, herding_order
from .inversion import BNStatistics, image_priors
from .losses import unbiased_cross_entropy, unbiased_distillation
from .methods import mib_init
from .metrics import ConfusionMatrix
from .models.classifier import IncrementalClassifier
from .results import class_forgetting
from .seam import fuse_old, max_norm

__all__ = ["EXERCISES", "ExerciseNotDone", "ExerciseWrong", "check"]


class ExerciseNotDone(Exception):
    """The exercise's function still raises ``NotImplementedError`` (its body is not written yet)."""


class ExerciseWrong(AssertionError):
    """The student's function runs but disagrees with the library (the message says where)."""


def _close(name: str, got, want, what: str, atol: float = 1e-5) -> None:
    got_t = torch.as_tensor(np.asarray(got, dtype=np.float64) if not torch.is_tensor(got) else got).double()
    want_t = torch.as_tensor(np.asarray(want, dtype=np.float64) if not torch.is_tensor(want) else want).double()
    if got_t.shape != want_t.shape:
        raise ExerciseWrong(f"{name}: {what} has shape {tuple(got_t.shape)}, expected {tuple(want_t.shape)}")
    nan_got, nan_want = torch.isnan(got_t), torch.isnan(want_t)
    if not torch.equal(nan_got, nan_want):
        raise ExerciseWrong(
            f"{name}: {what} is NaN at {nan_got.nonzero().flatten().tolist()}, expected NaN at "
            f"{nan_want.nonzero().flatten().tolist()} (a class absent from both maps has no IoU)"
        )
    diff = (got_t - want_t).abs().nan_to_num(0.0)
    if diff.numel() and float(diff.max()) > atol * (1 + float(want_t.abs().nan_to_num(0.0).max())):
        raise ExerciseWrong(
            f"{name}: {what} differs from the library by up to {float(diff.max()):.3g} "
            f"(got {got_t.flatten()[:4].tolist()}, expected {want_t.flatten()[:4].tolist()})"
        )


# ------------------------------------------------------------------------------------ the checks
def _iou_from_confusion(fn: Callable) -> None:
    """01: per-class IoU = TP / (TP + FP + FN), NaN where a class is in neither map
    (ref. :meth:`incseg_lib.metrics.ConfusionMatrix.iou`)."""

    g = torch.Generator().manual_seed(0)
    cm = ConfusionMatrix(5)
    cm.update(torch.randint(0, 4, (2, 7, 9), generator=g), torch.randint(0, 4, (2, 7, 9), generator=g))
    got = fn(cm.mat.clone())  # class 4 absent from both: NaN
    _close("iou_from_confusion", got, cm.iou(), "the per-class IoU")


def _poly_lr(fn: Callable) -> None:
    """01: poly schedule ``lr = base * (1 - it / total) ** power`` (ref. :func:`incseg_lib.engine.poly_lr`)."""

    for it in (0, 1, 37, 99):
        _close("poly_lr", fn(0.025, it, 100, 0.9), poly_lr(0.025, it, 100, 0.9), f"the learning rate at iteration {it}")


def _unbiased_ce(fn: Callable) -> None:
    """02: MiB's unbiased cross-entropy, Eq. 4-5 (ref. :func:`incseg_lib.losses.unbiased_cross_entropy`)."""

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 6, 5, 4, generator=g)
    target = torch.randint(0, 6, (2, 5, 4), generator=g)
    target[target.lt(4) & target.gt(0)] = 0  # the current step labels only background and classes 4, 5
    target[0, 0, :2] = 255
    _close("unbiased_ce", fn(logits, target, 4), unbiased_cross_entropy(logits, target, 4), "the loss")


def _unbiased_kd(fn: Callable) -> None:
    """02: MiB's unbiased distillation, Eq. 6-7 (ref. :func:`incseg_lib.losses.unbiased_distillation`)."""

    g = torch.Generator().manual_seed(2)
    logits, old = torch.randn(2, 7, 4, 3, generator=g), torch.randn(2, 5, 4, 3, generator=g)
    _close("unbiased_kd", fn(logits, old), unbiased_distillation(logits, old), "the loss")


def _mib_init(fn: Callable) -> None:
    """02: MiB's classifier initialisation, Sec. 3.4 (ref. :func:`incseg_lib.methods.mib_init`)."""

    torch.manual_seed(3)
    clf = IncrementalClassifier(8, [4, 3])
    weight = torch.cat([h.weight[:, :, 0, 0] for h in clf.heads]).detach().clone()
    bias = torch.cat([h.bias for h in clf.heads]).detach().clone()
    out = fn(weight.clone(), bias.clone(), 3)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise ExerciseWrong("mib_init: return the pair (weight, bias)")
    mib_init(clf, 3)
    _close("mib_init", out[0], torch.cat([h.weight[:, :, 0, 0] for h in clf.heads]).detach(), "the weights")
    _close("mib_init", out[1], torch.cat([h.bias for h in clf.heads]).detach(), "the biases")


def _herding(fn: Callable) -> None:
    """03: iCaRL's herding, Alg. 4 (ref. :func:`incseg_lib.exemplars.herding_order`)."""

    g = torch.Generator().manual_seed(4)
    feats = torch.randn(12, 5, generator=g)
    got = [int(i) for i in fn(feats, 5)]
    want = herding_order(feats, 5)
    if got != want:
        raise ExerciseWrong(
            f"herding: picked rows {got}, expected {want} (step j takes the row that brings "
            "the mean of the j picked rows closest to the class mean)"
        )


def _quota(fn: Callable) -> None:
    """03: exemplars allowed per class, fixed per class or a fixed total split over the classes
    (ref. :meth:`incseg_lib.exemplars.ExemplarMemory.quota`)."""

    for budget, mode, classes in ((5, "per-class", [1, 2, 3]), (10, "total", [1, 2, 3]), (2, "total", [4, 5, 6])):
        want = ExemplarMemory(ReplayConfig(budget=budget, mode=mode)).quota(classes)
        got = fn(classes, budget, mode)
        if dict(got) != want:
            raise ExerciseWrong(
                f"quota: budget {budget} ({mode}) over classes {classes} gave {dict(got)}, expected {want}"
            )


def _bn_feature_loss(fn: Callable) -> None:
    """04: DeepInversion's feature-statistics term of one BatchNorm layer, Yin et al. Eq. 4
    (ref. :class:`incseg_lib.inversion.BNStatistics`)."""

    g = torch.Generator().manual_seed(5)
    bn = torch.nn.BatchNorm2d(3)
    bn.running_mean.copy_(torch.randn(3, generator=g))
    bn.running_var.copy_(torch.rand(3, generator=g) + 0.5)
    bn.eval()
    x = torch.randn(2, 3, 4, 5, generator=g)
    with BNStatistics(bn) as stats:
        bn(x)
        want = stats.loss(first_multiplier=1.0)
    _close("bn_feature_loss", fn(x, bn.running_mean.clone(), bn.running_var.clone()), want, "the loss")


def _total_variation(fn: Callable) -> None:
    """04: DeepInversion's image priors (TV_1, TV_2) (ref. :func:`incseg_lib.inversion.image_priors`)."""

    x = torch.randn(2, 3, 6, 5, generator=torch.Generator().manual_seed(6))
    got = fn(x)
    if not (isinstance(got, tuple) and len(got) == 2):
        raise ExerciseWrong("total_variation: return the pair (tv_l1, tv_l2)")
    want = image_priors(x)
    _close("total_variation", got[0], want[0], "TV_1 (mean absolute differences)")
    _close("total_variation", got[1], want[1], "TV_2 (norms of the differences)")


def _max_norm(fn: Callable) -> None:
    """05: SEAM's per-map min-max normalisation of a CAM (ref. :func:`incseg_lib.seam.max_norm`)."""

    cam = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(7))
    _close("max_norm", fn(cam), max_norm(cam), "the normalised CAM")


def _fuse_old(fn: Callable) -> None:
    """05: fusing the pseudo-label with the old model's prediction, WILSON's rule
    (ref. :func:`incseg_lib.seam.fuse_old`)."""

    g = torch.Generator().manual_seed(8)
    pseudo = torch.randint(0, 3, (6, 7), generator=g) * 8  # 0 or the new classes 8, 16
    old = torch.randint(0, 8, (6, 7), generator=g)
    got, want = fn(pseudo.clone(), old.clone(), list(range(8))), fuse_old(pseudo, old, list(range(8)))
    if not torch.equal(torch.as_tensor(got).long(), want):
        bad = (torch.as_tensor(got).long() != want).nonzero()[:3].tolist()
        raise ExerciseWrong(
            f"fuse_old: wrong label at pixels {bad} (new classes of the pseudo-label win; where it "
            "says background, an old class of the old model fills in)"
        )


def _old_new_all(fn: Callable) -> None:
    """06: mIoU of the old, new and all classes from per-class IoU, NaN classes left out
    (ref. :meth:`incseg_lib.metrics.ConfusionMatrix.miou` as the records store it)."""

    g = torch.Generator().manual_seed(9)
    cm = ConfusionMatrix(7)
    cm.update(torch.randint(0, 6, (3, 6, 6), generator=g), torch.randint(0, 6, (3, 6, 6), generator=g))
    old, new = [0, 1, 2, 3], [4, 5, 6]  # class 6 absent: NaN, left out
    got = fn(cm.iou(), old, new)
    if not (isinstance(got, tuple) and len(got) == 3):
        raise ExerciseWrong("old_new_all: return the triple (old, new, all)")
    _close("old_new_all", got, [cm.miou(old), cm.miou(new), cm.miou()], "(old, new, all)")


def _forgetting(fn: Callable) -> None:
    """06: forgetting of each class in points, IoU after step 0 minus IoU after the last step, NaN where
    either is unmeasured (ref. :func:`incseg_lib.results.class_forgetting`, what the heatmap shows)."""

    g = np.random.default_rng(10)
    names = ["background", "cat", "dog", "horse", "sheep"]
    before = dict(zip(names, g.random(5).tolist()))
    after = dict(zip(names, g.random(5).tolist()))
    before["sheep"], after["horse"] = None, float("nan")
    got, want = fn(dict(before), dict(after)), class_forgetting(before, after)
    if set(got) != set(want):
        raise ExerciseWrong(f"forgetting: classes {sorted(got)}, expected {sorted(want)}")
    _close("forgetting", [got[c] for c in names], [want[c] for c in names], f"the forgetting of {names}")


def _probe_logits(fn: Callable) -> None:
    """07: a linear probe's logits by hand, a 1x1 convolution (weights ``(C, D)``, bias ``(C,)``) on
    features ``(B, D, h, w)`` upsampled bilinearly to the image (ref. :class:`~incseg_lib.models.probe.LinearProbe`)."""

    g = torch.Generator().manual_seed(11)
    feats, w, b = torch.randn(2, 5, 4, 6, generator=g), torch.randn(3, 5, generator=g), torch.randn(3, generator=g)
    conv = torch.nn.Conv2d(5, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(w[:, :, None, None])
        conv.bias.copy_(b)
        want = torch.nn.functional.interpolate(conv(feats), size=(8, 12), mode="bilinear", align_corners=False)
    _close("probe_logits", fn(feats, w, b, (8, 12)), want, "the logits (B, C, H, W)")


def _ewf_fuse(fn: Callable) -> None:
    """07: EWF's fusion of two state dicts, ``(1 - w) old + w new`` with ``w = sqrt(N_new / (N_new +
    N_old))`` on the floating tensors both hold, the new model's value elsewhere
    (ref. :func:`incseg_lib.methods.ewf.fuse_endpoints`)."""
    from .methods.ewf import fuse_endpoints

    torch.manual_seed(12)
    old = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4), IncrementalClassifier(4, [3]))
    new = copy.deepcopy(old)
    new[2].add_step(2)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(torch.randn_like(p))
    old_state = {k: v.clone() for k, v in old.state_dict().items()}
    new_state = {k: v.clone() for k, v in new.state_dict().items()}
    fuse_endpoints(new, old, math.sqrt(2 / 5))
    got, want = fn(old_state, new_state, 2, 3), new.state_dict()
    if set(got) != set(want):
        raise ExerciseWrong(f"ewf_fuse: keys {sorted(set(got) ^ set(want))} differ: keep every key of the new model")
    for k in want:
        _close("ewf_fuse", got[k], want[k], k)


EXERCISES: dict[str, Callable] = {
    "iou_from_confusion": _iou_from_confusion,
    "poly_lr": _poly_lr,
    "unbiased_ce": _unbiased_ce,
    "unbiased_kd": _unbiased_kd,
    "mib_init": _mib_init,
    "herding": _herding,
    "quota": _quota,
    "bn_feature_loss": _bn_feature_loss,
    "total_variation": _total_variation,
    "max_norm": _max_norm,
    "fuse_old": _fuse_old,
    "old_new_all": _old_new_all,
    "forgetting": _forgetting,
    "probe_logits": _probe_logits,
    "ewf_fuse": _ewf_fuse,
}


def check(name: str, fn: Callable) -> None:
    """Check a student's ``fn`` for the exercise ``name`` and print ``name: correct``.

    Raises:
        KeyError: unknown exercise (names the valid ones).
        ExerciseNotDone: ``fn`` still raises ``NotImplementedError`` (its body is not written yet).
        ExerciseWrong: ``fn`` disagrees with the library (says which value and by how much).
    """
    if name not in EXERCISES:
        raise KeyError(f"unknown exercise {name!r}; the exercises are {sorted(EXERCISES)}")
    try:
        EXERCISES[name](fn)
    except NotImplementedError as e:
        raise ExerciseNotDone(
            f"exercise {name!r} is not done yet: write the body of {getattr(fn, '__name__', fn)} "
            f"in the cell above, then run this cell again ({e})"
        ) from None
    print(f"{name}: correct")
