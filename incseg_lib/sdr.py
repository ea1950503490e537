"""SDR's pieces (Michieli & Zanuttigh, "Continual Semantic Segmentation via Repulsion-Attraction of
Sparse and Disentangled Latent Representations", CVPR 2021), as its official code runs them
(LTTM/SDR), on the features the classifier reads (``latent``; labels nearest-downsampled to them).

- **Prototypes** (:class:`PrototypeMemory`): per class, the running mean of its features over
  every iteration of every step, detached (``train.py`` ``Trainer._update_running_stats``); kept
  beside each step's checkpoint and loaded at the next step (``utils/run_utils.py`` ``save_ckpt``,
  ``run.py``).
- **Prototype matching** (:func:`prototype_matching`, weight 0.01): for each old class the old model
  predicts on background-labelled pixels, the MSE between the batch's mean feature of those pixels
  and the stored prototype (``utils/loss.py`` ``DistillationEncoderPrototypesLoss``).
- **Feature sparsification** (:func:`sparsification`, 1e-3): per pixel, ``sum exp(f~) / sum f~`` of
  the features divided by their class's maximum (``FeaturesSparsificationLoss``).
- **Attraction** (:func:`attraction`, 1e-3): MSE of each class's features to its prototype;
  **repulsion** (:func:`repulsion`, 1e-3): the mean inverse distance between the batch's class means
  (``FeaturesClusteringSeparationLoss``).

Weights from ``argparser.py``'s ``--method SDR`` block. SDR's code gathers a class's features with
``features[mask.expand(...)].view(C, -1)``, which mixes the channels of different pixels as soon as
the batch holds more than one image (and its prototype-matching line, ``.view(-1, C)``, even with
one); here the features are permuted to ``(B, H, W, C)`` and masked (:func:`class_features`), which
is what those lines mean.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .data.common import IGNORE_INDEX
from .store import load_torch, save_torch

PROTOTYPE_MATCHING_WEIGHT = 0.01  # ``loss_de_prototypes``
SPARSIFICATION_WEIGHT = 1e-3  # ``loss_featspars``
ATTRACTION_WEIGHT = 1e-3  # ``loss_fc``
REPULSION_WEIGHT = 1e-3  # ``lfc_sep_clust``


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, H, W)`` labels nearest-downsampled to ``size`` (SDR's ``F.interpolate(..., mode='nearest')``)."""
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def class_features(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The features of the pixels in ``mask``: ``features`` ``(B, C, h, w)``, ``mask`` ``(B, h, w)``
    bool -> ``(N, C)``, one row per pixel (SDR's ``features[mask.expand(...)].view(C, -1)`` meant
    this; it interleaves channels of different images)."""
    return features.permute(0, 2, 3, 1)[mask]


def sparsification(features: torch.Tensor, labels: torch.Tensor, eps: float = 1e-15) -> torch.Tensor:
    """SDR's feature sparsification (``FeaturesSparsificationLoss``, ``max_maskedforclass`` /
    ``exponential`` / ``ratio``): each pixel's features divided by the largest feature value of its
    class in the batch, then ``sum_c exp(f~_c) / sum_c f~_c`` per pixel, averaged over the pixels.

    SDR's code normalises every class but background only when background is not alone, and also
    normalises the ignored pixels as a class; here every class present is normalised and ignored
    pixels are left out (alone, background left every pixel at 0 and the ratio at ``C / eps``).

    Args:
        features: ``(B, C, h, w)`` non-negative; labels: ``(B, h, w)`` at the features' resolution.
    """
    f = features.float()
    norm = torch.zeros_like(f)
    valid = labels != IGNORE_INDEX
    for cl in torch.unique(labels[valid]).tolist():
        m = (labels == cl)[:, None].float()
        norm = norm + f / (class_features(f, labels == cl).max() + eps) * m
    ratio = torch.exp(norm).sum(dim=1) / (norm.sum(dim=1) + eps)  # (B, h, w)
    return ratio[valid].mean() if valid.any() else f.sum() * 0.0


def class_means(features: torch.Tensor, labels: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """``(classes present, (K, C) their mean features)`` in the batch (255 left out)."""
    classes = [c for c in torch.unique(labels).tolist() if c != IGNORE_INDEX]
    if not classes:
        return [], features.new_zeros((0, features.shape[1]))
    return classes, torch.stack([class_features(features, labels == c).mean(0) for c in classes])


def attraction(features: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """SDR's attraction (``FeaturesClusteringSeparationLoss``, clustering part): for each class in the
    batch (background included, 255 not), the MSE between its pixels' features and its prototype,
    averaged over the classes. (SDR's code divides its running sum by the class count inside the
    loop, at every class; the mean over classes is what that means.)

    Args:
        features: ``(B, C, h, w)``; labels: ``(B, h, w)``; prototypes: ``(num_classes, C)``.
    """
    classes = [c for c in torch.unique(labels).tolist() if c != IGNORE_INDEX]
    if not classes:
        return features.sum() * 0.0
    f = features.float()
    terms = [
        F.mse_loss(class_features(f, labels == c), prototypes[c].expand(int((labels == c).sum()), -1)) for c in classes
    ]
    return torch.stack(terms).mean()


def repulsion(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SDR's repulsion (``FeaturesClusteringSeparationLoss``, separation part): the mean of ``1 / d``
    over the pairs of distinct classes in the batch, ``d`` the Euclidean distance between their mean
    features (``torch.cdist``); 0 with fewer than two classes (SDR's NaN case)."""
    _, means = class_means(features.float(), labels)
    if len(means) < 2:
        return features.sum() * 0.0
    d = torch.cdist(means[None], means[None])[0]
    off = ~torch.eye(len(means), dtype=torch.bool, device=d.device)
    return (1.0 / d[off]).mean()


