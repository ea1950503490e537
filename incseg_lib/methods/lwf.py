"""LwF (Li & Hoiem, TPAMI 2017) as MiB's code runs it: cross-entropy plus distillation of the old
model's softmax over the old outputs, weight 100 (fcdl94/MiB ``argparser.py``
``modify_command_options``: ``--method LWF`` sets ``loss_kd = 100``; ``utils/loss.py``
``KnowledgeDistillationLoss``)."""

from __future__ import annotations

from .base import Method, distillation_terms, plain_ce
from .registry import MethodSpec, register


def build(name: str, weights: dict) -> Method:
    """LwF's hooks: cross-entropy and ``weights["kd"]`` x output distillation."""
    return Method(name, plain_ce, distillation_terms(weights["kd"]), weights=weights)


SPEC = register(
    MethodSpec(
        name="lwf",
        label="LwF",
        order=20,
        build=build,
        defaults={"kd": 100.0},
        main_weight="kd",
        family="output distillation",
        source="Li & Hoiem, TPAMI 2017; fcdl94/MiB argparser.py (--method LWF: loss_kd 100), utils/loss.py",
    )
)
