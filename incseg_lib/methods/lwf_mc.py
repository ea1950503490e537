"""LwF-MC (iCaRL's loss without exemplars, Rebuffi et al., CVPR 2017) as MiB's code runs it: a
sigmoid classifier trained with one-hot BCE at every step, step 0 included (its own ``step0-bce``),
plus 10 x BCE distillation of the old sigmoid outputs summed over the old classes (fcdl94/MiB
``argparser.py`` ``--method LWF-MC``: ``icarl``, ``loss_kd = 10``; ``train.py``
``self.bce = opts.bce or opts.icarl``; ``utils/loss.py`` ``IcarlLoss``)."""

from __future__ import annotations

from .. import losses
from .base import Method, bce
from .registry import MethodSpec, register


def _terms(weight: float):
    return lambda logits, old, mask: {"bce_kd": weight * losses.lwf_mc_distillation(logits, old, mask)}


def build(name: str, weights: dict) -> Method:
    """LwF-MC's hooks: one-hot BCE and ``weights["bce_kd"]`` x BCE distillation."""
    return Method(name, bce, _terms(weights["bce_kd"]), weights=weights, step0="step0-bce")


def step0_loss(aux_weight: float = 1.0):
    """Step 0 of the sigmoid classifier: BiSeNet's joint loss with one-hot BCE."""
    return lambda model, x, y, out: losses.bisenet_loss(out, y, losses.bce_one_hot, aux_weight)


SPEC = register(
    MethodSpec(
        name="lwf-mc",
        label="LwF-MC",
        order=30,
        build=build,
        defaults={"bce_kd": 10.0},
        main_weight="bce_kd",
        family="output distillation",
        step0="step0-bce",
        step0_label="step 0 (BCE)",
        step0_loss=step0_loss,
        source="Rebuffi et al., CVPR 2017; fcdl94/MiB argparser.py (--method LWF-MC), utils/loss.py IcarlLoss",
    )
)
