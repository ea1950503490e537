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
        input ``(B, in_channels, H, W)`` -> output ``(B, sum(classes_per_step), H, W)``.
    """

    def __init__(self, in_channels: int, classes_per_step: list[int]):
        super().__init__()
        if not classes_per_step or any(int(n) <= 0 for n in classes_per_step):
            raise ValueError(f"classes_per_step must be positive counts, got {classes_per_step}")
        self.in_channels = in_channels
        self.heads = nn.ModuleList(nn.Conv2d(in_channels, int(n), 1) for n in classes_per_step)

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
        return torch.cat([h(x) for h in self.heads], dim=1)