def prototype_matching(
    features: torch.Tensor, labels: torch.Tensor, old_pred: torch.Tensor, prototypes: torch.Tensor
) -> torch.Tensor:
    """SDR's prototype matching (``DistillationEncoderPrototypesLoss``, ``sumafter``): on the pixels
    labelled background whose old-model prediction is an old class ``c != 0``, the MSE between their
    mean feature and ``c``'s stored prototype (detached), averaged over those classes.

    Args:
        features: ``(B, C, h, w)``; labels, old_pred: ``(B, h, w)`` at the features' resolution
            (``old_pred``: the old model's argmax, nearest-downsampled); prototypes: ``(K, C)``.
    """
    hidden = torch.where(labels == 0, old_pred, torch.zeros_like(old_pred))
    classes = [c for c in torch.unique(hidden).tolist() if c != 0]
    if not classes:
        return features.sum() * 0.0
    f = features.float()
    terms = [F.mse_loss(class_features(f, hidden == c).mean(0), prototypes[c].detach()) for c in classes]
    return torch.stack(terms).mean()


def prototypes_file(checkpoint: Path) -> Path:
    """The prototypes beside ``checkpoint`` (``step-k.pt`` -> ``step-k.prototypes.pt``)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".prototypes.pt")


class PrototypeMemory:
    """SDR's class prototypes: a running mean of each class's features, saved with the step.

    ``update`` folds a batch in: for every class present but background and ignored pixels,
    ``p <- (sum of the batch's features + n p) / (n + n_batch)``, ``n += n_batch``, detached
    (``train.py`` ``Trainer._update_running_stats``; SDR skips background in the overlapped
    setting and at steps >= 1, so its prototype is the step-0 one in the disjoint setting and zero
    in the overlapped one; SDR drops the *first* class present, a foreground class when a batch has
    no background pixel: here background is what is skipped).

    It has the interface :func:`incseg_lib.engine.fit` expects of a tracker: ``save`` writes it
    beside the checkpoint after every epoch and ``resume`` reads it back.

    Args:
        num_classes: classes the model knows at this step; dim: the features' channels.
        path: where :meth:`save` writes; previous: the prototypes and counts of the step before
            (``(K_old, dim)``, ``(K_old,)``), whose rows are kept and extended with zeros.
        update_background: update class 0 too (SDR does at step 0 of the disjoint setting only).
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        path: Path | None = None,
        previous: dict | None = None,
        update_background: bool = False,
    ):
        self.prototypes = torch.zeros(num_classes, dim)
        self.counts = torch.zeros(num_classes)
        self.path, self.update_background = path, update_background
        if previous is not None:
            k = previous["prototypes"].shape[0]
            self.prototypes[:k] = previous["prototypes"]
            self.counts[:k] = previous["counts"]

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Fold in a batch: ``features`` ``(B, C, h, w)``, ``labels`` ``(B, h, w)`` at their resolution."""
        f = features.detach().float()
        self.prototypes = self.prototypes.to(f.device)
        self.counts = self.counts.to(f.device)
        for c in torch.unique(labels).tolist():
            if c == IGNORE_INDEX or (c == 0 and not self.update_background) or c >= len(self.counts):
                continue
            x = class_features(f, labels == c)
            n = self.counts[c]
            self.prototypes[c] = (x.sum(0) + n * self.prototypes[c]) / (n + len(x))
            self.counts[c] = n + len(x)

    def state(self) -> dict:
        return {"prototypes": self.prototypes.detach().cpu(), "counts": self.counts.detach().cpu()}

    # the tracker interface of engine.fit
    def start_epoch(self) -> None:
        pass

    def capture_gradients(self) -> None:
        pass

    def after_step(self, skipped: bool = False) -> None:
        pass

    def save(self, epoch: int, final: bool) -> None:
        if self.path is not None:
            save_torch(
                self.path,
                {"epoch": epoch, "final": final, **self.state()},
                what=f"SDR prototypes {Path(self.path).name}",
            )

    def resume(self, epoch: int) -> bool:
        """Load the prototypes saved after ``epoch`` (a resumed step continues its running means)."""
        if self.path is None or not Path(self.path).is_file():
            return False
        state = load_torch(self.path)
        if state.get("epoch") != epoch:
            return False
        self.prototypes, self.counts = state["prototypes"], state["counts"]
        return True


def load_prototypes(checkpoint: Path) -> dict | None:
    """The finished prototypes saved beside ``checkpoint``, or None when there are none (names the
    file in the error when it is unreadable: :func:`incseg_lib.store.load_torch`)."""
    path = prototypes_file(checkpoint)
    if not path.is_file():
        return None
    state = load_torch(path)
    return state if state.get("final") else None
