"""A linear probe: a fresh 1x1 classifier on the frozen features a segmentation model's classifier
reads, to measure what the features still know when the model's own classifier has drifted.

The diagnostic of "Revisiting Continual Semantic Segmentation with Pre-trained Vision Models"
(arXiv 2508.04267; BladeDancer957/RevisitingCSS ``run_probing.py`` L260-267: a new
``Conv2d(256, num_classes)`` on the DeepLabV3 head; ``train_probing.py`` L423-434: body and head
frozen and in eval mode; trained with plain cross-entropy on every class's full labels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LinearProbe(nn.Module):
    """A 1x1 convolution trained on the frozen input of ``model``'s main classifier.

    The probed model is frozen (no gradients) and kept in eval mode whatever ``train()`` is called
    with, so its BatchNorm statistics stay those it was trained with (RevisitingCSS
    ``train_probing.py`` L423-434 puts the frozen body and head in eval mode).

    Args:
        model: a model with ``classifiers()`` (BiSeNet, DeepLabV3): the first is the main
            classifier, whose input features the probe reads.
        num_classes: the probe's output classes (every class seen so far, background included).

    Shapes:
        ``forward(x)`` with ``x`` ``(B, 3, H, W)`` returns ``{"out": (B, num_classes, H, W)}`` logits,
        upsampled bilinearly from the features' resolution as the model's own logits are.

    Raises:
        ValueError: ``num_classes`` < 1, or ``model`` has no ``classifiers()``.
    """

    def __init__(self, model: nn.Module, num_classes: int):
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        if not hasattr(model, "classifiers"):
            raise ValueError(f"{type(model).__name__} has no classifiers(): the probe reads its main classifier")
        self.model = model.eval().requires_grad_(False)
        self.classifier = nn.Conv2d(model.classifiers()[0].in_channels, int(num_classes), 1)
        self._features: torch.Tensor | None = None
        model.classifiers()[0].register_forward_pre_hook(self._keep)

    def _keep(self, module, inputs):
        self._features = inputs[0]

    def train(self, mode: bool = True):
        """Train mode for the probe only: the probed model stays in eval mode."""
        super().train(mode)
        self.model.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, h, w)``: what the model's main classifier reads for ``x`` (no gradients)."""
        with torch.no_grad():
            self.model(x, aux=False)
        feats, self._features = self._features, None
        return feats

    def forward(self, x: torch.Tensor) -> dict:
        logits = self.classifier(self.features(x))
        return {"out": F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)}
