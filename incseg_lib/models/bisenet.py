"""BiSeNet: Bilateral Segmentation Network (Yu et al., ECCV 2018, arXiv 1808.00897).

Two paths meet in a feature fusion module:

* **Spatial path** (Sec. 3.1): three stride-2 3x3 conv-BN-ReLU layers (64, 128, 256 channels, as
  the paper and the seed course project) keep a rich 1/8-resolution map.
* **Context path** (Sec. 3.2): a ResNet (torchvision) down to 1/32, a global average pool for
  the largest receptive field, and **attention refinement modules** (ARM) on the 1/16 and 1/32
  features; the ARM-refined 1/32 map plus the global context is upsampled and refined, added to
  the ARM-refined 1/16 map, and upsampled and refined again to 1/8 (TorchSeg's U-shaped path,
  here with nearest upsampling).
* **Feature fusion module** (FFM, Sec. 3.3): concatenation, conv-BN-ReLU, and a squeeze-and-
  excitation-style channel attention ``x + x * att``.

Two auxiliary heads supervise the context path during training only (Sec. 3.4, Eq. 2-3:
loss = principal + alpha * sum(auxiliary), alpha = 1). They are 1x1 classifiers directly on the
ResNet's 1/16 and 1/32 stage outputs, as in the seed course project's BiSeNet
(francescodisalvo05/incremental-learning-semantic-segmentation ``modules/build_BiSeNet.py``, after
ooooverflow's ``supervision1``/``supervision2``): the backbone gets a short, direct gradient. On
CamVid from scratch this was the largest single gain of the design ablation (8 epochs: 27.6 mIoU
against 22.6 with the auxiliary heads on the refined 1/16 maps; ``benchmarks/bisenet_ablation.py``).

The context path's widths follow the paper's first author's reference implementation, TorchSeg
(yu-changqian/TorchSeg, ``model/bisenet/cityscapes.bisenet.R18/network.py``): 128 channels, 256
after fusion; the spatial path is the paper's (256 channels; TorchSeg projects it to 128). Every
layer outside the ResNet but the 1x1 classifiers gets Kaiming-normal initialisation (fan_in, ReLU
gain), as TorchSeg's ``train.py`` (``init_weight(model.business_layer, nn.init.kaiming_normal_,
...)``) and the seed course project do: PyTorch's default conv init is about 2.45x smaller in
standard deviation, and with BatchNorm after every conv a smaller weight norm means a larger
effective learning rate. The measurements that chose this design, against the seed course
project's BiSeNet, come from ``benchmarks/bisenet_ablation.py`` (docs/results.md, notebook 01).

All three classification heads are :class:`IncrementalClassifier` s, growing one 1x1 conv per step.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .classifier import IncrementalClassifier

_RESNET_CHANNELS = {"resnet18": (256, 512), "resnet50": (1024, 2048), "resnet101": (1024, 2048)}

#: Version of the architecture below; part of every checkpoint key, so a checkpoint trained with an
#: earlier design is retrained instead of failing to load (CHANGELOG.md lists what each changed).
ARCHITECTURE_VERSION = 3


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def _upsample(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def kaiming_init(module: nn.Module, *, skip: tuple[type, ...] = ()) -> None:
    """Kaiming-normal init (fan_in, ReLU gain) of every conv in ``module``; BN weight 1, bias 0.

    TorchSeg's ``init_weight(model.business_layer, nn.init.kaiming_normal_, ..., mode='fan_in',
    nonlinearity='relu')`` for BiSeNet's non-backbone layers (He et al., ICCV 2015, Eq. 10).
    Convs inside a module of a type in ``skip`` keep their init. Conv biases are zeroed.
    """
    skipped = {id(p) for m in module.modules() if isinstance(m, skip) for p in m.parameters()}
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and id(m.weight) not in skipped:
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class SpatialPath(nn.Module):
    """The spatial path (Sec. 3.1): three stride-2 3x3 conv-BN-ReLU, ``(B,3,H,W) -> (B,C,H/8,W/8)``.

    As the paper describes it ("three layers. Each layer includes a convolution with stride = 2,
    followed by batch normalization and ReLU") and as the seed course project builds it
    (francescodisalvo05/incremental-learning-semantic-segmentation ``modules/build_BiSeNet.py``
    ``Spatial_path``, after ooooverflow's BiSeNet): ``widths`` 64, 128, 256, so ``C`` =
    ``out_channels`` = 256. Against TorchSeg's path (7x7, 3x3, 3x3 of 64 channels and a 1x1
    projection to 128) it scored 29.4 mIoU against 27.8 on CamVid from scratch over four seeds, at
    0.93x its speed (``benchmarks/bisenet_ablation.py``).
    """

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256)):
        super().__init__()
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"the spatial path has three layers; got widths {widths!r}")
        chans = (3, *widths)
        self.layers = nn.Sequential(*(conv_bn_relu(a, b, 3, 2) for a, b in zip(chans, chans[1:])))
        self.out_channels = widths[-1]

    def forward(self, x):
        return self.layers(x)


class AttentionRefinementModule(nn.Module):
    """ARM (Sec. 3.2, Fig. 2b): conv-BN-ReLU, then ``y * sigmoid(BN(conv1x1(avgpool(y))))``."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, 3)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.Sigmoid()
        )

    def forward(self, x):
        y = self.conv(x)
        return y * self.attention(y)


