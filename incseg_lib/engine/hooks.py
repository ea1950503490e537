"""What :func:`~incseg_lib.engine.fit` calls on a method's state while it trains: a :class:`Tracker`
(state that follows training and is saved with the checkpoint) and a :class:`Penalty` (added to
the loss of every batch); :class:`TrackerGroup` gives several trackers as one."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn


class Tracker(Protocol):
    """What :func:`fit` calls on a tracker: state that follows training (EWC/PI/RW importance,
    :class:`~incseg_lib.regularizers.ImportanceTracker`; SDR's prototypes,
    :class:`~incseg_lib.sdr.PrototypeMemory`) and is saved and resumed with the checkpoint."""

    def start_epoch(self) -> None:
        """An epoch begins."""

    def capture_gradients(self) -> None:
        """The task loss's gradients are in ``.grad`` (unscaled), before the penalty's are added."""

    def after_step(self, skipped: bool = False) -> None:
        """The optimiser stepped (``skipped``: the grad scaler skipped it)."""

    def save(self, epoch: int, final: bool) -> None:
        """Write the state after ``epoch`` epochs (``final``: training is over)."""

    def resume(self, epoch: int) -> bool:
        """Load the state saved after ``epoch`` epochs; False if there is none to resume."""


class Penalty(Protocol):
    """What :func:`fit` adds to the loss of every batch: ``model -> weighted scalar`` (float32),
    e.g. :class:`~incseg_lib.regularizers.ParameterPenalty`."""

    def __call__(self, model: nn.Module) -> torch.Tensor:
        """The weighted penalty of ``model``'s parameters."""


class TrackerGroup:
    """Several trackers given to :func:`fit` as one (e.g. EWC/PI/RW importance and SDR's prototypes):
    every call goes to each of them, in order; ``resume`` is True only when all resumed."""

    def __init__(self, trackers: list):
        self.trackers = list(trackers)

    def start_epoch(self) -> None:
        for t in self.trackers:
            t.start_epoch()

    def capture_gradients(self) -> None:
        for t in self.trackers:
            t.capture_gradients()

    def after_step(self, skipped: bool = False) -> None:
        for t in self.trackers:
            t.after_step(skipped=skipped)

    def save(self, epoch: int, final: bool) -> None:
        for t in self.trackers:
            t.save(epoch, final=final)

    def resume(self, epoch: int) -> bool:
        return all([t.resume(epoch) for t in self.trackers])  # a list: every tracker tries to resume
