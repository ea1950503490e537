"""What every method is made of: :class:`Method` (a step's loss around the old model),
:class:`StepProtocol` (what its official scripts do after step 0), :class:`StepInputs` (what its
``prepare`` hook reads) and the loss pieces several methods share.

A :class:`Method` says how step t >= 1 is trained from step t-1: the classification loss (on
the final head and on BiSeNet's auxiliary heads), the distillation terms computed against the
frozen old model (on the final output; on the auxiliary heads too with ``aux="distill"``), and
what is done to the new classifier heads before training. Each method is one module of this
package that declares its identity beside its hooks (:mod:`incseg_lib.methods.registry`).

The two options MiB's code does not have are BiSeNet's auxiliary heads (``aux``: MiB's DeepLab
has none) and distilling only labelled pixels (``distill_pixels``: MiB's code distils the padded
border of every crop too; ``"all"`` restores it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import losses
from ..models.classifier import IncrementalClassifier

AUX_MODES = ("ce", "off", "distill")
DISTILL_PIXELS = ("labelled", "all")
#: How a classification loss is averaged over a batch at steps >= 1: ``all`` (every pixel, the
#: ignored ones counting 0: ``criterion(..., reduction="none").mean()`` in MiB's, PLOP's and SDR's
#: ``train.py``) or ``labelled`` (over the labelled pixels only, this library's step-0 loss).
CE_NORMALISATIONS = ("all", "labelled")
#: ``official``: each method at its own scripts' protocol (:class:`StepProtocol`); ``shared``: the
#: course's single setting, every method at the profile's ``lr_next`` with labelled-pixel averaging.
PROTOCOLS = ("official", "shared")


@dataclass(frozen=True)
class StepProtocol:
    """What a method's official scripts do at the steps after step 0, relative to step 0.

    Attributes:
        lr_factor: initial learning rate of every step >= 1 divided by step 0's (MiB, PLOP, SDR:
            0.1; VOC 0.01 then 0.001).
        ce_normalisation: one of :data:`CE_NORMALISATIONS`.
        weights: loss weights that differ from the course's shared setting (SDR's KD 100).
        source: the official file and line each value comes from.
    """

    lr_factor: float = 0.1
    ce_normalisation: str = "all"
    weights: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self):
        if not (math.isfinite(self.lr_factor) and self.lr_factor > 0):
            raise ValueError(f"lr_factor must be a positive number, got {self.lr_factor!r}")
        if self.ce_normalisation not in CE_NORMALISATIONS:
            raise ValueError(f"ce_normalisation {self.ce_normalisation!r}; choose one of {CE_NORMALISATIONS}")


#: MiB's trainer serves FT, LwF, LwF-MC, ILT, EWC, PI, RW and MiB alike.
MIB_TRAINER_PROTOCOL = StepProtocol(
    0.1,
    "all",
    source="fcdl94/MiB README.md L48 (--lr 0.01 for step 0, 0.001 for step > 0); train.py L27, L103-107 "
    "(criterion with reduction='none', then loss.mean() over every pixel)",
)


@dataclass
class Method:
    """A named incremental-learning method.

    Attributes:
        name: registry name.
        classification: ``(logits, target, num_old) -> loss`` on the final head and, unless the
            auxiliary mode is ``off``, on BiSeNet's auxiliary heads.
        distillation: ``(logits, old_logits, mask) -> dict of named, weighted terms`` on the output
            logits against the frozen old model's; None for methods without an old model.
        feature_distillation: ``(features, old_features, mask) -> dict`` on the encoder output (ILT).
        init_new_heads: ``(model, num_new) -> None`` applied after the new heads are added.
        weights: the method's loss weights (documented defaults, overridable).
        regularizer: ``ewc``, ``pi`` or ``rw`` (:mod:`incseg_lib.regularizers`) or None; its weight
            is ``weights["reg"]``.
        step0: the step-0 run the method starts from (its registry entry's
            :attr:`~incseg_lib.methods.MethodSpec.step0`): ``step0`` (softmax cross-entropy, shared
            by every softmax method) or a family of its own (LwF-MC's ``step0-bce``).
        prepare: ``(StepInputs) -> state`` run once before step t trains, with the frozen old model
            (PLOP's entropy thresholds, SDR's prototypes); the state reaches ``relabel`` and
            ``extra_terms``, and its ``tracker`` (if any) is saved and resumed with the checkpoint.
        relabel: ``(target, old_outputs, state) -> (target, per-image weights)``: the labels the
            classification loss sees (PLOP's pseudo-labels); ``classification`` then takes the
            weights as a fourth argument.
        extra_terms: ``(outputs, old_outputs, target, state, model) -> dict of weighted terms`` added to the
            loss (PLOP's Local POD, SDR's latent-space terms).
        needs_maps: the model and the old model return their intermediate maps (``maps``,
            ``latent``: :class:`~incseg_lib.models.BiSeNet`).
        protocol: what the method's official scripts do after step 0 (:class:`StepProtocol`): the
            learning rate relative to step 0's, the loss normalisation and any weights of its own;
            :meth:`~incseg_lib.config.RunConfig.lr_at` reads it under ``protocol="official"``.
        finish: ``(model, old_model, num_old, num_new) -> None`` applied once, in place, when the
            step's last epoch ends and before its checkpoint is written (EWF's weight fusion);
            ``num_old``/``num_new``: output classes before the step (background included) / added.
    """

    name: str
    classification: Callable
    distillation: Callable | None = None
    feature_distillation: Callable | None = None
    init_new_heads: Callable | None = None
    weights: dict = field(default_factory=dict)
    regularizer: str | None = None
    step0: str = "step0"
    prepare: Callable | None = None
    relabel: Callable | None = None
    extra_terms: Callable | None = None
    needs_maps: bool = False
    protocol: StepProtocol = MIB_TRAINER_PROTOCOL
    finish: Callable | None = None

    @property
    def uses_old_model(self) -> bool:
        """Whether the frozen step t-1 model is needed (its outputs or its weights)."""
        return any(
            f is not None
            for f in (
                self.distillation,
                self.feature_distillation,
                self.regularizer,
                self.relabel,
                self.extra_terms,
                self.finish,
            )
        )

    def loss_fn(
        self,
        old_model: nn.Module | None,
        num_old: int,
        aux_weight: float = 1.0,
        *,
        aux: str = "ce",
        distill_pixels: str = "labelled",
        ce_normalisation: str = "labelled",
        state=None,
    ) -> Callable:
        """The ``loss_fn(model, images, target, outputs)`` that :func:`engine.fit` calls at step t >= 1.

        The returned dict holds ``loss`` (the total), ``principal``, ``aux`` and each distillation
        term. A method with a :attr:`regularizer` gets its penalty from :func:`engine.fit`
        (``Hooks.penalty``, a :class:`~incseg_lib.engine.Penalty`), which adds it to this total.

        Args:
            aux: what BiSeNet's auxiliary heads learn at this step: ``ce`` (the method's
                classification loss on the step's labels, as at step 0), ``off`` (no auxiliary loss),
                ``distill`` (classification plus the method's output distillation against the old
                model's auxiliary outputs, each weighted ``aux_weight``). MiB's DeepLab has no
                auxiliary heads, so there is no reference; notebook 02 and docs/methods.md measure the three.
            distill_pixels: ``labelled`` (distil only labelled pixels: no crop padding or void) or
                ``all`` (every pixel, as MiB's code).
            ce_normalisation: ``labelled`` (the classification loss averaged over the labelled
                pixels of the batch) or ``all`` (over every pixel, ignored ones counting 0, as the
                official trainers' ``loss.mean()``: the labelled mean times the labelled fraction of
                the labels the loss sees, after :attr:`relabel`). The two differ in the balance of
                the classification loss against the other terms, not in its direction: after PLOP's
                pseudo-labelling 21-57% of the pixels stay labelled, so under ``labelled`` PLOP's
                cross-entropy weighs 1.8-4.8x more against Local POD than in PLOP's code.
            state: what :attr:`prepare` returned, for ``relabel`` and ``extra_terms``.

        Raises:
            ValueError: a missing old model, or an unknown ``aux``, ``distill_pixels``
                or ``ce_normalisation``.
        """
        if self.uses_old_model and old_model is None:
            raise ValueError(f"method {self.name} needs the previous step's model")
        if aux not in AUX_MODES:
            raise ValueError(f"auxiliary-head mode {aux!r}; choose one of {AUX_MODES}")
        if distill_pixels not in DISTILL_PIXELS:
            raise ValueError(f"distill_pixels {distill_pixels!r}; choose one of {DISTILL_PIXELS}")
        if ce_normalisation not in CE_NORMALISATIONS:
            raise ValueError(f"ce_normalisation {ce_normalisation!r}; choose one of {CE_NORMALISATIONS}")
        forward_old = any(
            f is not None for f in (self.distillation, self.feature_distillation, self.relabel, self.extra_terms)
        )
        aux_distill = aux == "distill" and self.distillation is not None

        def fn(model, x, y, out):
            old_out = None
            if forward_old:
                with torch.no_grad():
                    old_out = old_model(x, aux=aux_distill)
            target, weights = self.relabel(y, old_out, state) if self.relabel is not None else (y, None)
            scale = labelled_fraction(target) if ce_normalisation == "all" else None

            def cls(logits):
                args = (logits, target, num_old) if weights is None else (logits, target, num_old, weights)
                loss = self.classification(*args)
                return loss if scale is None else loss * scale

            terms = {"principal": cls(out["out"])}
            aux_out = out.get("aux", []) if aux != "off" else []
            terms["aux"] = sum((cls(a) for a in aux_out), torch.zeros((), device=y.device))
            total = terms["principal"] + aux_weight * terms["aux"]
            if forward_old:
                mask = losses.labelled_mask(y) if distill_pixels == "labelled" else None
                if self.distillation is not None:
                    for k, v in self.distillation(out["out"], old_out["out"], mask).items():
                        terms[k] = v
                        total = total + v
                if aux_distill:
                    for a, ao in zip(out["aux"], old_out["aux"]):
                        for k, v in self.distillation(a, ao, mask).items():
                            terms[f"aux_{k}"] = terms.get(f"aux_{k}", 0) + aux_weight * v
                            total = total + aux_weight * v
                if self.feature_distillation is not None:
                    for k, v in self.feature_distillation(out["features"], old_out["features"], mask).items():
                        terms[k] = v
                        total = total + v
                if self.extra_terms is not None:
                    for k, v in self.extra_terms(out, old_out, y, state, model).items():
                        terms[k] = v
                        total = total + v
            terms["loss"] = total
            return terms

        return fn


def labelled_fraction(target: torch.Tensor) -> torch.Tensor:
    """The share of labelled pixels in ``target`` ``(B, H, W)`` (not ``255``), a scalar in [0, 1]:
    what turns a mean over the labelled pixels into the official trainers' mean over every pixel."""
    return (target != losses.IGNORE_INDEX).float().mean()


def plain_ce(logits, target, num_old):
    """Softmax cross-entropy ``(B, C, H, W)`` logits against ``(B, H, W)`` labels (255 ignored),
    averaged over labelled pixels; ``num_old`` is unused (the classification-hook signature)."""
    return losses.cross_entropy(logits, target)


def unbiased_ce(logits, target, num_old):
    """MiB's unbiased cross-entropy (:func:`incseg_lib.losses.unbiased_cross_entropy`): background
    pixels score background plus the ``num_old`` old classes (Cermelli et al., CVPR 2020, Eq. 4)."""
    return losses.unbiased_cross_entropy(logits, target, num_old)


def mib_init(model: nn.Module, num_new: int) -> None:
    """MiB's classifier initialisation (Cermelli et al., CVPR 2020, Sec. 3.4), on every head.

    New-class weights copy the background's; the biases of background and of the new classes
    become ``b_bg - log(N + 1)`` with N = ``num_new``. The old classes' probabilities are then
    unchanged and background + new classes together keep the old background probability.
    """
    classifiers = (
        model.classifiers()
        if hasattr(model, "classifiers")
        else [m for m in model.modules() if isinstance(m, IncrementalClassifier)]
    )
    with torch.no_grad():
        for clf in classifiers:
            bg, new = clf.heads[0], clf.heads[-1]
            shift = math.log(num_new + 1)
            new_bias = bg.bias[0] - shift
            new.weight.copy_(bg.weight[0:1].expand_as(new.weight))
            new.bias.fill_(float(new_bias))
            bg.bias[0] = new_bias


def bce(logits, target, num_old):
    """One-hot binary cross-entropy of sigmoid outputs (LwF-MC, MiB's ``--method LWF-MC``)."""
    return losses.bce_one_hot(logits, target)


def distillation_terms(weight):
    """``{"kd": weight x softmax distillation on the old outputs}`` (LwF, ILT: MiB's
    ``utils/loss.py`` ``KnowledgeDistillationLoss``), as a ``distillation`` hook."""
    return lambda logits, old, mask: {"kd": weight * losses.knowledge_distillation(logits, old, mask=mask)}


def unbiased_distillation_terms(weight):
    """``{"ukd": weight x MiB's unbiased distillation}`` (MiB's ``utils/loss.py``
    ``UnbiasedKnowledgeDistillationLoss``; MiB, SDR), as a ``distillation`` hook."""
    return lambda logits, old, mask: {"ukd": weight * losses.unbiased_distillation(logits, old, mask=mask)}


@dataclass
class StepInputs:
    """What a method's ``prepare`` hook may read before step t trains.

    Attributes:
        old_model: the frozen step t-1 model; model: the model of step t (new heads added).
        batches, previous_batches: callables giving ``(images (B, 3, H, W), labels (B, H, W))``
            batches of step t's / step t-1's training images, full images without augmentation,
            labelled as that step trains (on ``device``).
        checkpoint, previous_checkpoint: step t's and step t-1's checkpoint files (state files
            sit beside them).
        step: t; setting: ``overlapped`` or ``disjoint``.
    """

    old_model: nn.Module
    model: nn.Module
    batches: Callable
    previous_batches: Callable
    checkpoint: Path
    previous_checkpoint: Path
    step: int
    setting: str
    device: torch.device
