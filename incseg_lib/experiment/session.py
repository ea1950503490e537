"""A notebook's session in one call: its parameters cell becomes a :class:`RunConfig`, a run folder,
a seed and one printed line, so a lab starts at its first lesson."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from ..config import RunConfig
from ..env import notebook_run_dir, set_seed

#: Parameters whose 0 is a value, not "the profile's".
_ZERO_IS_A_VALUE = {"seed"}


def notebook_overrides(parameters: Mapping) -> dict:
    """The :class:`RunConfig` overrides in a notebook's ``parameters`` (its namespace): every name
    that is a :class:`RunConfig` field, with papermill's "use the profile's value" sentinels
    (``""``, and ``0`` for a number other than ``seed``) mapped to None. Other names (the plan's
    ``tasks``, ``methods``, ...) are the notebook's own and are skipped."""
    fields = {f.name for f in dataclasses.fields(RunConfig)} - {"profile", "run_dir"}
    out = {}
    for name in fields & set(parameters):
        value = parameters[name]
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        out[name] = None if value == "" or (is_number and value == 0 and name not in _ZERO_IS_A_VALUE) else value
    return out


def open_notebook(notebook: str, parameters: Mapping, print_fn: Callable = print) -> RunConfig:
    """Open ``notebook``'s session from its parameters (``globals()`` after the parameters cell).

    The profile is ``parameters["profile"]`` (``smoke`` when ``parameters["smoke"]`` is true); every
    parameter named like a :class:`RunConfig` field overrides it (:func:`notebook_overrides`); the
    run folder is ``run_dir`` or ``$INCSEG_HOME/runs/<notebook>``. Seeds Python, NumPy and PyTorch
    with the configuration's seed and prints what the run trains with, in one line.

    Raises:
        ValueError: an unknown profile, or a value that does not fit its field (names both).
    """
    profile = "smoke" if parameters.get("smoke") else parameters.get("profile", "demo")
    cfg = RunConfig.from_profile(
        profile,
        run_dir=notebook_run_dir(notebook, parameters.get("run_dir", "")),
        **notebook_overrides(parameters),
    )
    set_seed(cfg.seed)
    later = f"; later steps {cfg.epochs_at(1)} epochs, {cfg.protocol} protocol" if cfg.task != "offline" else ""
    print_fn(
        f"{notebook}: {cfg.profile} profile, {cfg.dataset}, {cfg.model} {cfg.backbone}, crop {cfg.crop_size}, "
        f"step 0 {cfg.epochs_at(0)} epochs at lr {cfg.lr_at(0):g}{later}; seed {cfg.seed}, "
        f"{cfg.torch_device()}; results in {cfg.run_dir}"
    )
    return cfg
