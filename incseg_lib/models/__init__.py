"""Models: BiSeNet with a ResNet context path and incremental classification heads."""

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

__all__ = [
    "AttentionRefinementModule",
    "BiSeNet",
    "ContextPath",
    "FeatureFusionModule",
    "IncrementalClassifier",
    "SpatialPath",
    "build_resnet",
    "count_parameters",
]