class ContextPath(nn.Module):
    """ResNet context path with global context and two ARMs.

    Args:
        backbone: ``resnet18``, ``resnet50`` or ``resnet101`` (torchvision).
        pretrained: ``"imagenet"`` (torchvision weights API, downloads once), a path to a ResNet
            state dict (``.pth``, torchvision key names; ``fc.*`` ignored), or ``""`` for random init.

    Returns from ``forward(x)`` with ``x`` ``(B,3,H,W)``: ``(feat8, enc16, enc32)``: ``feat8``
    ``(B,128,H/8,W/8)`` the context output, and the raw ResNet stage outputs ``enc16``
    ``(B,C16,H/16,W/16)`` and ``enc32`` ``(B,C32,H/32,W/32)`` (256/512 channels for ResNet-18,
    1024/2048 for 50/101) that feed the auxiliary heads and feature distillation.

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

    def encode_stages(self, x) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(c16, c32, stages)``: :meth:`encode`'s outputs, and the four ResNet stages' outputs
        *before* their last ReLU (what PLOP distils: its ResNet returns each stage's residual sum
        before the activation, arthurdouillard/CVPR2021_PLOP ``modules/residual.py``
        ``ResidualBlock.forward``). torchvision's blocks apply the ReLU inside, so the last block of
        each stage is run here op by op (:func:`block_preactivation`); the values after the ReLU are
        those :meth:`encode` gives."""
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        stages = []
        for layer in (b.layer1, b.layer2, b.layer3, b.layer4):
            for block in list(layer)[:-1]:
                x = block(x)
            pre = block_preactivation(layer[-1], x)
            stages.append(pre)
            x = torch.relu(pre)
        c16 = torch.relu(stages[2])
        return c16, x, stages

    def forward(self, x, stages: bool = False):
        if stages:  # the same outputs, plus the stages' pre-activations
            c16, c32, pre = self.encode_stages(x)
            return self._context(c16, c32) + (pre,)
        return self._context(*self.encode(x))

    def _context(self, c16, c32):
        size8 = (c16.shape[2] * 2, c16.shape[3] * 2)
        f32 = self.arm32(c32) + self.global_context(c32)  # (B,C,1,1) context broadcast over the map
        f32 = self.refine32(F.interpolate(f32, size=c16.shape[2:], mode="nearest"))
        f16 = self.arm16(c16) + f32
        f8 = self.refine16(F.interpolate(f16, size=size8, mode="nearest"))
        return f8, c16, c32


