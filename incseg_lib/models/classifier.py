"""The incremental classifier: one 1x1-conv head per step, outputs concatenated by step."""

from __future__ import annotations

import torch
from torch import nn


class IncrementalClassifier(nn.Module):
    """Per-step 1x1 convolutions whose outputs are concatenated along channels.

    Step t's head predicts the classes added at step t (step 0's includes background), so
    later methods can freeze old heads, distil old outputs and initialise the new head (MiB's
    initialisation, Cermelli et al. CVPR 2020, Sec. 3.3) one step at a time.

    Args:
        in_channels: channels of the feature map fed to the heads.
        classes_per_step: output classes of each step so far, e.g. ``[16, 1, 1]`` for 15-1 at step 2.

    Shapes:
        input ``(B, in_channels, H, W)`` -> output ``(B, sum(classes_per_step), H, W)``; in eval mode
        with :attr:`seen_steps` set, ``(B, sum(classes_per_step[:seen_steps]), H, W)``.

    Attributes:
        seen_steps: None (every head, the default) or the number of leading heads whose classes
            have been seen: heads allocated ahead for future steps (DFT*'s pre-allocation,
            :mod:`incseg_lib.methods.dft`) train as negatives but are left out at inference, so a
            pixel is never predicted as a class not learnt yet. Not part of the state dict.
    """

    def __init__(self, in_channels: int, classes_per_step: list[int]):
        super().__init__()
        if not classes_per_step or any(int(n) <= 0 for n in classes_per_step):
            raise ValueError(f"classes_per_step must be positive counts, got {classes_per_step}")
        self.in_channels = in_channels
        self.heads = nn.ModuleList(nn.Conv2d(in_channels, int(n), 1) for n in classes_per_step)
        self.seen_steps: int | None = None

    @property
    def classes_per_step(self) -> list[int]:
        return [h.out_channels for h in self.heads]

    @property
    def num_classes(self) -> int:
        return sum(self.classes_per_step)

    def add_step(self, num_new: int) -> nn.Conv2d:
        """Append a head for ``num_new`` new classes (on the device/dtype of the existing ones)."""
        ref = self.heads[0].weight
        head = nn.Conv2d(self.in_channels, int(num_new), 1).to(device=ref.device, dtype=ref.dtype)
        self.heads.append(head)
        return head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads = self.heads if self.training or self.seen_steps is None else self.heads[: self.seen_steps]
        return torch.cat([h(x) for h in heads], dim=1)
