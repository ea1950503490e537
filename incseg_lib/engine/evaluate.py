"""Evaluation on full images (no resizing, no padding): a confusion matrix per run, split across the
ranks of a process group."""

from __future__ import annotations

import math
import time
from collections import defaultdict

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from ..env import show_progress
from ..metrics import ConfusionMatrix
from .device import RankSlice, _NonEmpty, accel, decisions, distributed, is_main
from .fit import _collect_loader_garbage, log_timing


class SizeGroupedBatchSampler(Sampler):
    """Batches of indices whose images share one size, so full images batch without padding.

    Args:
        sizes: ``(H, W)`` per index. The order is deterministic (by size, then index).
    """

    def __init__(self, sizes: list[tuple[int, int]], batch_size: int):
        groups: dict = defaultdict(list)
        for i, s in enumerate(sizes):
            groups[tuple(s)].append(i)
        self.batches = [
            idx[j : j + batch_size]
            for s in sorted(groups)
            for idx in [groups[s]]
            for j in range(0, len(idx), batch_size)
        ]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset,
    num_classes: int,
    *,
    device="cpu",
    batch_size: int = 8,
    num_workers: int = 0,
    amp: bool | str = True,
    progress: bool = True,
    desc: str = "eval",
    channels_last: bool | None = None,
    pin_memory: bool | None = None,
) -> dict:
    """Evaluate on full images (no resizing, no padding); return the confusion matrix and timing.

    Args:
        dataset: yields ``(image (3,H,W) float, mask (H,W) int64)`` with labels in ``0..C-1``/255.
        num_classes: C, the model's output classes.
        amp, channels_last, pin_memory: see :func:`accel`.

    Returns:
        ``{"confusion": ConfusionMatrix, "seconds": float, "images_per_second": float, "images": int}``;
        in a process group every rank evaluates its slice of each batch and gets the summed matrix.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    shape = None
    if len(dataset):  # the layout of the first image's size: one rule for the whole evaluation
        h, w = dataset.image_size(0) if hasattr(dataset, "image_size") else tuple(dataset[0][0].shape[-2:])
        shape = (batch_size, 3, h, w)
    acc = accel(device, amp, channels_last, pin_memory, shape=shape)
    model.to(device).eval()
    model.to(memory_format=torch.channels_last if acc.channels_last else torch.contiguous_format)
    sizes = (
        [dataset.image_size(i) for i in range(len(dataset))]
        if hasattr(dataset, "image_size")
        else [(0, 0)] * len(dataset)
    )
    rank, world = distributed()
    batches = SizeGroupedBatchSampler(sizes, batch_size)
    if world > 1:  # each rank evaluates its slice of every batch; the confusion matrices are summed
        batches = _NonEmpty(RankSlice(batches, rank, world))
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, pin_memory=acc.pin_memory)
    cm = ConfusionMatrix(num_classes)
    t0, n = time.perf_counter(), 0
    for x, y in tqdm(loader, desc=desc, leave=False, disable=not show_progress(progress)):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if acc.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            device.type, dtype=acc.autocast_dtype or torch.bfloat16, enabled=acc.autocast_dtype is not None
        ):
            logits = model(x)["out"]
        if logits.shape[-2:] != y.shape[-2:]:
            logits = torch.nn.functional.interpolate(
                logits.float(), size=y.shape[-2:], mode="bilinear", align_corners=False
            )
        cm.update(logits.argmax(1), y)
        n += x.shape[0]
    del loader
    _collect_loader_garbage(num_workers)
    if world > 1:
        import torch.distributed as dist

        red = torch.cat([cm.mat.flatten(), torch.tensor([n])]).to(device)
        dist.all_reduce(red)
        red = red.cpu()
        cm.mat.copy_(red[:-1].reshape(cm.mat.shape))
        n = int(red[-1])
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if is_main():
        log_timing("eval", seconds, images=n)
    return {
        "confusion": cm,
        "seconds": seconds,
        "images": n,
        "decisions": decisions(acc, device),
        "images_per_second": n / seconds if seconds > 0 else math.nan,
    }


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, device="cpu") -> torch.Tensor:
    """Class-id predictions ``(B, H, W)`` int64 for normalised images ``(B, 3, H, W)``."""
    model.to(device).eval()
    return model(images.to(device))["out"].argmax(1).cpu()
