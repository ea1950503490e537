"""MiB (Cermelli et al., CVPR 2020): unbiased cross-entropy (background pixels score background plus
the old classes), unbiased distillation (the old model's background against the new model's
background plus new classes), weight 10 for every task, and the classifier initialisation of
Sec. 3.4 (fcdl94/MiB ``argparser.py`` ``modify_command_options``: ``opts.loss_kd = 10`` for
``--method MiB``, no larger 15-1 weight in its code; ``utils/loss.py`` ``UnbiasedCrossEntropy``,
``UnbiasedKnowledgeDistillationLoss``; ``segmentation_module.py`` ``init_new_classifier``)."""

from __future__ import annotations

from .base import Method, mib_init, unbiased_ce, unbiased_distillation_terms
from .registry import MethodSpec, register


def build(name: str, weights: dict) -> Method:
    """MiB's hooks: unbiased CE, ``weights["ukd"]`` x unbiased KD, MiB's initialisation."""
    return Method(
        name, unbiased_ce, unbiased_distillation_terms(weights["ukd"]), init_new_heads=mib_init, weights=weights
    )


SPEC = register(
    MethodSpec(
        name="mib",
        label="MiB",
        order=80,
        build=build,
        defaults={"ukd": 10.0},
        main_weight="ukd",
        family="unbiased distillation",
        source="Cermelli et al., CVPR 2020; fcdl94/MiB argparser.py, utils/loss.py, segmentation_module.py",
    )
)
