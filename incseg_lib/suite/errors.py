"""What the suite raises: a failed notebook or a bad parameter, and a stop by Ctrl-C or a signal."""

from __future__ import annotations


class SuiteError(RuntimeError):
    """A notebook failed or a parameter does not exist (the message names notebook and cell).

    Attributes:
        notebook: the failing notebook's file name, ``""`` when no notebook ran.
    """

    def __init__(self, message: str, notebook: str = ""):
        super().__init__(message)
        self.notebook = notebook


class SuiteInterrupted(SuiteError):
    """Ctrl-C stopped the suite; the message says where the run folder is and how to resume."""
