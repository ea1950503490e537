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


def limit_to_seen(model: nn.Module, steps_seen: int) -> None:
    """Leave out at inference the heads beyond the first ``steps_seen`` on every incremental
    classifier of ``model`` (pre-allocated heads of steps not reached yet:
    :attr:`IncrementalClassifier.seen_steps`); a classifier without such heads is left as it is."""
    for m in model.modules():
        if isinstance(m, IncrementalClassifier):
            m.seen_steps = steps_seen if len(m.heads) > steps_seen else None


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
    "limit_to_seen",
]