def block_preactivation(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A torchvision ``BasicBlock`` or ``Bottleneck`` applied to ``x`` without its final ReLU: the
    residual sum ``branch(x) + shortcut(x)`` (torchvision ``models/resnet.py`` ``forward``, same
    operations in the same order)."""
    identity = block.downsample(x) if block.downsample is not None else x
    out = block.relu(block.bn1(block.conv1(x)))
    if hasattr(block, "conv3"):  # Bottleneck
        out = block.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    else:
        out = block.bn2(block.conv2(out))
    return out + identity


class FeatureFusionModule(nn.Module):
    """FFM (Sec. 3.3, Fig. 2c): ``x = convBNReLU1x1(cat(sp, cp))``; ``x + x * att(x)``.

    ``att`` = sigmoid(conv1x1(ReLU(conv1x1(avgpool(x))))) with ``cout // reduction`` hidden
    channels (4 here; TorchSeg's BiSeNet uses 1, the seed project 1).
    """

    def __init__(self, cin: int, cout: int, reduction: int = 4):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, 1)
        mid = cout // reduction
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(cout, mid, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 1),
            nn.Sigmoid(),
        )

    def forward(self, sp, cp):
        x = self.conv(torch.cat([sp, cp], dim=1))
        return x + x * self.attention(x)


class SegHead(nn.Module):
    """3x3 conv-BN-ReLU to ``mid`` channels, then an incremental 1x1 classifier (TorchSeg's ``BiSeNetHead``)."""

    def __init__(self, cin: int, mid: int, classes_per_step: list[int]):
        super().__init__()
        self.conv = conv_bn_relu(cin, mid, 3)
        self.classifier = IncrementalClassifier(mid, classes_per_step)

    def forward(self, x):
        return self.classifier(self.conv(x))


class AuxHead(nn.Module):
    """An auxiliary head: an incremental 1x1 classifier on a raw ResNet stage output."""

    def __init__(self, cin: int, classes_per_step: list[int]):
        super().__init__()
        self.classifier = IncrementalClassifier(cin, classes_per_step)

    def forward(self, x):
        return self.classifier(x)


class BiSeNet(nn.Module):
    """BiSeNet with a ResNet context path and incremental heads.

    Args:
        classes_per_step: output classes added at each step so far (e.g. ``[21]`` offline VOC,
            ``[16, 5]`` for 15-5 at step 1).
        backbone: ``resnet18``/``resnet50``/``resnet101``.
        pretrained: see :class:`ContextPath`.

    ``forward(x)`` with ``x`` ``(B, 3, H, W)`` float (ImageNet-normalised) returns a dict:

    * ``out``: ``(B, C, H, W)`` logits, C = ``sum(classes_per_step)``;
    * ``aux``: list of two ``(B, C, H, W)`` auxiliary logits, from 1x1 classifiers on the ResNet's
      1/16 and 1/32 outputs (in training mode, or when ``forward(x, aux=True)``: the frozen old
      model gives them for auxiliary-head distillation);
    * ``features``: ``(B, C32, H/32, W/32)`` the ResNet encoder output (for feature distillation);
    * with ``return_maps`` set: ``maps``, the intermediate maps PLOP's Local POD distils, in PLOP's
      order (arthurdouillard/CVPR2021_PLOP ``segmentation_module.py``: the ResNet stages, the map the
      classifier reads, the logits): the four ResNet stage outputs before their last ReLU (1/4,
      1/8, 1/16, 1/32; :meth:`ContextPath.encode_stages`), the FFM output ``(B, 256, H/8, W/8)``
      and the main head's logits before upsampling ``(B, C, H/8, W/8)``; and ``latent``, the FFM
      output, the features SDR shapes (the map the classifier reads, as SDR's ``features['body']``
      is for its DeepLab: BiSeNet's ResNet output feeds the context path, not the classifier).

    Every layer outside the ResNet gets :func:`kaiming_init` except the 1x1 classifiers (PyTorch's
    default, as the classifiers of later steps, which MiB initialises from the background's).
    """

    model_name = "bisenet"

    def __init__(self, classes_per_step: list[int], backbone: str = "resnet18", pretrained: str = ""):
        super().__init__()
        if backbone not in _RESNET_CHANNELS:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(_RESNET_CHANNELS)}")
        self.backbone_name = backbone
        self.spatial_path = SpatialPath()
        self.context_path = ContextPath(backbone, pretrained, 128)
        self.ffm = FeatureFusionModule(self.spatial_path.out_channels + 128, 256)
        self.head = SegHead(256, 256, classes_per_step)
        c16, c32 = _RESNET_CHANNELS[backbone]
        self.aux_heads = nn.ModuleList([AuxHead(c16, classes_per_step), AuxHead(c32, classes_per_step)])
        kaiming_init(self, skip=(IncrementalClassifier, type(self.context_path.backbone)))

    @property
    def classes_per_step(self) -> list[int]:
        return self.head.classifier.classes_per_step

    @property
    def resnet(self) -> nn.Module:
        """The ResNet of the context path (SEAM copies it)."""
        return self.context_path.backbone

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

    #: When True (set by methods that distil or shape intermediate maps: PLOP, SDR), ``forward`` also
    #: returns ``maps`` and ``latent`` (see the class docstring); the other outputs are unchanged.
    return_maps: bool = False

    def forward(self, x: torch.Tensor, aux: bool | None = None) -> dict:
        size = x.shape[2:]
        sp = self.spatial_path(x)
        cp = self.context_path(x, stages=self.return_maps)
        cp8, c16, c32 = cp[:3]
        if cp8.shape[2:] != sp.shape[2:]:
            cp8 = _upsample(cp8, sp.shape[2:])
        fused = self.ffm(sp, cp8)
        logits = self.head(fused)
        out = {"out": _upsample(logits, size), "features": c32}
        if self.training if aux is None else aux:
            out["aux"] = [_upsample(h(f), size) for h, f in zip(self.aux_heads, (c16, c32))]
        if self.return_maps:
            out["maps"] = [*cp[3], fused, logits]
            out["latent"] = fused
        return out


def build_resnet(name: str, pretrained: str = "", dilate_last: bool = False) -> nn.Module:
    """A torchvision ResNet (its ``fc`` replaced by identity), optionally with weights.

    ``pretrained``: ``"imagenet"`` uses torchvision's weights API (``ResNet18_Weights.DEFAULT``
    etc.); a file path loads that state dict; ``""`` leaves torchvision's random init.
    ``dilate_last``: the last stage dilated instead of strided (output stride 16, DeepLabV3;
    ResNet-50/101 only: torchvision's BasicBlock has no dilation).
    """
    import functools

    import torchvision

    if name not in _RESNET_CHANNELS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(_RESNET_CHANNELS)}")
    ctor = getattr(torchvision.models, name)
    if dilate_last:
        ctor = functools.partial(ctor, replace_stride_with_dilation=[False, False, True])
    if pretrained == "imagenet":
        weights = torchvision.models.get_model_weights(name).DEFAULT
        try:
            net = ctor(weights=weights)
        except Exception as e:  # offline, proxy, corrupt cache ...
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ValueError(
                f"could not get torchvision's ImageNet weights for {name} ({first}); use "
                "pretrained='none' (the -p pretrained none parameter) to train from scratch, or a local state-dict path"
            ) from e
        net.fc = nn.Identity()
        return net
    net = ctor(weights=None)
    if pretrained:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"pretrained weights file {path} does not exist; pass a torchvision "
                f"{name} state dict, 'imagenet', or '' for random init"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  not a torch file, truncated, a pickle with code ...
            import pickle

            first = (
                "not a file of tensors: loading with weights_only refused it, as it refuses any code"
                if isinstance(e, pickle.UnpicklingError)
                else f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
            )
            raise ValueError(
                f"pretrained weights file {path} cannot be read as a state dict ({first}); "
                f"pass a torchvision {name} state dict saved with torch.save, 'imagenet', or 'none'"
            ) from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"pretrained weights file {path} holds no state dict (name -> tensor) of a {name}")
        state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
        try:
            missing, unexpected = net.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            lines = [x.strip() for x in str(e).splitlines() if x.strip()]
            raise ValueError(f"{path} does not fit torchvision {name}: {lines[min(1, len(lines) - 1)]}") from None
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise ValueError(
                f"{path} does not fit torchvision {name}: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
    net.fc = nn.Identity()
    return net


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
