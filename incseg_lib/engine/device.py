"""The device-dependent choices of training and evaluation, and the process group.

Every branch a GPU takes (autocast, grad scaler, NHWC memory layout, pinned memory) is decided
here by pure functions of the device, the options and the input shape, so the same branches run
on a CPU when forced (the tests exercise them there) and the numbers never depend on timing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler

AMP_MODES = (True, False, "auto", "fp16", "bf16")


@dataclass(frozen=True)
class Accel:
    """The device-dependent choices of :func:`fit` and :func:`evaluate`, made in one place so that every
    branch a GPU takes also runs on a CPU when asked (tests exercise them there).

    Attributes:
        autocast_dtype: ``torch.float16``/``torch.bfloat16`` for mixed precision, None for float32.
        grad_scaler: scale the loss (float16 only; bfloat16 has float32's exponent range).
        channels_last: model weights and inputs in NHWC memory format (faster convolutions on
            tensor cores).
        pin_memory: page-locked host batches, so ``.to(device, non_blocking=True)`` overlaps the copy.
    """

    autocast_dtype: torch.dtype | None
    grad_scaler: bool
    channels_last: bool
    pin_memory: bool


def accel(
    device,
    amp: bool | str = "auto",
    channels_last: bool | None = None,
    pin_memory: bool | None = None,
    shape: tuple | None = None,
) -> Accel:
    """How to drive ``device``: a pure function of the device type, the options and the input shape.

    Args:
        amp: ``True``/``"auto"``: float16 autocast with a grad scaler on CUDA (the ``colab``/``paper``
            profiles' GPU path), float32 elsewhere; ``"fp16"``/``"bf16"``: that autocast on any device
            (``"fp16"`` with the grad scaler), e.g. CPU bfloat16 autocast; ``False``: float32.
        channels_last: None = :func:`channels_last_rule` for ``shape``; True/False force it.
        pin_memory: None = on CUDA only; True/False force it.
        shape: the input batch shape ``(B, 3, H, W)`` (for the layout rule).

    Raises:
        ValueError: an unknown ``amp``.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp={amp!r}; choose one of {AMP_MODES}")
    cuda = torch.device(device).type == "cuda"
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp) if isinstance(amp, str) else None
    if amp is True or amp == "auto":
        dtype = torch.float16 if cuda else None
    return Accel(
        autocast_dtype=dtype,
        grad_scaler=dtype == torch.float16,
        channels_last=channels_last_rule(device, shape) if channels_last is None else bool(channels_last),
        pin_memory=cuda if pin_memory is None else bool(pin_memory),
    )


# The shorter input side from which NHWC trains and evaluates a BiSeNet faster than NCHW on a CPU
# (benchmarks/train_throughput.py --compare-channels-last, ResNet-18, batch 8, one thread, torch
# 2.14.1 on the project's 2-core x86_64 reference machine: NHWC/NCHW speed 0.87 train at 64 px, 0.94
# at 96, 1.02 at 128, 1.07 at 160, 1.06 at 192; evaluation 1.23 at 160, 1.32 at 192, mixed below).
CPU_CHANNELS_LAST_MIN_SIDE = 160


def channels_last_rule(device, shape: tuple | None = None) -> bool:
    """Whether to run NHWC (``channels_last``) on ``device`` for inputs of ``shape`` ``(B, C, H, W)``.

    A fixed rule, never a timing: the memory layout changes the order of floating-point sums, so a
    layout chosen by measuring the machine at that moment would make the numbers depend on its load.
    CUDA: always (tensor cores want NHWC). CPU: when the shorter side of ``shape`` is at least
    :data:`CPU_CHANNELS_LAST_MIN_SIDE` pixels (measured once, see there); without a shape, NCHW.
    ``$INCSEG_CHANNELS_LAST`` = ``1``/``0`` decides instead, on every device. The decision a run
    took is recorded with its results (``decisions``).
    """
    env = os.environ.get("INCSEG_CHANNELS_LAST", "").strip()
    if env in ("0", "1"):
        return env == "1"
    dev = torch.device(device)
    if dev.type == "cuda":
        return True
    if dev.type != "cpu" or shape is None:
        return False
    return min(int(shape[-2]), int(shape[-1])) >= CPU_CHANNELS_LAST_MIN_SIDE


def decisions(acc: Accel, device) -> dict:
    """What a computation decided and on how many threads, for its record: ``{"device", "threads",
    "channels_last", "autocast"}`` (``autocast``: ``"float16"``, ``"bfloat16"`` or ``"float32"``)."""
    return {
        "device": str(torch.device(device)),
        "threads": torch.get_num_threads(),
        "channels_last": acc.channels_last,
        "autocast": str(acc.autocast_dtype).replace("torch.", "") if acc.autocast_dtype else "float32",
    }


def distributed() -> tuple[int, int]:
    """``(rank, world size)`` of the ``torch.distributed`` process group, ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True in the process that writes checkpoints, records and logs (rank 0, or the only one)."""
    return distributed()[0] == 0


class _NonEmpty(Sampler):
    """The batches of ``batches`` that are not empty (a rank's slice of a small last batch may be)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return (b for b in self.batches if len(b))

    def __len__(self):
        return sum(1 for _ in self)


class RankSlice(Sampler):
    """One rank's share of every global batch of ``batches``: ``batch[rank::world]``.

    Every rank draws the same global batches (same seed), so a run on N processes sees exactly the
    batches of a one-process run with the same global batch size, split N ways; this works for any
    batch sampler (plain shuffling, :class:`~incseg_lib.exemplars.ReplayBatchSampler`).
    """

    def __init__(self, batches, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self):
        for batch in self.batches:
            yield list(batch)[self.rank :: self.world]

    def __len__(self):
        return len(self.batches)


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
