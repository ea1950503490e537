"""DeepLabV3 with an incremental classifier: the model of MiB, PLOP and SDR's papers.

Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation" (2017), as MiB runs it
(fcdl94/MiB ``segmentation_module.py``, ``modules/deeplab.py``): a ResNet-50/101 at output stride
16 (the last stage dilated instead of strided), ASPP with rates 6, 12 and 18 over 256 channels,
and a classifier per step. Built from torchvision's blocks (``torchvision.models.segmentation.
deeplabv3``: ``ASPP`` and ``DeepLabHead``'s 3x3 conv-BN-ReLU), ImageNet weights for the ResNet
through torchvision's weights API; no auxiliary head (MiB's has none).

It offers what every method reads from :class:`~incseg_lib.models.BiSeNet`, so any method runs on
either: ``classes_per_step``, ``add_step``, ``classifiers`` (MiB's initialisation), ``features``
(ILT: the ResNet output), and with ``return_maps`` the maps PLOP distils (the four ResNet stages
before their last activation, the head's output, the logits) and SDR's ``latent`` (the ResNet
output, SDR's ``features['body']``).
"""

from __future__ import annotations

import torch
from torch import nn

from .bisenet import _upsample, block_preactivation, build_resnet, kaiming_init
from .classifier import IncrementalClassifier

DEEPLAB_BACKBONES = ("resnet50", "resnet101")
ASPP_RATES = (6, 12, 18)  # output stride 16 (torchvision's 12, 24, 36 are for its output stride 8)


class DeepLabV3(nn.Module):
    """DeepLabV3-ResNet at output stride 16 with incremental classification heads.

    Args:
        classes_per_step: output classes added at each step so far.
        backbone: ``resnet50`` or ``resnet101``.
        pretrained: ``"imagenet"`` (torchvision's weights API), a ResNet state-dict path, or ``""``.

    ``forward(x)`` with ``x`` ``(B, 3, H, W)`` returns ``out`` ``(B, C, H, W)`` logits and
    ``features`` ``(B, 2048, H/16, W/16)``; with ``return_maps``: ``maps`` and ``latent`` (module
    docstring).

    Raises:
        ValueError: an unknown backbone.
    """

    model_name = "deeplabv3"
    return_maps: bool = False

    def __init__(self, classes_per_step: list[int], backbone: str = "resnet101", pretrained: str = ""):
        super().__init__()
        if backbone not in DEEPLAB_BACKBONES:
            raise ValueError(f"DeepLabV3 takes backbone {' or '.join(DEEPLAB_BACKBONES)}, got {backbone!r}")
        from torchvision.models.segmentation.deeplabv3 import ASPP

        self.backbone_name = backbone
        self.backbone = build_resnet(backbone, pretrained, dilate_last=True)
        self.aspp = ASPP(2048, list(ASPP_RATES), 256)
        self.head = nn.Sequential(nn.Conv2d(256, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256), nn.ReLU())
        self.classifier = IncrementalClassifier(256, classes_per_step)
        kaiming_init(self, skip=(IncrementalClassifier, type(self.backbone)))

    @property
    def classes_per_step(self) -> list[int]:
        return self.classifier.classes_per_step

    @property
    def num_classes(self) -> int:
        return self.classifier.num_classes

    @property
    def resnet(self) -> nn.Module:
        """The ResNet (SEAM copies it)."""
        return self.backbone

    def classifiers(self) -> list[IncrementalClassifier]:
        return [self.classifier]

    def add_step(self, num_new: int) -> None:
        self.classifier.add_step(num_new)

    def forward(self, x: torch.Tensor, aux: bool | None = None) -> dict:
        b = self.backbone
        h = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        stages = []
        for layer in (b.layer1, b.layer2, b.layer3, b.layer4):
            if self.return_maps:  # each stage's output before its last ReLU, for PLOP
                for block in list(layer)[:-1]:
                    h = block(h)
                stages.append(block_preactivation(layer[-1], h))
                h = torch.relu(stages[-1])
            else:
                h = layer(h)
        head = self.head(self.aspp(h))
        logits = self.classifier(head)
        out = {"out": _upsample(logits, x.shape[2:]), "features": h, "aux": []}
        if self.return_maps:
            out["maps"] = [*stages, head, logits]
            out["latent"] = h
        return out
