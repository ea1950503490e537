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


class TrainingLog:
    """A ``print_fn`` for long studies: every line goes to ``<run dir>/logs/<notebook>.log``; only the
    lines a reader follows (each step's header, its evaluation, warnings) are printed, not one per
    epoch, which the training-curve figures show instead (:func:`~incseg_lib.viz.training_curves`).

    A log folder that cannot be written (read-only, full) prints everything instead, once said.
    """

    def __init__(self, cfg: RunConfig, notebook: str, print_fn: Callable = print):
        from pathlib import Path

        self.path = Path(cfg.run_dir) / "logs" / f"{notebook}.log"
        self.print_fn, self.file = print_fn, None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = self.path.open("a", encoding="utf-8")  # a log grows line by line; each is flushed
        except OSError as e:
            print_fn(f"the training log cannot be written to {self.path} ({e.strerror or e}); printing it here")

    def __call__(self, *parts) -> None:
        line = " ".join(str(p) for p in parts)
        if self.file is not None:
            try:
                self.file.write(line + "\n")
                self.file.flush()
            except OSError as e:
                self.file = None
                self.print_fn(f"the training log stopped at {self.path} ({e.strerror or e}); printing it here")
        if self.file is None or not line.lstrip().startswith("epoch "):
            self.print_fn(line)
