"""Incremental methods: one module per method, each declaring its identity beside its hooks.

:mod:`~incseg_lib.methods.base` holds what every method is made of (:class:`Method`,
:class:`StepProtocol`, :class:`StepInputs`, the shared loss pieces); :mod:`~incseg_lib.methods.registry`
the one list of methods (:class:`MethodSpec`, :func:`register`, :func:`get_method`). Shipped:
``ft``; ``lwf``, ``lwf-mc``, ``ilt`` (output distillation); ``ewc``, ``pi``, ``rw`` (parameter
regularisation); ``mib`` (the methods of MiB's official code, fcdl94/MiB); the feature-space
methods ``plop`` (PLOP, CVPR 2021) and ``sdr`` (SDR, CVPR 2021, on top of MiB; ``sdr-only``
without MiB's losses); ``dft`` (DFT*, fine-tuning on frozen features with pre-allocated heads,
:mod:`~incseg_lib.methods.dft`; ``dft-nopre`` without pre-allocation); and ``<method>+ewf`` on top
of any of them (EWF's weight fusion after each step, :mod:`~incseg_lib.methods.ewf`). Step 0 is
plain softmax cross-entropy (``step0``), shared by every method except LwF-MC, whose sigmoid
classifier MiB's code trains with BCE from step 0 on (``step0-bce``), and DFT*, whose step 0 holds
every step's heads (``step0-prealloc``).
Joint, the offline upper bound, is not a step method: see :func:`incseg_lib.experiment.joint_step`.

A new method is a module here (or anywhere: a test, a notebook) that builds its :class:`Method`
and calls :func:`register` with its :class:`MethodSpec`; nothing else lists method names.
"""

from . import dft, ewf, ft, ilt, lwf, lwf_mc, mib, plop, regularized, sdr  # noqa: F401  (each registers itself)
from .base import (
    AUX_MODES,
    CE_NORMALISATIONS,
    DISTILL_PIXELS,
    MIB_TRAINER_PROTOCOL,
    PROTOCOLS,
    Method,
    StepInputs,
    StepProtocol,
    labelled_fraction,
    mib_init,
)
from .registry import (
    FAMILIES,
    MethodSpec,
    get_method,
    is_method,
    method_names,
    method_spec,
    methods_of,
    preallocates,
    register,
    step0_label,
    step0_loss_fn,
    step0_names,
    unregister,
)

__all__ = [
    "AUX_MODES",
    "CE_NORMALISATIONS",
    "DISTILL_PIXELS",
    "FAMILIES",
    "MIB_TRAINER_PROTOCOL",
    "PROTOCOLS",
    "Method",
    "MethodSpec",
    "StepInputs",
    "StepProtocol",
    "get_method",
    "is_method",
    "labelled_fraction",
    "method_names",
    "method_spec",
    "methods_of",
    "mib_init",
    "preallocates",
    "register",
    "step0_label",
    "step0_loss_fn",
    "step0_names",
    "unregister",
]
