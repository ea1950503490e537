"""ILT (Michieli & Zanuttigh, ICCVW 2019) as MiB's code runs it: LwF's output distillation (KD 100)
plus the mean squared distance between the new and old encoder features (weight 100)
(fcdl94/MiB ``argparser.py`` ``--method ILT``: ``loss_kd = 100``, ``loss_de = 100``; ``train.py``
``loss_de``: ``nn.MSELoss`` on the encoder output)."""

from __future__ import annotations

from .. import losses
from .base import Method, distillation_terms, plain_ce
from .registry import MethodSpec, register


def _feature_terms(weight: float):
    return lambda f, old, mask: {"feature": weight * losses.feature_distillation(f, old, mask)}


def build(name: str, weights: dict) -> Method:
    """ILT's hooks: cross-entropy, output distillation and encoder-feature distillation."""
    return Method(
        name, plain_ce, distillation_terms(weights["kd"]), _feature_terms(weights["feature"]), weights=weights
    )


SPEC = register(
    MethodSpec(
        name="ilt",
        label="ILT",
        order=40,
        build=build,
        defaults={"kd": 100.0, "feature": 100.0},
        main_weight="kd",
        family="output distillation",
        source="Michieli & Zanuttigh, ICCVW 2019; fcdl94/MiB argparser.py (--method ILT), train.py loss_de",
    )
)
