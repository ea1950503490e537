"""What a SEAM run is: SeamConfig (its options, validated), the initialisations and CAM sources."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
