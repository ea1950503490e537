"""The optimiser and the learning-rate schedule of every training step: SGD (ours, or MiB's) and the
poly schedule of DeepLab, BiSeNet and MiB."""

from __future__ import annotations

import torch
from torch import nn


def poly_lr(base_lr: float, iteration: int, total: int, power: float = 0.9) -> float:
    """Poly schedule ``base_lr * (1 - iteration/total) ** power`` (DeepLab, used by BiSeNet and MiB)."""
    return base_lr * (1 - min(iteration, total) / max(total, 1)) ** power


OPTIMIZERS = ("sgd", "sgd-mib")


def make_optimizer(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4, kind: str = "sgd"):
    """The training optimiser.

    ``sgd``: SGD with momentum; no weight decay on BatchNorm parameters and biases (the usual
    practice for BiSeNet-style training). A model with a ``parameter_groups(weight_decay)`` method
    (:class:`~incseg_lib.seam.SeamNet`) gets its own groups, each with an ``lr_mult`` that
    :func:`fit` applies to the poly learning rate. ``sgd-mib``: MiB's (fcdl94/MiB ``run.py``): SGD with
    Nesterov momentum and weight decay on every parameter.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind in OPTIMIZERS and hasattr(model, "parameter_groups"):  # e.g. SEAM's per-group multipliers
        return torch.optim.SGD(model.parameter_groups(weight_decay), lr=lr, momentum=momentum)
    params = [p for p in model.parameters() if p.requires_grad]
    if kind == "sgd-mib":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    if kind != "sgd":
        raise ValueError(f"optimizer {kind!r}; choose one of {OPTIMIZERS}")
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        momentum=momentum,
    )
