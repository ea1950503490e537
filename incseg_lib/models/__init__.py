"""Models: BiSeNet (the course's) and DeepLabV3 (the papers'), both with incremental classification heads."""

from torch import nn

from .bisenet import (
    AttentionRefinementModule,
    BiSeNet,
    ContextPath,
    FeatureFusionModule,
    SpatialPath,
    build_resnet,
    count_parameters,
)
from .classifier import IncrementalClassifier
from .deeplab import DEEPLAB_BACKBONES, DeepLabV3

MODELS = ("bisenet", "deeplabv3")


def build_model(name: str, classes_per_step: list[int], backbone: str, pretrained: str = "") -> nn.Module:
    """A :class:`BiSeNet` (``bisenet``) or :class:`DeepLabV3` (``deeplabv3``) with ``classes_per_step`` heads.

    Raises:
        ValueError: an unknown model, or a backbone the model does not take.
    """
    if name == "bisenet":
        return BiSeNet(classes_per_step, backbone, pretrained)
    if name == "deeplabv3":
        return DeepLabV3(classes_per_step, backbone, pretrained)
    raise ValueError(f"unknown model {name!r}; choose one of {MODELS}")


__all__ = [
    "DEEPLAB_BACKBONES",
    "MODELS",
    "AttentionRefinementModule",
    "BiSeNet",
    "ContextPath",
    "DeepLabV3",
    "FeatureFusionModule",
    "IncrementalClassifier",
    "SpatialPath",
    "build_model",
    "build_resnet",
    "count_parameters",
]
