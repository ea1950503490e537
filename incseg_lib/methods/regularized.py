"""EWC, PI and RW: FT's cross-entropy plus a quadratic penalty on the change of every parameter,
weighted by its importance (:mod:`incseg_lib.regularizers`), as MiB's code runs them: EWC
(Kirkpatrick et al., PNAS 2017) 500, PI (Zenke et al., ICML 2017) 500, RW (Chaudhry et al., ECCV
2018) 100 (fcdl94/MiB ``argparser.py`` ``modify_command_options``; ``utils/regularizer.py``).
One module for the three: they differ only in the importance the penalty reads."""

from __future__ import annotations

from .base import Method, plain_ce
from .registry import MethodSpec, register


def build(name: str, weights: dict) -> Method:
    """The hooks of EWC, PI or RW (``name``): cross-entropy and the ``weights["reg"]`` penalty."""
    return Method(name, plain_ce, regularizer=name, weights=weights)


def _spec(name: str, label: str, order: int, weight: float, paper: str, key_options=()) -> MethodSpec:
    return register(
        MethodSpec(
            name=name,
            label=label,
            order=order,
            build=build,
            defaults={"reg": weight},
            main_weight="reg",
            family="parameter regularisation",
            key_options=key_options,
            source=f"{paper}; fcdl94/MiB argparser.py (--method {label}: reg_importance {weight:g}), "
            "utils/regularizer.py",
        )
    )


EWC = _spec("ewc", "EWC", 50, 500.0, "Kirkpatrick et al., PNAS 2017")
PI = _spec("pi", "PI", 60, 500.0, "Zenke et al., ICML 2017", key_options=("pi_estimator",))  # which PI score
RW = _spec("rw", "RW", 70, 100.0, "Chaudhry et al., ECCV 2018")
