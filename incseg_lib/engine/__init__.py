"""Training and evaluation: :func:`fit` (SGD + poly LR, AMP, checkpoints after every epoch, exact
resume, several processes under ``torchrun``), :func:`evaluate` (full images, a confusion matrix),
and the device rules both follow (:mod:`.device`). Read them one at a time: ``device`` (what runs
where), ``fit`` (the training loop in named parts), ``evaluate``, ``checkpoints``.
"""

from .checkpoints import CheckpointMismatch, load_checkpoint, save_checkpoint
from .device import (
    AMP_MODES,
    CPU_CHANNELS_LAST_MIN_SIDE,
    Accel,
    RankSlice,
    accel,
    channels_last_rule,
    decisions,
    distributed,
    is_main,
)
from .evaluate import SizeGroupedBatchSampler, evaluate, predict
from .fit import fit, log_timing
from .hooks import Penalty, Tracker, TrackerGroup
from .optim import OPTIMIZERS, make_optimizer, poly_lr
from .options import Hardware, Hooks, Saving, Schedule

__all__ = [
    "Hardware",
    "Hooks",
    "Saving",
    "Schedule",
    "AMP_MODES",
    "CPU_CHANNELS_LAST_MIN_SIDE",
    "OPTIMIZERS",
    "Accel",
    "CheckpointMismatch",
    "RankSlice",
    "SizeGroupedBatchSampler",
    "Penalty",
    "Tracker",
    "TrackerGroup",
    "accel",
    "channels_last_rule",
    "decisions",
    "distributed",
    "evaluate",
    "fit",
    "is_main",
    "load_checkpoint",
    "log_timing",
    "make_optimizer",
    "poly_lr",
    "predict",
    "save_checkpoint",
]
