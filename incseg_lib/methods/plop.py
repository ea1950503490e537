"""PLOP (Douillard et al., CVPR 2021): cross-entropy on entropy pseudo-labels of the old model,
weighted per image, Local POD on the ResNet stages, the map the classifier reads and the logits
(weights 0.01 / 0.0005), MiB's classifier initialisation (``init_balanced``), no output
distillation (arthurdouillard/CVPR2021_PLOP ``argparser.py`` ``--method PLOP``; the losses in
:mod:`incseg_lib.plop`)."""

from __future__ import annotations

import torch

from .. import losses
from .. import plop as plop_losses
from .base import Method, StepInputs, StepProtocol, mib_init
from .registry import MethodSpec, register

PROTOCOL = StepProtocol(
    0.1,
    "all",
    source="arthurdouillard/CVPR2021_PLOP scripts/voc/plop_15-1.sh L44-49 (--lr 0.01 at step 0, 0.001 after); "
    "train.py L339, L351-352 (per-image factor times the B x H x W loss, then .mean())",
)


@torch.no_grad()
def prepare(inputs: StepInputs) -> dict:
    """PLOP's entropy thresholds from the old model on step t's training images (``Trainer.before`` ->
    ``find_median``). PLOP reads them off augmented crops of its training loader; here the full images
    without augmentation, so the thresholds do not depend on a random draw."""
    num_old, num_seen = sum(inputs.old_model.classes_per_step), inputs.model.num_classes
    entropies, classes = [], []
    for x, y in inputs.batches():
        probs = torch.softmax(inputs.old_model(x)["out"].float(), dim=1)
        bg = y == 0
        entropies.append(plop_losses.plop_entropy(probs, num_seen)[bg].cpu())
        classes.append(probs.argmax(dim=1)[bg].cpu())
    thresholds = plop_losses.entropy_thresholds(torch.cat(entropies), torch.cat(classes), num_old)
    return {"thresholds": thresholds, "num_old": num_old, "num_seen": num_seen}


def relabel(target, old_out, state):
    return plop_losses.pseudo_label(target, old_out["out"], state["thresholds"], state["num_seen"])


def local_pod_terms(out, old_out, target, state, model):
    num_old, num_seen = state["num_old"], state["num_seen"]
    return {"pod": plop_losses.local_pod(old_out["maps"], out["maps"], num_old, num_seen, num_seen - num_old)}


def classification(logits, target, num_old, weights=None):
    return (
        losses.cross_entropy(logits, target)
        if weights is None
        else plop_losses.weighted_cross_entropy(logits, target, weights)
    )


def build(name: str, weights: dict) -> Method:
    """PLOP's hooks: thresholds before the step, pseudo-labels, weighted CE and Local POD."""
    return Method(
        name,
        classification,
        init_new_heads=mib_init,
        prepare=prepare,
        relabel=relabel,
        extra_terms=local_pod_terms,
        needs_maps=True,
        weights=weights,
    )


SPEC = register(
    MethodSpec(
        name="plop",
        label="PLOP",
        order=90,
        build=build,
        defaults={"pod_features": plop_losses.POD_FEATURE_WEIGHT, "pod_logits": plop_losses.POD_LOGITS_WEIGHT},
        protocol=PROTOCOL,
        family="feature space",
        source="Douillard et al., CVPR 2021; arthurdouillard/CVPR2021_PLOP argparser.py, train.py",
    )
)
