"""DFT*, fine-tuning on frozen features (Yu et al., "Revisiting Continual Semantic Segmentation
with Pre-trained Vision Models", arXiv 2508.04267; BladeDancer957/RevisitingCSS, the scripts
``scripts/RevisitingCSS/ft_*-FixBC-P.sh``: ``--method FT --fix_backbone --fix_pre_cls
--pre_allocate --task_num <steps>``).

From step 1 on, everything but the classifier heads of the current and future steps is frozen:
the backbone and its head (``--fix_backbone``; ``train.py`` L432-438: ``requires_grad = False`` and
``.eval()`` after ``model.train()``, so BatchNorm keeps its step-0 statistics: the engine's
:func:`~incseg_lib.engine.fit.keep_frozen_statistics`) and the classifiers of every earlier step
(``--fix_pre_cls``; L424-431). The loss is plain softmax cross-entropy on the step's labels, as FT.

``--pre_allocate`` (``segmentation_module.py`` L364-366) builds at step 0 the classifier heads of
every step of the task (``--task_num``): step 0's loss then scores each pixel against the future
classes too, which never appear in its labels, so their heads learn as negatives ("background
for now") before their step comes. A course knows its task in advance (15-1 is six steps, from
the start), which is what pre-allocation needs; a learner that does not know how many classes will
come cannot do it. ``dft-nopre`` is DFT* without pre-allocation: the shared step 0, a new head per
step (PyTorch's default initialisation), the same freezing.

Protocol (``ft_resnet101_15-1-FixBC-P.sh``): step 0 at lr 0.02 (L45), every later step at 0.0005
(L18), i.e. 1/40 of step 0's; 30 epochs each (L42-43), batch 24 (L41); the loss averaged over
every pixel (``train.py`` L111 ``CrossEntropyLoss(reduction='none')``, L590 ``loss.mean()``).

Difference, named: the official inference takes the argmax over every head, future ones included
(``train.py`` L986, ``validate``: ``outputs.max(dim=1)``), so a pixel can be predicted as a class not yet
learnt. Here the heads of future steps are left out at inference
(:attr:`~incseg_lib.models.IncrementalClassifier.seen_steps`), as evaluating over the classes seen
so far means.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from .base import Method, StepInputs, StepProtocol, plain_ce
from .registry import MethodSpec, register

PROTOCOL = StepProtocol(
    0.0005 / 0.02,
    "all",
    source="BladeDancer957/RevisitingCSS scripts/RevisitingCSS/ft_resnet101_15-1-FixBC-P.sh L18 (LR=0.0005 "
    "for step > 0), L45 (--lr 0.02 at step 0); train.py L111, L590 (reduction='none', loss.mean())",
)


def freeze_all_but_heads_from(model: nn.Module, step: int) -> None:
    """DFT*'s freezing at ``step`` >= 1: every parameter of ``model`` stops learning except the
    classifier heads of steps ``step`` and later (the current one and, with pre-allocation, the
    future ones), on every classifier (BiSeNet's final and auxiliary ones).

    Raises:
        ValueError: ``step`` < 1, or a model without ``classifiers()``.
    """
    if step < 1:
        raise ValueError(f"DFT* freezes from step 1 on, got step {step}")
    if not hasattr(model, "classifiers"):
        raise ValueError(f"DFT* needs a model with incremental classifiers, got {type(model).__name__}")
    model.requires_grad_(False)
    for clf in model.classifiers():
        for head in list(clf.heads)[step:]:
            head.requires_grad_(True)


def build(name: str, weights: dict) -> Method:
    """DFT*'s hooks: plain cross-entropy, and the freezing done before the step trains."""

    def prepare(inputs: StepInputs):
        freeze_all_but_heads_from(inputs.model, inputs.step)
        return None

    return Method(name, plain_ce, weights=weights, prepare=prepare)


def _step0_loss(aux_weight: float):
    """Step 0 of DFT*: the engine's softmax cross-entropy (None), over the pre-allocated heads too."""
    return None


SPEC = register(
    MethodSpec(
        name="dft",
        label="DFT*",
        order=120,
        build=build,
        protocol=PROTOCOL,
        family="frozen features",
        step0="step0-prealloc",
        step0_label="step 0 (heads pre-allocated)",
        step0_loss=_step0_loss,
        preallocate=True,
        source="Yu et al., arXiv 2508.04267; BladeDancer957/RevisitingCSS argparser.py L580-585, train.py "
        "L423-438, segmentation_module.py L364-366",
    )
)

NO_PREALLOCATION = register(
    dataclasses.replace(
        SPEC,
        name="dft-nopre",
        label="DFT* (no pre-allocation)",
        order=121,
        step0="step0",
        step0_label="",
        step0_loss=None,
        preallocate=False,
        ablation_of="dft",
    )
)
