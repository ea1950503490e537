"""FT: plain fine-tuning, softmax cross-entropy on the step's labels only (the lower bound of every
table; fcdl94/MiB ``--method FT``)."""

from __future__ import annotations

from .base import Method, plain_ce
from .registry import MethodSpec, register


def build(name: str, weights: dict) -> Method:
    """FT's hooks: the classification loss alone."""
    return Method(name, plain_ce, weights=weights)


SPEC = register(
    MethodSpec(
        name="ft",
        label="FT",
        order=10,
        build=build,
        family="fine-tuning",
        source="fcdl94/MiB argparser.py --method FT",
    )
)
