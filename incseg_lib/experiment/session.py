"""A notebook's session in one call: its parameters cell becomes a :class:`RunConfig`, a run folder,
a seed and one printed line, so a lab starts at its first lesson."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from ..config import RunConfig
from ..env import notebook_run_dir, set_seed
from ..log import ROOT, get_logger, stdout_handler

log = get_logger(__name__)

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


def open_notebook(notebook: str, parameters: Mapping) -> RunConfig:
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
    log.info(
        f"{notebook}: {cfg.profile} profile, {cfg.dataset}, {cfg.model} {cfg.backbone}, crop {cfg.crop_size}, "
        f"step 0 {cfg.epochs_at(0)} epochs at lr {cfg.lr_at(0):g}{later}; seed {cfg.seed}, "
        f"{cfg.torch_device()}; results in {cfg.run_dir}"
    )
    return cfg


class TrainingLog(logging.Handler):
    """The training log of a long study: while it is open, every library message also goes to
    ``<run dir>/logs/<notebook>.log``, and the per-epoch lines (``epoch 3/8 loss ...``) go only
    there, not to the notebook; a reader follows each step's header, its evaluation and warnings,
    and the training-curve figures show the epochs (:func:`~incseg_lib.viz.training_curves`).

    Opening a notebook's log again (a re-run cell) replaces the one before; :meth:`close` (or a
    ``with`` block) ends it. A log folder that cannot be written (read-only, full) prints
    everything instead, once said.
    """

    def __init__(self, cfg: RunConfig, notebook: str):
        from pathlib import Path

        super().__init__(logging.INFO)
        self.path = Path(cfg.run_dir) / "logs" / f"{notebook}.log"
        self.file = None
        lib = logging.getLogger(ROOT)
        for old in [h for h in lib.handlers if isinstance(h, TrainingLog) and h.path == self.path]:
            old.close()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = self.path.open("a", encoding="utf-8")  # a log grows line by line; each is flushed
        except OSError as e:
            log.warning(f"the training log cannot be written to {self.path} ({e.strerror or e}); printing it here")
            return
        lib.addHandler(self)
        printer = stdout_handler()
        if printer is not None:
            printer.addFilter(self._not_an_epoch)

    def _not_an_epoch(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).lstrip().startswith("epoch ")

    def emit(self, record: logging.LogRecord) -> None:
        if self.file is None:
            return
        try:
            self.file.write(record.getMessage() + "\n")
            self.file.flush()
        except OSError as e:
            self.close()
            log.warning(f"the training log stopped at {self.path} ({e.strerror or e}); printing it here")

    def close(self) -> None:
        """Stop logging to the file and print every line again."""
        logging.getLogger(ROOT).removeHandler(self)
        printer = stdout_handler()
        if printer is not None:
            printer.removeFilter(self._not_an_epoch)
        if self.file is not None:
            self.file.close()
            self.file = None
        super().close()

    def __enter__(self) -> TrainingLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
