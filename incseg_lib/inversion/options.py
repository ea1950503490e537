"""What a DeepInversion run is: :class:`InversionConfig` (its options, validated) and the aggregations."""

from __future__ import annotations

from dataclasses import asdict, dataclass

AGGREGATIONS = ("lse", "scale-aware")


@dataclass(frozen=True)
class InversionConfig:
    """How the synthetic memory is made (part of its identity: a change makes a new memory).

    Defaults follow NVlabs/DeepInversion ``imagenet_inversion.py`` (its argparse defaults) unless
    said otherwise.

    Attributes:
        images_per_class: synthetic images per old foreground class (> 0).
        classes_per_image: classes each image is asked to show (1: cross-entropy; more: multi-label
            BCE, the extra classes drawn at random among the other old classes).
        batch_size: images optimised together (BN statistics are batch statistics: >= 2).
        resolution: side of the square images in pixels.
        iterations_low: iterations on the 2x average-pooled image (NVlabs setting 0: 2000).
        iterations_full: iterations at full resolution (NVlabs setting 0: 1000).
        lr: Adam learning rate (NVlabs ``--lr`` 0.2), cosine decay after a warm-up of
            ``warmup`` x the phase's iterations (NVlabs: 100 of 2000 = 0.05).
        r_feature: weight of the BN feature-statistics term (NVlabs ``--r_feature`` 0.05).
        first_bn_multiplier: extra weight of the first BN layer (NVlabs 10).
        tv_l2, tv_l1: total-variation weights (NVlabs 1e-4 and 0).
        l2: weight of the images' L2 norm (NVlabs 1e-5).
        main: weight of the classification term (NVlabs ``main_loss_multiplier`` 1).
        adi: weight of Adaptive DeepInversion's competition term (0 = off; NVlabs uses 0.2 with ADI).
        jitter: random shift each iteration, as a fraction of the side (NVlabs: 30 px at 224).
        flip: random horizontal flips each iteration (NVlabs ``--do_flip``).
        multires: how the half-resolution phase feeds the full one. ``nvlabs``: one full-resolution
            tensor, average-pooled 2x in the first phase (NVlabs ``get_images``); the pooling never
            sees the tensor's within-block detail, so the full phase starts from the initial noise
            there (the BN term jumps ~4x at the switch). ``upsample`` (default, our change): the
            first phase optimises a half-resolution tensor, bilinearly upsampled to start the
            second, which then starts from a smooth image.
        lse_r: temperature ``r`` of log-sum-exp pooling (Pinheiro & Collobert, CVPR 2015, Eq. 2;
            r -> 0 is average pooling, r -> inf max pooling). Fixed: the seed project redrew it at
            every iteration. 5: an object must cover part of the image, not one pixel; our choice.
        confidence: pseudo-labels keep a pixel only if the old model's probability of its argmax
            exceeds this (else 255); 0.5 = the class outweighs all others together; our choice.
        share: fraction of every training batch drawn from the synthetic memory (as exemplars:
            SSUL-M's 0.5).
        replay_labels: what the classification loss sees on replayed synthetic images: ``pseudo``
            (the old model's pseudo-labels, as exemplars' ground truth) or ``none`` (every pixel
            ignored: the images only feed the method's distillation; FT then learns nothing
            from them).
        seed: seed of the noise, jitter, flips and extra classes (each batch seeded on its own, so
            a resumed run makes the same images).
        aggregation: how the class target pools the logits: ``lse`` (log-sum-exp over the image,
            :func:`lse_pool`; says nothing of how much of the image the class covers) or
            ``scale-aware`` (:func:`scale_aware_pool`, :func:`inside_term` and :func:`outside_term`: the class covers
            about a chosen fraction of the pixels, SegInversion's Scale-Aware Aggregation as read
            here).
        scales: with ``scale-aware``, the fractions of the image's pixels the target class should
            cover, given to the images in turn (image ``i`` gets ``scales[i % len(scales)]``); empty:
            the quartiles (25, 50, 75 %) of the old classes' sizes in the step's real training masks
            (:func:`object_sizes`), so the memory covers the sizes the data has.
        outside_weight: with ``scale-aware``, the weight of :func:`outside_term` (our choice: 1,
            the class term's).
        inside_weight: with ``scale-aware``, the weight of :func:`inside_term` (our choice, measured
            by ``benchmarks/scale_control.py`` on the demo's 15 old classes asked for 5/15/40 % of
            the image: median pseudo-labelled size 0/6.5/2.4 % at 0 (the class term alone), 1/9/9 %
            at 1, 6.5/15/29 % at 10, 8/18/40 % at 30; 10 is the closest on the small and medium
            targets without the class term losing its weight against the BN statistics).
    """

    images_per_class: int = 4
    classes_per_image: int = 1
    batch_size: int = 8
    resolution: int = 160
    iterations_low: int = 200
    iterations_full: int = 100
    lr: float = 0.2
    warmup: float = 0.05
    r_feature: float = 0.05
    first_bn_multiplier: float = 10.0
    tv_l2: float = 1e-4
    tv_l1: float = 0.0
    l2: float = 1e-5
    main: float = 1.0
    adi: float = 0.0
    jitter: float = 30 / 224
    multires: str = "upsample"
    flip: bool = True
    lse_r: float = 5.0
    confidence: float = 0.5
    share: float = 0.5
    replay_labels: str = "pseudo"
    seed: int = 0
    aggregation: str = "lse"
    scales: tuple[float, ...] = ()
    outside_weight: float = 1.0
    inside_weight: float = 10.0

    def __post_init__(self):
        checks = [
            ("images_per_class", self.images_per_class >= 1, "a positive number of images"),
            ("classes_per_image", self.classes_per_image >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 2, "at least 2 (BN statistics are batch statistics)"),
            ("resolution", self.resolution >= 32, "at least 32 pixels (the model's stride is 32)"),
            ("iterations_low", self.iterations_low >= 0, ">= 0"),
            ("iterations_full", self.iterations_full >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("warmup", 0 <= self.warmup < 1, "in [0, 1)"),
            ("jitter", 0 <= self.jitter < 0.5, "a fraction of the side in [0, 0.5)"),
            ("lse_r", self.lse_r > 0, "> 0"),
            ("confidence", 0 <= self.confidence < 1, "in [0, 1)"),
            ("share", 0 < self.share < 1, "in (0, 1) (a fraction of each batch)"),
            ("multires", self.multires in ("upsample", "nvlabs"), "'upsample' or 'nvlabs'"),
            ("replay_labels", self.replay_labels in ("pseudo", "none"), "'pseudo' or 'none'"),
            ("aggregation", self.aggregation in AGGREGATIONS, " or ".join(map(repr, AGGREGATIONS))),
            ("scales", all(0 < float(v) < 1 for v in self.scales), "fractions of the image in (0, 1)"),
            ("outside_weight", self.outside_weight >= 0, ">= 0"),
            ("inside_weight", self.inside_weight >= 0, ">= 0"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ValueError(f"InversionConfig.{name}={getattr(self, name)!r}; it must be {what}")
        for name in ("r_feature", "first_bn_multiplier", "tv_l2", "tv_l1", "l2", "main", "adi"):
            if getattr(self, name) < 0:
                raise ValueError(f"InversionConfig.{name}={getattr(self, name)!r}; loss weights must be >= 0")

    @property
    def tag(self) -> str:
        """Short name for tables, e.g. ``di-4pc-200+100it-160px``."""
        t = f"di-{self.images_per_class}pc-{self.iterations_low}+{self.iterations_full}it-{self.resolution}px"
        default = InversionConfig()
        for name in ("r_feature", "tv_l2", "l2", "adi", "share"):
            if getattr(self, name) != getattr(default, name):
                t += f"-{name.replace('_', '')}{getattr(self, name):g}"
        if self.scale_aware:
            t += "-scale" + "".join(f"-{v:g}" for v in self.scales)
            for name in ("outside_weight", "inside_weight"):
                if getattr(self, name) != getattr(default, name):
                    t += f"-{name.split('_')[0]}{getattr(self, name):g}"
        return t + ("-nolabels" if self.replay_labels == "none" else "")

    @property
    def scale_aware(self) -> bool:
        return self.aggregation == "scale-aware"

    def to_dict(self) -> dict:
        """The settings as a dict (part of the memory's key and the run's name). With ``lse`` the
        scale-aware fields are left out, so the keys of LSE memories made before they existed hold."""
        d = asdict(self)
        d["scales"] = [float(v) for v in self.scales]
        if not self.scale_aware:
            for name in ("aggregation", "scales", "outside_weight", "inside_weight"):
                d.pop(name)
        return d
