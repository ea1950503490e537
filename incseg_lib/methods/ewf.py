"""EWF, Endpoints Weight Fusion (Xiao et al., "Endpoints Weight Fusion for Class Incremental
Semantic Segmentation", CVPR 2023; schuy1er/EWF_official): a variant on top of any method
(``mib+ewf``, ``plop+ewf``, ...). After each step, every tensor of the old model's state dict
becomes ``(1 - w) old + w new`` with ``w = sqrt(N_new / (N_new + N_old))`` in classes (background
counted among the old), and the new classes' heads, absent from the old model, keep their trained
weights (EWF_official ``run.py`` L511-545, the fusion block: L522 the weight, L542-543 the fusion;
``train.py`` L145-150: ``old_classes`` includes background). The fused model is the step's
checkpoint, its evaluation and the next step's start and old model, as in ``run.py``.

EWF's scripts also freeze the old classifiers while a step trains (``--fix_pre_cls``; ``train.py``
L334-340, every ``cls[i]`` but the last), so the variant does too: their fused weights are then the
old ones. Differences, named:

- ``run.py`` fuses every state-dict entry, BatchNorm's ``num_batches_tracked`` counter included
  (an integer fused as a float); here integer buffers keep the new model's value, floating ones
  (weights, biases, running means and variances) are fused as ``run.py`` does.
- ``most_changed`` (off by default): ``run.py``'s ``--threshold_choice`` option, "which I didn't
  mention in paper" (L526-540): only the entries among the 45 % that changed most (by
  ``|new - old|`` over every fused entry) are fused, the others keep the new value. Its ``np.int``
  fails on NumPy >= 1.24; the share it means is implemented.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from .registry import MethodSpec, register_suffix

#: ``run.py`` L529: ``np.int(pick.shape[0] * 0.45)`` entries fused under ``--threshold_choice``.
MOST_CHANGED_SHARE = 0.45


def fusion_weight(num_new: int, num_old: int) -> float:
    """EWF's weight of the new model, ``sqrt(N_new / (N_new + N_old))`` (``run.py`` L522).

    Args:
        num_new: classes the step added; num_old: classes before it, background included.

    Returns:
        ``w`` in (0, 1): VOC 15-1 step 1, ``sqrt(1 / 17)`` = 0.243.

    Raises:
        ValueError: a count below 1.
    """
    if num_new < 1 or num_old < 1:
        raise ValueError(f"class counts must be at least 1, got num_new={num_new}, num_old={num_old}")
    return math.sqrt(num_new / (num_new + num_old))


@torch.no_grad()
def fuse_endpoints(model: nn.Module, old_model: nn.Module, w: float, *, most_changed: float = 0.0) -> None:
    """Fuse ``model`` (the step's end point) with ``old_model`` (the step's start) in place.

    Every floating tensor of ``old_model.state_dict()`` present in ``model`` becomes
    ``(1 - w) * old + w * new``; tensors only ``model`` has (the new heads) and integer buffers keep
    ``model``'s values (module docstring).

    Args:
        w: the new model's weight in [0, 1]: 0 gives the old model's tensors, 1 leaves ``model``.
        most_changed: 0 fuses every entry; a share in (0, 1] fuses only that share of the entries
            that changed most, ``|new - old|`` over every fused tensor together (``run.py``
            ``--threshold_choice``: 0.45), the others keep the new value.

    Raises:
        ValueError: ``w`` or ``most_changed`` outside [0, 1], or a tensor whose shape differs
            between the two models.
    """
    if not 0.0 <= w <= 1.0 or not 0.0 <= most_changed <= 1.0:
        raise ValueError(f"w and most_changed must lie in [0, 1], got w={w}, most_changed={most_changed}")
    new_state, old_state = model.state_dict(), old_model.state_dict()
    names = [n for n, t in old_state.items() if n in new_state and t.is_floating_point()]
    for n in names:
        if new_state[n].shape != old_state[n].shape:
            raise ValueError(
                f"EWF: {n} has shape {tuple(new_state[n].shape)}, the old model's {tuple(old_state[n].shape)}"
            )
    threshold = None
    if most_changed > 0 and names:
        delta = torch.cat([(new_state[n] - old_state[n].to(new_state[n])).abs().flatten() for n in names])
        k = max(1, int(delta.numel() * most_changed))
        threshold = torch.topk(delta, k).values[-1]
    for n in names:
        new, old = new_state[n], old_state[n].to(new_state[n])
        fused = (1 - w) * old + w * new
        if threshold is not None:  # run.py L535-540: entries that changed less keep the new value
            fused = torch.where((new - old).abs() < threshold, new, fused)
        new.copy_(fused)


def _freeze_old_heads(model: nn.Module) -> None:
    """``--fix_pre_cls``: every classifier head but the newest stops learning."""
    for clf in model.classifiers():
        for head in list(clf.heads)[:-1]:
            head.requires_grad_(False)


def ewf_variant(base: MethodSpec, most_changed: float = 0.0) -> MethodSpec:
    """``<base>+ewf``: ``base``'s losses and protocol, the old heads frozen while the step trains,
    and the step's model fused with the old one when it ends (module docstring)."""

    def build(name, weights):
        method = base.build(base.name, weights)
        prepare = method.prepare

        def prepare_and_freeze(inputs):
            _freeze_old_heads(inputs.model)
            return prepare(inputs) if prepare is not None else None

        def finish(model, old_model, num_old, num_new):
            fuse_endpoints(model, old_model, fusion_weight(num_new, num_old), most_changed=most_changed)

        return dataclasses.replace(method, name=name, prepare=prepare_and_freeze, finish=finish)

    return dataclasses.replace(
        base,
        name=f"{base.name}+ewf",
        label=f"{base.label}+EWF",
        order=base.order + 1,
        build=build,
        source=f"{base.source}; EWF: Xiao et al., CVPR 2023, schuy1er/EWF_official run.py L511-545",
        ablation_of=base.name,
    )


register_suffix("+ewf", ewf_variant)
