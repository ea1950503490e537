"""SEAM: pseudo-labels for an incremental step from image-level labels only.

Weak supervision asks what the step costs if its images carry only *image-level* labels (which
new classes are present), not masks. A multi-label classifier trained on those labels produces
class activation maps (CAMs, Zhou et al. CVPR 2016): its classifier applied at every position of
the last feature map. CAMs cover only the most discriminative parts of an object (a cat's face,
not its body), since that is enough to classify. SEAM (Wang et al., "Self-supervised Equivariant
Attention Mechanism for Weakly Supervised Semantic Segmentation", CVPR 2020) adds two things:

* **Equivariance**: a segmentation should rescale with the image, a CAM need not. SEAM feeds the
  image and a rescaled copy (x0.3) and asks their CAMs to agree after rescaling (ER loss).
* **Pixel correlation module** (PCM): each CAM is refined by affinities between pixels, cosine
  similarities of low-level features and the downscaled image, so the activation spreads from the
  discriminative part to the pixels that look like it; the PCM output of each view is asked to
  match the other view's CAM (ECR loss).

Everything follows the official code (YudeWang/SEAM: ``network/resnet38_SEAM.py`` ``Net.forward``
and ``Net.PCM``, ``train_SEAM.py``, ``infer_SEAM.py``) unless a docstring says otherwise. The
backbone is a torchvision ResNet (SEAM: ResNet-38 with ImageNet weights) at output stride 8 or 16,
initialised from ImageNet, from the step-0 BiSeNet's context path (features already trained on
this data, as WILSON, Cermelli et al. CVPR 2022, reuses the old encoder), or at random.

The pseudo-label of a training image of step t (:class:`PseudoLabels`): multi-scale and flipped
CAMs (PCM-refined) of the classes in its image-level label, each normalised to [0, 1], a constant
background score (SEAM: 0.26), argmax. With ``fuse_old`` the old model's prediction fills in the
old classes where the pseudo-label says background (:func:`fuse_old`, after WILSON), so the step is
not taught that old objects are background.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.common import IGNORE_INDEX, SegmentationDataset, class_id_lut
from .data.transforms import eval_transforms
from .engine import predict
from .env import show_progress
from .metrics import ConfusionMatrix
from .models.bisenet import build_resnet
from .store import atomic_write_png, atomic_write_text, read_manifest

INITS = ("step0", "imagenet", "none")
CAM_SOURCES = ("pcm", "cam")


@dataclass(frozen=True)
class SeamConfig:
    """How SEAM is trained and its pseudo-labels made (part of their identity).

    Defaults are the official code's (YudeWang/SEAM ``train_SEAM.py`` and ``infer_SEAM.py``
    argparse defaults) unless said otherwise.

    Attributes:
        backbone: torchvision ``resnet18`` / ``resnet50`` / ``resnet101`` (SEAM: ResNet-38).
        output_stride: 8 (SEAM's ResNet-38) or 16; the last stages keep their resolution with
            dilated 3x3 convolutions.
        init: ``step0`` (the step t-1 BiSeNet's ResNet; WILSON's reuse of the old encoder; the
            default where ImageNet weights cannot be had), ``imagenet`` (SEAM's choice) or ``none``.
        epochs, batch_size, lr, weight_decay: SGD, poly decay (power 0.9); SEAM: 8, 8, 0.01,
            5e-4. New layers (classifier, PCM) learn 10x faster, their biases 20x, the backbone's
            biases 2x (``get_parameter_groups`` + ``PolyOptimizer``).
        crop_size, scale_range: training crop after a random rescale of the image (SEAM:
            ``RandomResizeLong(448, 768)`` on VOC's ~500 px images, i.e. x0.9-1.5, then a 448 crop:
            the crop keeps most of the image, so the image-level label stays true of it; the
            segmentation steps' x0.5-2 with a small crop would often cut the labelled object out).
        view_scale: scale of the second view (SEAM: 0.3).
        ecr_topk: share of the largest ECR errors averaged (SEAM: 0.2).
        rv_min: add SEAM's adaptive min-pooling loss on the PCM output (``train_SEAM.py``, "does
            not affect the highest performance, but changes the optimal background score").
        freeze_bn: keep the backbone's BatchNorm layers in evaluation mode with their scale and
            shift frozen, as SEAM's code does (``network/resnet38d.py`` ``Net.train``: every
            ``BatchNorm2d`` set to ``eval()``, weight and bias ``requires_grad = False``); the
            statistics stay those of the initialisation (ImageNet or the step-0 model). Training
            them instead lets the second view (x0.3) pull the running statistics towards tiny
            images, and the CAMs at inference break (demo: label accuracy of the pooled CAM 0.64,
            below the label frequencies' 0.78). Ignored with ``init="none"`` (no statistics to keep).
        scales, flip: inference scales and horizontal flips (SEAM: 0.5, 1, 1.5, 2 and flips).
        bg_threshold: constant background score against the normalised CAMs (SEAM's
            ``--out_cam_pred_alpha`` 0.26).
        cam_source: ``pcm`` (SEAM's inference uses the PCM output) or ``cam`` (plain CAM).
        fuse_old: background pixels of the pseudo-label that the old model assigns to an old class
            take that class (:func:`fuse_old`, after WILSON); used only by methods that keep an old
            model (MiB-S, not FT-S: FT keeps no old model).
        seed: initialisation and data order.
    """

    backbone: str = "resnet18"
    output_stride: int = 8
    init: str = "step0"
    epochs: int = 8
    batch_size: int = 8
    lr: float = 0.01
    weight_decay: float = 5e-4
    crop_size: int = 448
    scale_range: tuple[float, float] = (0.9, 1.5)
    view_scale: float = 0.3
    ecr_topk: float = 0.2
    rv_min: bool = True
    freeze_bn: bool = True
    scales: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
    flip: bool = True
    bg_threshold: float = 0.26
    cam_source: str = "pcm"
    fuse_old: bool = True
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(self, "scale_range", tuple(float(s) for s in self.scale_range))
        checks = [
            ("backbone", self.backbone in ("resnet18", "resnet50", "resnet101"), "resnet18, resnet50 or resnet101"),
            ("output_stride", self.output_stride in (8, 16), "8 or 16"),
            ("init", self.init in INITS, " / ".join(INITS)),
            ("epochs", self.epochs >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 2, "at least 2 (BatchNorm)"),
            ("lr", self.lr > 0, "positive"),
            ("crop_size", self.crop_size >= 32, "at least 32 pixels"),
            (
                "scale_range",
                len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1],
                "two positive numbers, low <= high",
            ),
            ("view_scale", 0.1 <= self.view_scale < 1, "in [0.1, 1)"),
            ("ecr_topk", 0 < self.ecr_topk <= 1, "in (0, 1]"),
            ("scales", len(self.scales) > 0 and all(s > 0 for s in self.scales), "positive numbers"),
            ("bg_threshold", 0 < self.bg_threshold < 1, "in (0, 1)"),
            ("cam_source", self.cam_source in CAM_SOURCES, " or ".join(CAM_SOURCES)),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"SEAM option {name}={getattr(self, name)!r} is invalid; it must be {what}")

    @property
    def tag(self) -> str:
        """Short label for tables: ``seam-r18-os8-step0-8ep-t0.26`` (+ ``-cam``, ``-nofuse``)."""
        tag = (
            f"seam-r{self.backbone.removeprefix('resnet')}-os{self.output_stride}-{self.init}-{self.epochs}ep"
            f"-t{self.bg_threshold:g}"
        )
        return tag + ("-cam" if self.cam_source == "cam" else "") + ("" if self.fuse_old else "-nofuse")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scales"], d["scale_range"] = list(self.scales), list(self.scale_range)
        return d

    @property
    def bn_frozen(self) -> bool:
        """Whether the SEAM backbone's BatchNorm is frozen: ``freeze_bn``, except with ``init="none"``."""
        return self.freeze_bn and self.init != "none"

    def training_part(self) -> dict:
        """The settings that determine the SEAM weights (inference settings excluded)."""
        keys = (
            "backbone",
            "output_stride",
            "init",
            "epochs",
            "batch_size",
            "lr",
            "weight_decay",
            "crop_size",
            "scale_range",
            "view_scale",
            "ecr_topk",
            "rv_min",
            "freeze_bn",
            "seed",
        )
        return {k: self.to_dict()[k] for k in keys}


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


# ---------------------------------------------------------------------- losses
def classification_loss(cam: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label soft-margin loss on the globally average-pooled foreground CAM (Wang et al. 2020,
    Eq. 6; ``F.multilabel_soft_margin_loss(GAP(cam)[:, 1:], label)`` in ``train_SEAM.py``).

    ``cam``: ``(B, 1+K, H, W)``; ``labels``: ``(B, K)`` in {0, 1}. Returns
    ``-1/(BK) sum [y log sigma(z) + (1-y) log sigma(-z)]`` with ``z = GAP(cam)``.
    """
    return F.multilabel_soft_margin_loss(cam[:, 1:].float().mean((2, 3)), labels.float())


def equivariant_regularization(cam_scaled: torch.Tensor, cam_of_scaled: torch.Tensor) -> torch.Tensor:
    """ER (Wang et al. 2020, Eq. 4): ``|| A(CAM(I)) - CAM(A(I)) ||_1``, mean over foreground channels
    and pixels, A = rescaling; both maps max-normalised and masked by the image-level label
    (``loss_er`` in ``train_SEAM.py``). Zero for a map that rescales with the image.

    Args:
        cam_scaled: ``A(CAM(I))``, ``(B, 1+K, h, w)``.
        cam_of_scaled: ``CAM(A(I))``, same shape.
    """
    return (cam_scaled[:, 1:] - cam_of_scaled[:, 1:]).abs().mean()


def _with_background(cam: torch.Tensor) -> torch.Tensor:
    return torch.cat([1 - cam[:, 1:].max(1, keepdim=True).values, cam[:, 1:]], 1)


def max_onehot(cam: torch.Tensor) -> torch.Tensor:
    """Foreground channels below the pixel's foreground maximum set to 0 (SEAM ``max_onehot``)."""
    fg = cam[:, 1:]
    top = fg.max(1, keepdim=True).values
    return torch.cat([cam[:, :1], torch.where(fg != top, torch.zeros_like(fg), fg)], 1)


def equivariant_cross_regularization(cam_other: torch.Tensor, cam_rv: torch.Tensor, topk: float = 0.2) -> torch.Tensor:
    """One ECR term (Wang et al. 2020, Eq. 9; ``loss_ecr1`` in ``train_SEAM.py``): the PCM output of
    one view against the other view's CAM (background ``1 - max`` foreground, non-maximal classes
    zeroed, no gradient), L1 averaged over the ``topk`` share of largest errors of each image.

    Args:
        cam_other: ``(B, 1+K, h, w)`` the other view's normalised, label-masked CAM.
        cam_rv: ``(B, 1+K, h, w)`` this view's normalised, label-masked PCM output.
    """
    err = (max_onehot(_with_background(cam_other.detach())) - cam_rv).abs().flatten(1)
    k = max(int(err.shape[1] * topk), 1)
    return err.topk(k, dim=1).values.mean()


def adaptive_min_pooling_loss(x: torch.Tensor) -> torch.Tensor:
    """SEAM's ``adaptive_min_pooling_loss`` (``train_SEAM.py``): the mean ReLU of the lowest quarter of
    pixels of the per-pixel maximum over channels, pushing the least active pixels to 0.

    ``x``: ``(B, C, H, W)`` (the label-masked foreground PCM output).
    """
    n, _, h, w = x.shape
    k = max(h * w // 4, 1)
    low = x.max(1).values.flatten(1).topk(k, dim=1, largest=False).values
    return F.relu(low).sum() / (k * n)


def seam_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, outputs: dict, config: SeamConfig) -> dict:
    """SEAM's objective ``L = L_cls + L_ER + L_ECR`` (Wang et al. 2020, Eq. 10; ``train_SEAM.py``).

    The second view is ``images`` rescaled by ``config.view_scale``; ``L_cls`` averages the two views'
    classification losses (plus their min-pooling terms when ``config.rv_min``); ``L_ECR`` sums
    both directions.

    Args:
        model: the :class:`SeamNet` (run again on the second view).
        images: ``(B, 3, H, W)`` normalised crops; ``labels``: ``(B, K)`` image-level labels in {0, 1}.
        outputs: ``model(images)``.

    Returns:
        ``{"loss", "cls", "er", "ecr"}`` scalar tensors (and ``"rv_min"``).
    """
    s = config.view_scale
    mask = torch.cat([torch.ones_like(labels[:, :1]), labels], 1).float()[:, :, None, None]
    view2 = F.interpolate(images, scale_factor=s, mode="bilinear", align_corners=True)
    out2 = model(view2)
    cam1, rv1 = outputs["cam"].float(), outputs["cam_rv"].float()
    cam2, rv2 = out2["cam"].float(), out2["cam_rv"].float()
    size = cam2.shape[-2:]
    cls = (classification_loss(cam1, labels) + classification_loss(cam2, labels)) / 2
    rv_min = (adaptive_min_pooling_loss((rv1 * mask)[:, 1:]) + adaptive_min_pooling_loss((rv2 * mask)[:, 1:])) / 2
    down = lambda t: F.interpolate(t, size, mode="bilinear", align_corners=True)  # noqa: E731
    cam1, rv1 = down(max_norm(cam1)) * mask, down(max_norm(rv1)) * mask
    cam2, rv2 = max_norm(cam2) * mask, max_norm(rv2) * mask
    er = equivariant_regularization(cam1, cam2)
    ecr = equivariant_cross_regularization(cam2, rv1, config.ecr_topk) + equivariant_cross_regularization(
        cam1, rv2, config.ecr_topk
    )
    total_cls = cls + (rv_min if config.rv_min else 0.0)
    return {"loss": total_cls + er + ecr, "cls": cls, "er": er, "ecr": ecr, "rv_min": rv_min}


# ---------------------------------------------------------------------- training data
class ImageLabelDataset(torch.utils.data.Dataset):
    """Training crops with image-level labels: ``(image (3,H,W) float, labels (K,) float)``.

    Args:
        images: a :class:`SegmentationDataset` of the step's images with training transforms (its
            masks are cropped along and then dropped).
        labels: ``(N, K)`` bool, which of the K classes each *whole* image contains (as an
            annotator would say; a crop may have cut an object out, as in SEAM's random crops).
    """

    def __init__(self, images: SegmentationDataset, labels: np.ndarray):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} image-level labels")
        self.images, self.labels = images, torch.as_tensor(np.asarray(labels), dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image, _ = self.images[i]
        return image, self.labels[i]


def image_labels(presence: np.ndarray, classes: list[int]) -> np.ndarray:
    """``(N, K)`` bool image-level labels of ``classes`` (dataset ids) from ``(N, C)`` class presence."""
    return np.asarray(presence)[:, classes].astype(bool)


# ---------------------------------------------------------------------- inference
@torch.no_grad()
def cam_scores(
    model: SeamNet,
    image: torch.Tensor,
    labels: torch.Tensor,
    config: SeamConfig,
    sources: tuple[str, ...] = ("pcm", "cam"),
) -> dict[str, torch.Tensor]:
    """Multi-scale, flipped, normalised CAMs of one image (SEAM ``infer_SEAM.py``).

    For every scale (and its flip) the foreground maps are upsampled to the image size, masked by
    the image-level label and summed; negative sums are set to 0 and each map is min-max normalised
    to [0, 1] (values within 1e-5 of the minimum set to 0).

    Args:
        model: a trained :class:`SeamNet` (put in eval mode here).
        image: ``(3, H, W)`` normalised.
        labels: ``(K,)`` in {0, 1}.
        sources: ``pcm`` (the refined map SEAM's inference uses) and/or ``cam``.

    Returns:
        ``{source: (K, H, W) float in [0, 1]}``; classes absent from ``labels`` are 0.
    """
    model.eval()
    H, W = image.shape[-2:]
    key = {"pcm": "cam_rv", "cam": "cam"}
    sums = {s: torch.zeros(model.num_foreground, H, W, device=image.device) for s in sources}
    mask = labels.float().to(image.device)[:, None, None]
    for scale in config.scales:
        size = (max(int(round(H * scale)), 8), max(int(round(W * scale)), 8))
        x = F.interpolate(image[None], size, mode="bilinear", align_corners=False)
        batch = torch.cat([x, x.flip(-1)]) if config.flip else x
        out = model(batch)
        for s in sources:
            maps = F.interpolate(out[key[s]][:, 1:].float(), (H, W), mode="bilinear", align_corners=False)
            if config.flip:
                maps = torch.stack([maps[0], maps[1].flip(-1)])
            sums[s] += maps.sum(0) * mask
    result = {}
    for s, m in sums.items():
        m = m.clamp(min=0)
        mx = m.flatten(1).max(1).values[:, None, None]
        mn = m.flatten(1).min(1).values[:, None, None]
        m = torch.where(m < mn + 1e-5, torch.zeros_like(m), (m - mn - 1e-5) / (mx - mn + 1e-5))
        result[s] = m * mask
    return result


def scores_to_labels(
    scores: torch.Tensor, labels: torch.Tensor, class_ids: list[int], threshold: float
) -> torch.Tensor:
    """Pseudo-label from normalised CAMs: argmax over [``threshold``, CAMs of the labelled classes].

    Args:
        scores: ``(K, H, W)`` in [0, 1]; labels: ``(K,)`` in {0, 1}; class_ids: the K dataset ids.
        threshold: the constant background score (SEAM: 0.26).

    Returns:
        ``(H, W)`` int64 dataset ids: 0 (background) or a class of the image-level label.
    """
    present = torch.nonzero(labels > 0).flatten()
    out = torch.zeros(scores.shape[-2:], dtype=torch.long, device=scores.device)
    if len(present) == 0:
        return out
    stack = torch.cat([torch.full_like(scores[:1], threshold), scores[present]])
    arg = stack.argmax(0)
    ids = torch.tensor([0] + [class_ids[i] for i in present.tolist()], device=scores.device)
    return ids[arg]


def fuse_old(pseudo: torch.Tensor, old_prediction: torch.Tensor, old_classes: list[int]) -> torch.Tensor:
    """Old-model fusion, WILSON's rule as a hard label: background only where both say background.

    WILSON (fcdl94/WILSON ``train.py``, weakly branch) trains on ``[sigmoid(old logits), pseudo-labels
    of the new classes]`` with the background target ``min(old background, pseudo background)``. As a
    hard label: a pixel the pseudo-label calls background takes the old model's class when that is an
    old foreground class; a pixel the pseudo-label gives to a new class keeps it (the old model cannot
    know the new classes and calls them the most similar old class).

    Args:
        pseudo: ``(H, W)`` dataset ids from :func:`scores_to_labels`.
        old_prediction: ``(H, W)`` dataset ids predicted by the step t-1 model.
        old_classes: the old classes (dataset ids; background ignored).

    Returns:
        ``(H, W)`` dataset ids.
    """
    fg = [c for c in old_classes if c != 0]
    if not fg:
        return pseudo
    old = torch.isin(old_prediction, torch.tensor(fg, device=old_prediction.device)) & (pseudo == 0)
    return torch.where(old, old_prediction, pseudo)


DEFAULT_THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))


# ---------------------------------------------------------------------- stored pseudo-labels
class PseudoLabels:
    """Pseudo-labels of a step's training images, stored as PNGs of dataset ids plus a manifest.

    Folder layout: ``masks/<image id>.png`` and ``manifest.json`` (the identity ``key``, the image
    ids, quality, the threshold sweep, seconds). Each PNG and the manifest are written atomically;
    the manifest last, so a folder without one is rebuilt and a finished one reused. A folder
    holding another key is an error, never silently overwritten.

    Quality (the standard CAM evaluation): each variant is compared with the mask it replaces, on
    the same images: without fusion, the step's training mask (new classes; old and future classes
    background); with fusion, the mask with the old classes kept. Variants: ``cam`` and ``pcm``
    (before/after PCM) without fusion, ``pcm+fuse`` (or ``cam+fuse``) when an old model is given,
    and ``chance``: every pixel drawn uniformly from background and the image's labelled classes
    (the floor any localisation must beat). ``used`` names the variant the step trains on.
    """

    def __init__(self, folder: Path, key: dict):
        self.folder = Path(folder)
        self.key = key
        self.manifest_path = self.folder / "manifest.json"
        self.manifest = None
        manifest = read_manifest(self.manifest_path, "pseudo-label manifest")  # None: made (again)
        if manifest is not None:
            if manifest.get("key") != key:
                raise FileExistsError(
                    f"{self.manifest_path} belongs to other pseudo-labels (its key differs); "
                    "move that folder away or delete it to make them again"
                )
            self.manifest = manifest

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    def build(
        self,
        model: SeamNet,
        images: SegmentationDataset,
        labels: np.ndarray,
        class_ids: list[int],
        config: SeamConfig,
        *,
        old_model: nn.Module | None = None,
        old_class_order: list[int] | None = None,
        old_classes: list[int] | None = None,
        thresholds=DEFAULT_THRESHOLDS,
        device="cpu",
        progress: bool = True,
    ) -> PseudoLabels:
        """Make and store the pseudo-label of every image.

        Args:
            model: trained :class:`SeamNet`.
            images: the step's training images without transforms (dataset ids; masks are read only
                to measure quality, never to make the labels).
            labels: ``(N, K)`` bool image-level labels; class_ids: their K dataset ids.
            old_model, old_class_order, old_classes: the step t-1 model, its output index -> dataset
                id, and the old classes, for fusion (``config.fuse_old``); None: no fusion.
            thresholds: background scores swept (measured, never used to train).
        """
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        (self.folder / "masks").mkdir(parents=True, exist_ok=True)
        C = images.info.num_classes
        fused = old_model is not None and config.fuse_old
        variants = ["cam", "pcm"] + ([f"{config.cam_source}+fuse"] if fused else [])
        conf = {v: ConfusionMatrix(C) for v in variants + ["chance"]}
        gen = torch.Generator().manual_seed(config.seed)  # the chance baseline's draws
        sweep = {s: [ConfusionMatrix(C) for _ in thresholds] for s in ("cam", "pcm")}
        old_lut = None
        if old_model is not None:
            old_model.to(device).eval()
            old_lut = torch.tensor(list(old_class_order), device=device)
        seen = set(old_classes or []) | set(class_ids) | {0}
        to_train = torch.tensor([c if c in class_ids or c == IGNORE_INDEX else 0 for c in range(256)], device=device)
        to_seen = torch.tensor([c if c in seen or c == IGNORE_INDEX else 0 for c in range(256)], device=device)
        model.to(device).eval()
        finish = eval_transforms()
        ids = []
        for i in tqdm(range(len(images)), desc="pseudo-labels", leave=False, disable=not show_progress(progress)):
            image, gt = finish(*images[i])
            image, gt = image.to(device), gt.to(device)
            lab = torch.as_tensor(labels[i], device=device)
            scores = cam_scores(model, image, lab, config)
            preds = {s: scores_to_labels(scores[s], lab, class_ids, config.bg_threshold) for s in ("cam", "pcm")}
            label = preds[config.cam_source]
            gt_train = to_train[gt]
            if fused:
                old_pred = old_lut[predict(old_model, image[None], device)[0].to(device)]
                label = fuse_old(label, old_pred, old_classes or [])
                conf[variants[-1]].update(label, to_seen[gt])
            choices = torch.tensor([0] + [c for c, y in zip(class_ids, labels[i]) if y])
            conf["chance"].update(
                choices[torch.randint(len(choices), tuple(gt.shape), generator=gen)].to(device), gt_train
            )
            for s in ("cam", "pcm"):
                conf[s].update(preds[s], gt_train)
                for k, t in enumerate(thresholds):
                    sweep[s][k].update(scores_to_labels(scores[s], lab, class_ids, t), gt_train)
            name = images.ids[i]
            atomic_write_png(self.folder / "masks" / f"{name}.png", label.to(torch.uint8).cpu().numpy())
            ids.append(name)
        names = images.info.class_names
        fg = sorted(class_ids)

        def quality(m: ConfusionMatrix, classes: list[int]) -> dict:
            iou = m.iou()
            return {
                "miou": _pct(m.miou([0] + classes)),
                "miou_new": _pct(m.miou(fg)),
                "background": _pct(iou[0]),
                "pixel_acc": _pct(m.pixel_accuracy()),
                "iou": {names[c]: _pct(iou[c]) for c in [0] + classes},
            }

        old_fg = sorted(c for c in (old_classes or []) if c != 0)
        self.manifest = {
            "key": self.key,
            "ids": ids,
            "classes": list(class_ids),
            "config": config.to_dict(),
            "quality": {v: quality(conf[v], fg + (old_fg if "fuse" in v else [])) for v in variants + ["chance"]},
            "used": variants[-1] if fused else config.cam_source,
            "sweep": [
                {"source": s, "threshold": float(t), "miou": _pct(sweep[s][k].miou([0] + fg))}
                for s in ("cam", "pcm")
                for k, t in enumerate(thresholds)
            ],
            "images": len(ids),
            "seconds": round(time.perf_counter() - t0, 2),
            "fused": fused,
        }
        atomic_write_text(self.manifest_path, json.dumps(self.manifest, indent=1))
        return self

    def dataset(self, train_set: SegmentationDataset, lut: np.ndarray) -> SegmentationDataset:
        """``train_set`` (the step's images, any transforms) with the pseudo-labels as masks, remapped
        by ``lut`` (dataset id -> output index, e.g. the step's ``eval_lut`` that keeps fused old classes).

        Raises:
            ValueError: see :meth:`as_dataset`.
        """
        return self.as_dataset(train_set).with_target_lut(lut)

    def as_dataset(self, images: SegmentationDataset) -> SegmentationDataset:
        """``images`` (the step's images) with the pseudo-labels as masks, in dataset ids (no remapping).

        Raises:
            ValueError: the pseudo-labels are not made yet, or were made for other images.
        """
        if not self.complete:
            raise ValueError(f"the pseudo-labels in {self.folder} are not made yet; build them first")
        if list(images.ids) != list(self.manifest["ids"]):
            raise ValueError(
                f"the pseudo-labels in {self.folder} were made for other images than these "
                f"{len(images)}; delete the folder to make them again"
            )
        paths = [self.folder / "masks" / f"{n}.png" for n in self.manifest["ids"]]
        return images._view(mask_paths=paths, raw_lut=class_id_lut(images.info), target_lut=None)

    def quality(self) -> dict:
        return self.manifest["quality"]

    def sweep(self) -> list[dict]:
        return self.manifest["sweep"]

    def best_threshold(self, source: str = "pcm") -> tuple[float, float]:
        """``(threshold, mIoU %)`` of the sweep's best background score for ``source`` (teaching only)."""
        return best_threshold(self.sweep(), source)

    def summary(self) -> dict:
        m = self.manifest
        return {
            "images": m["images"],
            "seconds": m["seconds"],
            "fused": m["fused"],
            "used": m["used"],
            "folder": str(self.folder),
            "quality": {v: {k: q[k] for k in ("miou", "miou_new", "background")} for v, q in m["quality"].items()},
        }


OUTCOMES = ("found", "missed", "moved")


def pseudo_label_outcome(
    pseudo, truth, class_id: int, old_classes, iou_min: float = 0.5, ignore: int = IGNORE_INDEX
) -> dict:
    """Did a pseudo-label find the object of one labelled new class? Our rule, for the course's
    figures (not SEAM's): compare the pixels the pseudo-label gives to ``class_id`` with the ground truth.

    * ``found``: IoU of the pseudo-label's ``class_id`` against the ground truth's is >= ``iou_min``;
    * ``moved``: not found, and the pseudo-label's ``class_id`` covers more pixels of old-class objects
      (the ground truth's old foreground classes) than of the new object itself: the activation moved
      onto an old object (PCM spreads it along pixel affinities, which need not stop at the object)
      and the label paints that object as the new class;
    * ``missed``: neither (too little of the object, or spread over background).

    Args:
        pseudo, truth: ``(H, W)`` dataset class ids (``ignore`` pixels of ``truth`` are left out).
        class_id: a new class of the image-level label.
        old_classes: the classes learned before the step (background ignored if listed).
        iou_min: IoU of a found object (0.5, as a detection counts a hit).

    Returns:
        ``{"class_id", "outcome" (one of :data:`OUTCOMES`), "iou", "on_new" (pixels of the class's
        label on its object), "on_old" (on old objects), "old_class" (the old class it covers most,
        or None), "share" (fraction of the image's valid pixels labelled ``class_id``)}``.
    """
    p, t = np.asarray(pseudo), np.asarray(truth)
    valid = t != ignore
    mine, obj = (p == class_id) & valid, (t == class_id) & valid
    union = int((mine | obj).sum())
    iou = (mine & obj).sum() / union if union else 0.0
    old_fg = [c for c in old_classes if c not in (0, ignore)]
    on_old_each = {c: int((mine & (t == c)).sum()) for c in old_fg}
    on_old, on_new = sum(on_old_each.values()), int((mine & obj).sum())
    outcome = "found" if iou >= iou_min else ("moved" if on_old > on_new else "missed")
    top = max(on_old_each, key=on_old_each.get) if on_old else None
    return {
        "class_id": int(class_id),
        "outcome": outcome,
        "iou": float(iou),
        "on_new": on_new,
        "on_old": on_old,
        "old_class": top,
        "share": float(mine.sum() / max(int(valid.sum()), 1)),
    }


def count_outcomes(outcomes) -> dict:
    """``{"found": n, "missed": n, "moved": n, "objects": total}`` of :func:`pseudo_label_outcome` results."""
    counts = {k: 0 for k in OUTCOMES}
    for o in outcomes:
        counts[o["outcome"]] += 1
    return {**counts, "objects": sum(counts.values())}


def _pct(v) -> float | None:
    return None if v is None or np.isnan(v) else round(float(v) * 100, 2)


def best_threshold(sweep: list[dict], source: str = "pcm") -> tuple[float, float]:
    """``(threshold, mIoU)`` with the highest mIoU among ``sweep`` rows of ``source``.

    Raises:
        ValueError: no row of that source.
    """
    rows = [r for r in sweep if r["source"] == source and r["miou"] is not None]
    if not rows:
        raise ValueError(f"no threshold-sweep row for source {source!r}")
    best = max(rows, key=lambda r: r["miou"])
    return best["threshold"], best["miou"]
