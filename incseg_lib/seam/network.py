"""SEAM's network (Wang et al., CVPR 2020; YudeWang/SEAM network/resnet38_SEAM.py): a dilated ResNet
with a CAM head and the pixel correlation module (PCM)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.bisenet import build_resnet

# ---------------------------------------------------------------------- network
_STAGE_CHANNELS = {"resnet18": (128, 256, 512), "resnet50": (512, 1024, 2048), "resnet101": (512, 1024, 2048)}


def _keep_resolution(layer: nn.Sequential, dilation: int) -> None:
    """Make a ResNet stage keep its input resolution: stride 1, 3x3 convolutions dilated by ``dilation``
    (torchvision's ``replace_stride_with_dilation``, which BasicBlock ResNets refuse, done by hand)."""
    for m in layer.modules():
        if isinstance(m, nn.Conv2d):
            if m.stride == (2, 2):
                m.stride = (1, 1)
            if m.kernel_size == (3, 3):
                m.dilation, m.padding = (dilation, dilation), (dilation, dilation)


def max_norm(p: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-map min-max normalisation of ``relu(p)`` (SEAM ``tool/visualization.py`` ``max_norm``).

    ``p``: ``(B, C, H, W)``; returns the same shape in [0, 1): ``relu(relu(p) - min - eps) / (max - min + eps)``.
    """
    p = F.relu(p)
    flat = p.flatten(2)
    mx = flat.max(-1).values[..., None, None]
    mn = flat.min(-1).values[..., None, None]
    return F.relu(p - mn - eps) / (mx - mn + eps)


class SeamNet(nn.Module):
    """Multi-label CAM network with SEAM's pixel correlation module.

    Args:
        num_foreground: K, foreground classes of the image-level labels (channel 0 is background).
        backbone: torchvision ResNet name.
        output_stride: 8 or 16.
        pretrained: ``"imagenet"``, a ResNet state-dict path, or ``""`` (random).
        freeze_bn: the backbone's BatchNorm stays in evaluation mode, its scale and shift frozen,
            whatever ``train()`` says (SEAM ``network/resnet38d.py`` ``Net.train``; see
            :attr:`SeamConfig.freeze_bn`).

    ``forward(x)`` with ``x`` ``(B, 3, H, W)`` returns ``{"cam": (B, 1+K, H, W), "cam_rv": (B, 1+K, H, W)}``
    upsampled to the input size: the raw CAM (a 1x1 classifier on the last stage, after dropout 0.5)
    and its PCM refinement. PCM (``Net.PCM``): the CAM normalised without gradient (ReLU, divided by
    its maximum, background channel ``1 - max`` of the others, non-maximal classes zeroed at each
    pixel) is propagated by affinities ``A = ReLU(f^T f)`` normalised to sum 1 over the source pixels, with
    ``f`` the L2-normalised 1x1 projection (192 channels) of [downscaled image, 1x1 projections of
    the two middle stages (64 and 128 channels, detached from the backbone)].
    """

    def __init__(
        self,
        num_foreground: int,
        backbone: str = "resnet18",
        output_stride: int = 8,
        pretrained: str = "",
        freeze_bn: bool = False,
    ):
        super().__init__()

        if num_foreground < 1:
            raise ValueError(f"SEAM needs at least one foreground class, got {num_foreground}")
        self.backbone_name = backbone
        self.num_foreground = num_foreground
        self.backbone = build_resnet(backbone, pretrained)
        _keep_resolution(self.backbone.layer4, 2 if output_stride == 16 else 4)
        if output_stride == 8:
            _keep_resolution(self.backbone.layer3, 2)
        c8, c16, c32 = _STAGE_CHANNELS[backbone]
        self.dropout = nn.Dropout2d(0.5)
        self.classifier = nn.Conv2d(c32, 1 + num_foreground, 1, bias=False)
        self.proj_a = nn.Conv2d(c8, 64, 1, bias=False)
        self.proj_b = nn.Conv2d(c16, 128, 1, bias=False)
        self.proj_f = nn.Conv2d(64 + 128 + 3, 192, 1, bias=False)
        nn.init.xavier_uniform_(self.classifier.weight)
        nn.init.kaiming_normal_(self.proj_a.weight)
        nn.init.kaiming_normal_(self.proj_b.weight)
        nn.init.xavier_uniform_(self.proj_f.weight, gain=4)
        self.new_layers = [self.classifier, self.proj_a, self.proj_b, self.proj_f]
        self.freeze_bn = freeze_bn
        for m in self._frozen_batchnorms():
            m.requires_grad_(False)

    def _frozen_batchnorms(self) -> list[nn.BatchNorm2d]:
        return [m for m in self.backbone.modules() if isinstance(m, nn.BatchNorm2d)] if self.freeze_bn else []

    def train(self, mode: bool = True) -> SeamNet:
        super().train(mode)
        for m in self._frozen_batchnorms():
            m.eval()
        return self

    def stages(self, x):
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        s8 = b.layer2(b.layer1(x))
        s16 = b.layer3(s8)
        return s8, s16, b.layer4(s16)

    def forward(self, x: torch.Tensor) -> dict:
        H, W = x.shape[-2:]
        s8, s16, s32 = self.stages(x)
        cam = self.classifier(self.dropout(s32))
        h, w = cam.shape[-2:]
        with torch.no_grad():
            norm = normalised_cam(cam.detach())
        fa = F.relu(self.proj_a(F.interpolate(s8.detach(), (h, w), mode="bilinear", align_corners=True)))
        fb = F.relu(self.proj_b(F.interpolate(s16.detach(), (h, w), mode="bilinear", align_corners=True)))
        xs = F.interpolate(x, (h, w), mode="bilinear", align_corners=True)
        cam_rv = pcm(norm, self.proj_f(torch.cat([xs, fa, fb], 1)))
        up = lambda t: F.interpolate(t, (H, W), mode="bilinear", align_corners=True)  # noqa: E731
        return {"cam": up(cam), "cam_rv": up(cam_rv)}

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """SEAM's four groups (``get_parameter_groups`` + ``train_SEAM.py``): backbone weights (lr x1,
        decay), backbone biases and BN (x2, no decay), new layers' weights (x10, decay), their biases (x20)."""
        new = {id(p) for m in self.new_layers for p in m.parameters()}
        groups = {(False, True): [], (False, False): [], (True, True): [], (True, False): []}
        for p in self.parameters():
            if p.requires_grad:
                groups[(id(p) in new, p.ndim > 1)].append(p)
        mult = {(False, True): 1, (False, False): 2, (True, True): 10, (True, False): 20}
        return [
            {"params": ps, "lr_mult": mult[k], "weight_decay": weight_decay if k[1] else 0.0}
            for k, ps in groups.items()
            if ps
        ]


def normalised_cam(cam: torch.Tensor) -> torch.Tensor:
    """The CAM PCM propagates (SEAM ``Net.forward``): ReLU, divided by each map's maximum, background
    channel ``1 - max`` over the foreground channels, foreground channels below the pixel's maximum zeroed.

    ``cam``: ``(B, 1+K, h, w)``; returns the same shape in [0, 1].
    """
    c = F.relu(cam)
    mx = c.flatten(2).max(-1).values[..., None, None] + 1e-5
    c = F.relu(c - 1e-5) / mx
    fg = c[:, 1:]
    top = fg.max(1, keepdim=True).values
    fg = torch.where(fg < top, torch.zeros_like(fg), fg)
    return torch.cat([1 - top, fg], 1)


def pcm(cam: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Pixel correlation module (SEAM ``Net.PCM``; Wang et al. 2020, Eq. 8):
    ``y_i = sum_j ReLU(f_i . f_j) / sum_k ReLU(f_k . f_j) * cam_j``, features L2-normalised.

    Args:
        cam: ``(B, C, h, w)`` maps to refine.
        features: ``(B, D, h', w')`` (the CAM is resized to ``(h', w')``).

    Returns:
        ``(B, C, h', w')``: each pixel a weighted sum of the CAM over pixels with similar features.
    """
    n, _, h, w = features.shape
    c = F.interpolate(cam, (h, w), mode="bilinear", align_corners=True).flatten(2)
    f = features.flatten(2)
    f = f / (f.norm(dim=1, keepdim=True) + 1e-5)
    aff = F.relu(f.transpose(1, 2) @ f)
    aff = aff / (aff.sum(1, keepdim=True) + 1e-5)
    return (c @ aff).view(n, -1, h, w)
