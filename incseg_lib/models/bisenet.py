"""BiSeNet: Bilateral Segmentation Network (Yu et al., ECCV 2018, arXiv 1808.00897).

Two paths meet in a feature fusion module:

* **Spatial path** (Sec. 3.1): three stride-2 conv-BN-ReLU layers keep a rich 1/8-resolution map.
* **Context path** (Sec. 3.2): a ResNet (torchvision) down to 1/32, a global average pool for
  the largest receptive field, and **attention refinement modules** (ARM) on the 1/16 and 1/32
  features; the ARM-refined 1/32 map plus the global context is upsampled and added to the
  ARM-refined 1/16 map, then upsampled to 1/8.
* **Feature fusion module** (FFM, Sec. 3.3): concatenation, conv-BN-ReLU, and a squeeze-and-
  excitation-style channel attention ``x + x * att``.

Two auxiliary heads on the context path's 1/16 and 1/32 outputs supervise training only
(Sec. 3.4, Eq. 2-3: loss = principal + alpha * sum(auxiliary), alpha = 1).

All three classification heads are :class:`IncrementalClassifier` s, growing one 1x1 conv per step.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .classifier import IncrementalClassifier

_RESNET_CHANNELS = {"resnet18": (256, 512), "resnet50": (1024, 2048), "resnet101": (1024, 2048)}


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SpatialPath(nn.Module):
    """Three stride-2 conv-BN-ReLU (7x7, 3x3, 3x3) and a 1x1 projection: ``(B,3,H,W) -> (B,128,H/8,W/8)``."""

    def __init__(self, out_channels: int = 128):
        super().__init__()
        self.layers = nn.Sequential(conv_bn_relu(3, 64, 7, 2), conv_bn_relu(64, 64, 3, 2),
                                    conv_bn_relu(64, 64, 3, 2), conv_bn_relu(64, out_channels, 1))

    def forward(self, x):
        return self.layers(x)


class AttentionRefinementModule(nn.Module):
    """ARM (Sec. 3.2, Fig. 2b): conv-BN-ReLU, then ``y * sigmoid(BN(conv1x1(avgpool(y))))``."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, 3)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cout, cout, 1, bias=False),
                                       nn.BatchNorm2d(cout), nn.Sigmoid())

    def forward(self, x):
        y = self.conv(x)
        return y * self.attention(y)


class ContextPath(nn.Module):
    """ResNet context path with global context and two ARMs.

    Args:
        backbone: ``resnet18``, ``resnet50`` or ``resnet101`` (torchvision).
        pretrained: ``"imagenet"`` (torchvision weights API, downloads once), a path to a ResNet
            state dict (``.pth``, torchvision key names; ``fc.*`` ignored), or ``""`` for random init.

    Returns from ``forward(x)`` with ``x`` ``(B,3,H,W)``: ``(feat8, feat16, feat32, enc32)`` where
    ``feat8`` ``(B,128,H/8,W/8)`` is the fused context, ``feat16`` ``(B,128,H/16,W/16)`` and
    ``feat32`` ``(B,128,H/32,W/32)`` feed the auxiliary heads, and ``enc32`` is the raw ResNet
    output ``(B,C32,H/32,W/32)`` (512 channels for ResNet-18, 2048 for 50/101).

    Raises:
        ValueError: unknown backbone. FileNotFoundError / RuntimeError: a state-dict path that
            does not exist or does not fit the backbone (the message names the file).
    """

    def __init__(self, backbone: str = "resnet18", pretrained: str = "", channels: int = 128):
        super().__init__()
        self.backbone = build_resnet(backbone, pretrained)
        c16, c32 = _RESNET_CHANNELS[backbone]
        self.arm16 = AttentionRefinementModule(c16, channels)
        self.arm32 = AttentionRefinementModule(c32, channels)
        self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(c32, channels, 1))
        self.refine32 = conv_bn_relu(channels, channels, 3)
        self.refine16 = conv_bn_relu(channels, channels, 3)

    def encode(self, x):
        """ResNet features at 1/16 and 1/32 (the encoder output used for feature distillation)."""
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        x = b.layer2(b.layer1(x))
        c16 = b.layer3(x)
        c32 = b.layer4(c16)
        return c16, c32

    def forward(self, x):
        c16, c32 = self.encode(x)
        size8 = (c16.shape[2] * 2, c16.shape[3] * 2)
        g = self.global_context(c32)
        f32 = self.arm32(c32) + g
        f32 = self.refine32(F.interpolate(f32, size=c16.shape[2:], mode="nearest"))
        f16 = self.arm16(c16) + f32
        f16_up = self.refine16(F.interpolate(f16, size=size8, mode="nearest"))
        return f16_up, f16, f32, c32


