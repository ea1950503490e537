"""TensorBoard logging that never stops training (a folder that cannot be written turns it off)."""

from __future__ import annotations

import contextlib


class TensorBoard:
    """TensorBoard's ``SummaryWriter`` that never stops training: a log folder that cannot be made
    or written (a full disk, a read-only run folder) turns the logging off with one warning naming
    the folder; the curves then come only from the history in the records."""

    def __init__(self, log_dir):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir, self.writer = str(log_dir), None
        try:
            self.writer = SummaryWriter(self.log_dir)
        except OSError as e:
            self._off(e)

    def _off(self, e: OSError) -> None:
        import warnings

        warnings.warn(
            f"TensorBoard is off for this step: its folder {self.log_dir} cannot be written "
            f"({e.strerror or e}); training goes on and its losses are kept in the record",
            stacklevel=3,
        )
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.writer = None

    def _call(self, name: str, *args) -> None:
        if self.writer is None:
            return
        try:
            getattr(self.writer, name)(*args)
        except OSError as e:
            self._off(e)

    def add_scalar(self, *args) -> None:
        self._call("add_scalar", *args)

    def flush(self) -> None:
        self._call("flush")

    def close(self) -> None:
        self._call("close")
        self.writer = None


def tensorboard_writer(log_dir):
    """A :class:`TensorBoard` writing to ``log_dir``, or None when ``log_dir`` is None."""
    return None if log_dir is None else TensorBoard(log_dir)
