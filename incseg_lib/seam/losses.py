"""SEAM's losses (YudeWang/SEAM train_SEAM.py): classification, equivariant regularisation, equivariant
cross regularisation and the adaptive min-pooling of the background."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .network import max_norm
from .options import SeamConfig


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