class FeatureFusionModule(nn.Module):
    """FFM (Sec. 3.3, Fig. 2c): ``x = convBNReLU(cat(sp, cp))``; ``x + x * att(x)``."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, 1)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cout, cout // 4, 1), nn.ReLU(inplace=True),
                                       nn.Conv2d(cout // 4, cout, 1), nn.Sigmoid())

    def forward(self, sp, cp):
        x = self.conv(torch.cat([sp, cp], dim=1))
        return x + x * self.attention(x)


class SegHead(nn.Module):
    """3x3 conv-BN-ReLU then an incremental 1x1 classifier."""

    def __init__(self, cin: int, mid: int, classes_per_step: list[int]):
        super().__init__()
        self.conv = conv_bn_relu(cin, mid, 3)
        self.classifier = IncrementalClassifier(mid, classes_per_step)

    def forward(self, x):
        return self.classifier(self.conv(x))


class BiSeNet(nn.Module):
    """BiSeNet with a ResNet context path and incremental heads.

    Args:
        classes_per_step: output classes added at each step so far (e.g. ``[21]`` offline VOC,
            ``[16, 5]`` for 15-5 at step 1).
        backbone: ``resnet18``/``resnet50``/``resnet101``.
        pretrained: see :class:`ContextPath`.

    ``forward(x)`` with ``x`` ``(B, 3, H, W)`` float (ImageNet-normalised) returns a dict:

    * ``out``: ``(B, C, H, W)`` logits, C = ``sum(classes_per_step)``;
    * ``aux``: list of two ``(B, C, H, W)`` auxiliary logits (1/16 and 1/32 paths), training mode only;
    * ``features``: ``(B, C32, H/32, W/32)`` the ResNet encoder output (for feature distillation).
    """

    def __init__(self, classes_per_step: list[int], backbone: str = "resnet18", pretrained: str = ""):
        super().__init__()
        if backbone not in _RESNET_CHANNELS:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(_RESNET_CHANNELS)}")
        self.backbone_name = backbone
        self.spatial_path = SpatialPath(128)
        self.context_path = ContextPath(backbone, pretrained, 128)
        self.ffm = FeatureFusionModule(256, 256)
        self.head = SegHead(256, 256, classes_per_step)
        self.aux_heads = nn.ModuleList([SegHead(128, 64, classes_per_step), SegHead(128, 64, classes_per_step)])

    @property
    def classes_per_step(self) -> list[int]:
        return self.head.classifier.classes_per_step

    @property
    def num_classes(self) -> int:
        return self.head.classifier.num_classes

    def classifiers(self) -> list[IncrementalClassifier]:
        """The three incremental classifiers: final head first, then the two auxiliary heads."""
        return [self.head.classifier] + [h.classifier for h in self.aux_heads]

    def add_step(self, num_new: int) -> None:
        """Grow every classification head by ``num_new`` classes (a new 1x1 conv each)."""
        for clf in self.classifiers():
            clf.add_step(num_new)

    def forward(self, x: torch.Tensor) -> dict:
        size = x.shape[2:]
        sp = self.spatial_path(x)
        cp8, f16, f32, c32 = self.context_path(x)
        if cp8.shape[2:] != sp.shape[2:]:
            cp8 = F.interpolate(cp8, size=sp.shape[2:], mode="bilinear", align_corners=False)
        fused = self.ffm(sp, cp8)
        out = {"out": F.interpolate(self.head(fused), size=size, mode="bilinear", align_corners=False),
               "features": c32}
        if self.training:
            out["aux"] = [F.interpolate(h(f), size=size, mode="bilinear", align_corners=False)
                          for h, f in zip(self.aux_heads, (f16, f32))]
        return out


def build_resnet(name: str, pretrained: str = "") -> nn.Module:
    """A torchvision ResNet (its ``fc`` replaced by identity), optionally with weights.

    ``pretrained``: ``"imagenet"`` uses torchvision's weights API (``ResNet18_Weights.DEFAULT``
    etc.); a file path loads that state dict; ``""`` leaves torchvision's random init.
    """
    import torchvision

    if name not in _RESNET_CHANNELS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(_RESNET_CHANNELS)}")
    ctor = getattr(torchvision.models, name)
    if pretrained == "imagenet":
        weights = torchvision.models.get_model_weights(name).DEFAULT
        try:
            net = ctor(weights=weights)
        except Exception as e:  # offline, proxy, corrupt cache ...
            raise RuntimeError(f"could not get torchvision's ImageNet weights for {name} ({e}); use "
                               "pretrained='' (none) to train from scratch, or a local state-dict path") from e
        net.fc = nn.Identity()
        return net
    net = ctor(weights=None)
    if pretrained:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file {path} does not exist; pass a torchvision "
                                    f"{name} state dict, 'imagenet', or '' for random init")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = net.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise RuntimeError(f"{path} does not fit torchvision {name}: {str(e).splitlines()[1].strip()}") from None
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise RuntimeError(f"{path} does not fit torchvision {name}: missing {missing[:5]}, "
                               f"unexpected {unexpected[:5]}")
    net.fc = nn.Identity()
    return net


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
