"""What :func:`~incseg_lib.engine.fit` is told, in four objects: the optimisation (:class:`Schedule`),
where and how it runs (:class:`Hardware`), the checkpoint it writes and resumes from
(:class:`Saving`), and what a method adds to the loop (:class:`Hooks`).
:func:`incseg_lib.experiment.fit_options` makes the first two from a ``RunConfig``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .hooks import Penalty, Tracker


@dataclass(frozen=True)
class Schedule:
    """The optimisation: SGD with the poly learning rate (power 0.9, per iteration).

    Attributes:
        epochs: passes over the training set.
        batch_size: images per iteration (over all processes under ``torchrun``).
        lr: base learning rate of the poly schedule.
        momentum, weight_decay: SGD's.
        optimizer: ``sgd`` or ``sgd-mib`` (see :func:`~incseg_lib.engine.make_optimizer`).
        aux_weight: weight of each auxiliary loss of the default loss.
        seed: the data order and augmentation of epoch ``e`` depend on ``(seed, e)`` alone.
    """

    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    optimizer: str = "sgd"
    aux_weight: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Hardware:
    """Where and how the loop runs; none of it changes what is learned on a CPU.

    Attributes:
        device: where to train.
        amp, channels_last, pin_memory: see :func:`~incseg_lib.engine.accel` (default: float16 AMP
            and pinned batches on CUDA only, channels_last by its rule; each can be forced).
        num_workers: DataLoader worker processes.
        sync_bn: with several processes (``torchrun``), SyncBatchNorm (CUDA only) instead of
            per-process batch statistics.
        sync_every: iterations between reads of the loss back to the host (progress bar,
            TensorBoard, the non-finite-loss check): loss terms are summed on the device, so a GPU
            is not stalled every iteration; a NaN/inf loss still stops training at most this many
            iterations after it appeared, naming the iteration.
    """

    device: torch.device | str = "cpu"
    amp: bool | str = True
    channels_last: bool | None = None
    pin_memory: bool | None = None
    num_workers: int = 0
    sync_bn: bool = False
    sync_every: int = 20


@dataclass(frozen=True)
class Saving:
    """The checkpoint a run writes and resumes from.

    Attributes:
        checkpoint: file written atomically after every ``every`` epochs; if it exists with the same
            ``key`` training resumes after its last epoch (a finished run returns at once); training
            holds :func:`~incseg_lib.store.checkpoint_lock` on it, so a second process waits and
            then reuses it. The last epoch's file keeps the weights only. None: nothing is saved.
        key: what determines the weights (``RunConfig.training_key``).
        every: write the checkpoint (and the tracker's state) every this many epochs; the last
            epoch is always written; 0 = only the last.
        stop_after_epoch: stop (as if killed) after this epoch; for tests and demonstrations.
    """

    checkpoint: Path | None = None
    key: dict | None = None
    every: int = 1
    stop_after_epoch: int | None = None


@dataclass(frozen=True)
class Hooks:
    """What a method adds to the loop (:mod:`incseg_lib.methods`).

    Attributes:
        loss_fn: ``(model, images, targets, outputs) -> dict`` with a ``loss`` entry; default
            :func:`~incseg_lib.losses.bisenet_loss` with cross-entropy.
        tracker: a :class:`~incseg_lib.engine.Tracker` (EWC/PI/RW importance, SDR's prototypes)
            updated after every optimiser step and saved with the checkpoint.
        penalty: a :class:`~incseg_lib.engine.Penalty` added to ``loss_fn``'s total; the loss dict
            then also holds ``task`` (the total without it) and ``penalty``, and the tracker sees
            the gradient of ``task`` alone, as MiB's ``train.py`` updates its regularizer between
            the task loss's backward and the penalty's.
        batch_sampler_fn: ``generator -> batch sampler`` that composes the batches instead of plain
            shuffling (e.g. :class:`~incseg_lib.exemplars.ReplayBatchSampler`), seeded per epoch.
        finish: ``model -> None`` applied in place once, when the last epoch ends and before the
            final checkpoint is written (EWF's weight fusion), so the checkpoint, a later reuse of
            it and the next step all see the finished model; never applied to a loaded finished
            checkpoint.
    """

    loss_fn: Callable | None = None
    tracker: Tracker | None = None
    penalty: Penalty | None = None
    batch_sampler_fn: Callable | None = None
    finish: Callable | None = None
