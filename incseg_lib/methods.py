"""Incremental methods as named compositions of losses and parameter regularizers.

A :class:`Method` says how step t >= 1 is trained from step t-1: the classification loss (on
the final head and on BiSeNet's auxiliary heads), the distillation terms computed against the
frozen old model (on the final feature-fusion output only, never on the auxiliary heads), and
what is done to the new classifier heads before training. Step 0 is plain training for every
method.

Available: ``ft``, ``lwf``, ``lwf-mc``, ``ilt``, ``ewc``, ``pi``, ``rw``, ``mib`` (the methods of
MiB's official code). Joint, the offline upper bound, is not a step method: see
:func:`incseg_lib.experiment.joint_step`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from . import losses
from .models.classifier import IncrementalClassifier


@dataclass
class Method:
    """A named incremental-learning method.

    Attributes:
        name: registry name.
        classification: ``(logits, target, num_old) -> loss`` used on the final and auxiliary heads.
        distillation: ``(out, old_out, target, num_old) -> dict of named terms`` (already weighted);
            None for methods without an old model.
        init_new_heads: ``(model, num_new) -> None`` applied after the new heads are added.
        principal: optional ``(out, old_out, target, num_old) -> loss`` replacing ``classification``
            on the final head when the method's own loss needs the old model (LwF-MC's BCE).
        weights: the method's loss weights (documented defaults, overridable).
        regularizer: ``ewc``, ``pi`` or ``rw`` (:mod:`incseg_lib.regularizers`) or None; its weight
            is ``weights["reg"]``.
    """

    name: str
    classification: Callable
    distillation: Callable | None = None
    init_new_heads: Callable | None = None
    principal: Callable | None = None
    weights: dict = field(default_factory=dict)
    regularizer: str | None = None

    @property
    def uses_old_model(self) -> bool:
        """Whether the frozen step t-1 model is needed (its outputs or its weights)."""
        return self.distillation is not None or self.principal is not None or self.regularizer is not None

    def loss_fn(self, old_model: nn.Module | None, num_old: int, aux_weight: float = 1.0,
                penalty: Callable | None = None) -> Callable:
        """The ``loss_fn(model, images, target, outputs)`` that :func:`engine.fit` calls.

        Args:
            penalty: ``model -> weighted scalar`` (a :class:`~incseg_lib.regularizers.ParameterPenalty`),
                required when the method has a regularizer.
        """

        if self.uses_old_model and old_model is None:
            raise ValueError(f"method {self.name} needs the previous step's model")
        if self.regularizer is not None and penalty is None:
            raise ValueError(f"method {self.name} needs the {self.regularizer.upper()} penalty of the previous step")
        forward_old = self.distillation is not None or self.principal is not None

        def fn(model, x, y, out):
            old_out = None
            if forward_old:
                with torch.no_grad():
                    old_out = old_model(x)
            terms = losses.bisenet_loss(out, y, lambda logits, t: self.classification(logits, t, num_old),
                                        aux_weight)
            if self.principal is not None:
                terms["principal"] = self.principal(out, old_out, y, num_old)
            total = terms["principal"] + aux_weight * terms["aux"]
            if self.distillation is not None:
                for k, v in self.distillation(out, old_out, y, num_old).items():
                    terms[k] = v
                    total = total + v
            if self.regularizer is not None:
                terms[self.regularizer] = penalty(model)
                total = total + terms[self.regularizer]
            terms["loss"] = total
            return terms

        return fn


def _ce(logits, target, num_old):
    return losses.cross_entropy(logits, target)


def _unbiased_ce(logits, target, num_old):
    return losses.unbiased_cross_entropy(logits, target, num_old)


def mib_init(model: nn.Module, num_new: int) -> None:
    """MiB's classifier initialisation (Cermelli et al., CVPR 2020, Sec. 3.4), on every head.

    New-class weights copy the background's; the biases of background and of the new classes
    become ``b_bg - log(N + 1)`` with N = ``num_new``. The old classes' probabilities are then
    unchanged and background + new classes together keep the old background probability.
    """
    classifiers = model.classifiers() if hasattr(model, "classifiers") else \
        [m for m in model.modules() if isinstance(m, IncrementalClassifier)]
    with torch.no_grad():
        for clf in classifiers:
            bg, new = clf.heads[0], clf.heads[-1]
            shift = math.log(num_new + 1)
            new_bias = bg.bias[0] - shift
            new.weight.copy_(bg.weight[0:1].expand_as(new.weight))
            new.bias.fill_(float(new_bias))
            bg.bias[0] = new_bias


def _lwf_terms(weight):
    def fn(out, old_out, y, num_old):
        return {"kd": weight * losses.knowledge_distillation(out["out"], old_out["out"])}
    return fn


def _ilt_terms(kd_weight, feat_weight):
    def fn(out, old_out, y, num_old):
        return {"kd": kd_weight * losses.knowledge_distillation(out["out"], old_out["out"]),
                "feature": feat_weight * losses.feature_distillation(out["features"], old_out["features"])}
    return fn


def _mib_terms(weight):
    def fn(out, old_out, y, num_old):
        return {"ukd": weight * losses.unbiased_distillation(out["out"], old_out["out"])}
    return fn


def _lwf_mc_principal(out, old_out, y, num_old):
    return losses.lwf_mc_loss(out["out"], y, old_out["out"])


METHOD_NAMES = ("ft", "lwf", "lwf-mc", "ilt", "ewc", "pi", "rw", "mib")
REGULARIZER_WEIGHTS = {"ewc": 500.0, "pi": 500.0, "rw": 100.0}  # MiB's defaults


def get_method(name: str, *, task: str = "", kd_weight: float | None = None) -> Method:
    """Build a method with its paper/MiB defaults.

    Defaults: LwF KD weight 100; ILT KD 100 and feature 100; EWC 500, PI 500, RW 100 (penalties
    added to FT's cross-entropy); MiB unbiased KD 10 for every task, as MiB's code sets it
    (fcdl94/MiB ``argparser.py``, ``modify_command_options``: ``opts.loss_kd = 10`` for
    ``--method MiB``; no source was found for a larger 15-1 weight, so none is applied).
    ``kd_weight`` overrides the distillation (or penalty) weight, e.g. 100 for a 15-1 ablation.

    Raises:
        ValueError: unknown name (lists the valid ones).
    """
    if name == "ft":
        return Method("ft", _ce)
    if name == "lwf":
        w = 100.0 if kd_weight is None else kd_weight
        return Method("lwf", _ce, _lwf_terms(w), weights={"kd": w})
    if name == "lwf-mc":
        return Method("lwf-mc", _ce, principal=_lwf_mc_principal, weights={"bce": 1.0})
    if name == "ilt":
        w = 100.0 if kd_weight is None else kd_weight
        return Method("ilt", _ce, _ilt_terms(w, 100.0), weights={"kd": w, "feature": 100.0})
    if name in REGULARIZER_WEIGHTS:
        w = REGULARIZER_WEIGHTS[name] if kd_weight is None else kd_weight
        return Method(name, _ce, regularizer=name, weights={"reg": w})
    if name == "mib":
        w = 10.0 if kd_weight is None else kd_weight
        return Method("mib", _unbiased_ce, _mib_terms(w), init_new_heads=mib_init, weights={"ukd": w})
    raise ValueError(f"unknown method {name!r}; choose one of {METHOD_NAMES}")
