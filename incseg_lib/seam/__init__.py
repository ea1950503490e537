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

The package is split by job: :mod:`.options` (:class:`SeamConfig`), :mod:`.network`
(:class:`SeamNet`, CAM and PCM), :mod:`.losses`, :mod:`.labels` (image labels to pseudo-labels)
and :mod:`.store` (:class:`PseudoLabels` on disk, outcomes and the threshold sweep).
"""

from .labels import DEFAULT_THRESHOLDS, ImageLabelDataset, cam_scores, fuse_old, image_labels, scores_to_labels
from .losses import (
    adaptive_min_pooling_loss,
    classification_loss,
    equivariant_cross_regularization,
    equivariant_regularization,
    max_onehot,
    seam_loss,
)
from .network import SeamNet, max_norm, normalised_cam, pcm
from .options import CAM_SOURCES, INITS, SeamConfig
from .store import OUTCOMES, PseudoLabels, best_threshold, count_outcomes, pseudo_label_outcome

__all__ = [
    "adaptive_min_pooling_loss",
    "best_threshold",
    "cam_scores",
    "CAM_SOURCES",
    "classification_loss",
    "count_outcomes",
    "DEFAULT_THRESHOLDS",
    "equivariant_cross_regularization",
    "equivariant_regularization",
    "fuse_old",
    "image_labels",
    "ImageLabelDataset",
    "INITS",
    "max_norm",
    "max_onehot",
    "normalised_cam",
    "OUTCOMES",
    "pcm",
    "pseudo_label_outcome",
    "PseudoLabels",
    "scores_to_labels",
    "seam_loss",
    "SeamConfig",
    "SeamNet",
]
