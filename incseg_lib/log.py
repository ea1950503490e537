"""The library's messages: every module logs to a child of the ``incseg_lib`` logger (``logging``,
not ``print``), so a caller decides where they go.

By default the ``incseg_lib`` logger prints INFO and above, the bare message, to whatever
``sys.stdout`` is at the time (a notebook cell, papermill's capture, the terminal), and does not
pass them on to the root logger, so an application that configures logging itself does not see
each line twice. To take them over::

    import logging
    lib = logging.getLogger("incseg_lib")
    lib.handlers.clear()       # no printing of our own
    lib.propagate = True       # the application's handlers receive them

Quieter: ``logging.getLogger("incseg_lib").setLevel(logging.WARNING)``, before or after importing
the library (what ranks > 0 of a ``torchrun`` launch and the benchmarks do). Progress bars stay
tqdm's, on stderr.
"""

from __future__ import annotations

import logging
import sys

ROOT = "incseg_lib"


class _CurrentStdout(logging.StreamHandler):
    """A stream handler bound to ``sys.stdout`` as it is at each message, not at import: a notebook
    kernel, papermill and pytest replace ``sys.stdout`` after the library is imported."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # logging.StreamHandler assigns it; the current stdout wins
        pass


def _install() -> logging.Logger:
    root = logging.getLogger(ROOT)
    if not any(isinstance(h, _CurrentStdout) for h in root.handlers):
        handler = _CurrentStdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        if root.level == logging.NOTSET:  # a level the caller set before importing the library stands
            root.setLevel(logging.INFO)
        root.propagate = False
    return root


def stdout_handler() -> logging.Handler | None:
    """The handler that prints the library's messages (None once a caller removed it)."""
    return next((h for h in logging.getLogger(ROOT).handlers if isinstance(h, _CurrentStdout)), None)


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (pass ``__name__``), under ``incseg_lib``."""
    return logging.getLogger(name)


_install()
