"""Segmentation losses.

Classification losses (cross-entropy, unbiased cross-entropy, LwF-MC's BCE) are averaged over
the labelled pixels (label != 255) of the batch, so their scale does not depend on how much void
or padding a crop holds. (MiB's code computes them with ``reduction='none'`` and then averages
over *every* pixel, ignored ones counting 0: the same gradient direction, scaled by the labelled
fraction of the batch.)

Distillation losses (KD, unbiased KD, LwF-MC's distillation, ILT's feature MSE) take an optional
``mask`` of the pixels to distil. MiB's code distils every pixel, the 255-padded border of a crop
included; :mod:`incseg_lib.methods` passes the labelled pixels by default
(``RunConfig.distill_pixels = "labelled"``) and no mask for MiB's behaviour (``"all"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data.common import IGNORE_INDEX

# ---------------------------------------------------------------------- annotated background
KNOWN_BG_BASE = 200  # label codes 200..254: background in an image annotated for outputs 0..n-1


def known_background(n_known: int) -> int:
    """Label code of a background pixel in an image whose annotation covers outputs ``0..n_known-1``.

    At step t an image of the step is annotated for the new classes only, so its background may
    hide any old class (MiB's unbiased cross-entropy, Sec. 3.2). A stored exemplar was annotated
    for every class seen when it was stored: its background hides only the classes learned
    since. Exemplar masks carry this code on their background pixels (see
    :meth:`incseg_lib.exemplars.ExemplarMemory.dataset`); :func:`unbiased_cross_entropy` then
    merges background with the outputs ``n_known..C-1`` only (later old steps and the current new
    classes), and every other loss reads the code as plain background 0.

    Raises:
        ValueError: ``n_known`` outside ``1..54``.
    """
    if not 1 <= n_known <= IGNORE_INDEX - 1 - KNOWN_BG_BASE:
        raise ValueError(f"n_known={n_known} must be in 1..{IGNORE_INDEX - 1 - KNOWN_BG_BASE}")
    return KNOWN_BG_BASE + n_known


def plain_labels(target: torch.Tensor) -> torch.Tensor:
    """``target`` with annotated-background codes read as background 0 (255 unchanged)."""
    codes = (target >= KNOWN_BG_BASE) & (target != IGNORE_INDEX)
    return torch.where(codes, torch.zeros_like(target), target) if codes.any() else target


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Pixel-wise cross-entropy ``-1/|P| sum_{i in P} log softmax(logits_i)[y_i]``, P = labelled pixels.

    Args:
        logits: ``(B, C, H, W)`` float.
        target: ``(B, H, W)`` int64, values ``0..C-1`` or ``ignore_index``.

    Returns:
        Scalar tensor; 0 (with a gradient path) if no pixel is labelled.
    """
    if (target != ignore_index).any():
        return F.cross_entropy(logits.float(), plain_labels(target), ignore_index=ignore_index, reduction="mean")
    return logits.sum() * 0.0


def bisenet_loss(outputs: dict, target: torch.Tensor, criterion=cross_entropy, aux_weight: float = 1.0) -> dict:
    """BiSeNet's joint loss (Yu et al. ECCV 2018, Eq. 2-3): ``l(out) + aux_weight * sum_k l(aux_k)``.

    Args:
        outputs: the model's dict (``out``, and ``aux`` in training mode).
        target: ``(B, H, W)`` labels.
        criterion: ``(logits, target) -> scalar`` classification loss (e.g. :func:`cross_entropy`).

    Returns:
        ``{"loss": total, "principal": ..., "aux": ...}`` (scalar tensors).
    """
    principal = criterion(outputs["out"], target)
    aux = sum((criterion(a, target) for a in outputs.get("aux", [])), torch.zeros((), device=target.device))
    return {"loss": principal + aux_weight * aux, "principal": principal, "aux": aux}


# ---------------------------------------------------------------------- incremental-learning losses
def _labelled(target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    return (target != ignore_index).float()


def unbiased_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, num_old: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """MiB's unbiased cross-entropy (Cermelli et al., CVPR 2020, Sec. 3.2, Eq. 4-5).

    At step t the background label also covers every old class, so the probability of
    "background" is the sum of the probabilities of background and the old classes:
    ``q~(i, b) = sum_{k in Y^{t-1}} q(i, k)``, ``q~(i, c) = q(i, c)`` for new classes ``c``;
    loss ``= -1/|P| sum_{i in P} log q~(i, y_i)`` over labelled pixels P.

    With rehearsal (SMiB) exemplar pixels may carry an old-class label ``k``: their label is
    known, so they use the class's own probability ``q(i, k)`` (plain cross-entropy there). Their
    background pixels carry :func:`known_background` codes: an exemplar annotated for outputs
    ``0..n-1`` when it was stored has ``q~(i, b) = q(i, 0) + sum_{k >= n} q(i, k)`` -- only the
    classes learned since storage may hide there: those of later old steps *and the current new
    classes*, which an exemplar never annotates (a stored CamVid street frame is full of the cars
    learned at step 1; read as plain background they taught "car = background" in half of every
    batch: new-class mIoU 13.6 -> 0 on CamVid 8-3 with 2 exemplars per class). Merging every old
    class into an exemplar's background too would never push the old classes down on their own
    annotated background while the exemplars' old-class pixels push them up: measured on the demo
    (15-1, step 1), memory then *lowered* old-class mIoU (72.0 -> 61.7 with 5 per class).

    Args:
        logits: ``(B, C, H, W)``; output indices ``0..num_old-1`` are background and old classes.
        target: ``(B, H, W)`` int64 with 0 (background), class indices, :func:`known_background`
            codes, or 255.
        num_old: number of outputs of the previous steps (background included).

    Raises:
        ValueError: ``num_old`` outside ``1..C``.
    """
    if not 1 <= num_old <= logits.shape[1]:
        raise ValueError(f"num_old={num_old} must be in 1..{logits.shape[1]}")
    x = logits.float()
    den = torch.logsumexp(x, dim=1)
    log_bg = torch.logsumexp(x[:, :num_old], dim=1) - den
    log_p = x - den[:, None]
    t = plain_labels(target).clone()
    t[target == ignore_index] = 0
    nll = -torch.where(t == 0, log_bg, log_p.gather(1, t[:, None])[:, 0])
    codes = (target >= KNOWN_BG_BASE) & (target != ignore_index)
    if codes.any():  # exemplar background: merged with every output learned after storage
        for code in torch.unique(target[codes]).tolist():
            n = min(code - KNOWN_BG_BASE, x.shape[1])
            merged = torch.logsumexp(torch.cat([x[:, :1], x[:, n:]], dim=1), dim=1) - den
            nll = torch.where(target == code, -merged, nll)
    mask = _labelled(target, ignore_index)
    return (nll * mask).sum() / mask.sum().clamp(min=1)


def knowledge_distillation(
    logits: torch.Tensor, old_logits: torch.Tensor, temperature: float = 1.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """LwF's distillation (Li & Hoiem, TPAMI 2017, Eq. 2) on segmentation outputs, as in MiB's code.

    ``-1/|P| sum_i 1/|Y^{t-1}| sum_{c in Y^{t-1}} softmax(old/T)_c log softmax(new_old/T)_c`` where
    ``new_old`` are the new model's logits of the old classes only (softmax restricted to them).
    Averaged over old classes (as MiB's implementation, which its loss weights assume) and pixels.

    Args:
        logits: ``(B, C, H, W)`` new model; old_logits: ``(B, C_old, H, W)`` frozen old model.
        mask: optional ``(B, H, W)`` bool/float of pixels to use (default all).
    """
    n_old = old_logits.shape[1]
    log_q = torch.log_softmax(logits[:, :n_old].float() / temperature, dim=1)
    p_old = torch.softmax(old_logits.float() / temperature, dim=1)
    per_pixel = -(p_old * log_q).sum(1) / n_old
    return _masked_mean(per_pixel, mask)


def unbiased_distillation(
    logits: torch.Tensor, old_logits: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """MiB's unbiased knowledge distillation (Cermelli et al., CVPR 2020, Sec. 3.3, Eq. 6-7).

    The old model's background may hide the new classes, so the new model's background
    probability is the sum over background and the new classes:
    ``q^(i, b) = sum_{k in C^t} q(i, k)`` (``C^t`` = classes added at step t, plus background),
    ``q^(i, c) = q(i, c)`` for old classes; loss
    ``= -1/|P| sum_i 1/|Y^{t-1}| sum_{c in Y^{t-1}} q^{t-1}(i, c) log q^(i, c)``, averaged over old
    classes as in MiB's implementation. Softmax over **all** current outputs.

    Args:
        logits: ``(B, C, H, W)`` new model; old_logits: ``(B, C_old, H, W)``; index 0 is background.
    """
    n_old = old_logits.shape[1]
    x = logits.float()
    den = torch.logsumexp(x, dim=1, keepdim=True)
    log_bg = torch.logsumexp(torch.cat([x[:, :1], x[:, n_old:]], dim=1), dim=1, keepdim=True) - den
    log_q = torch.cat([log_bg, x[:, 1:n_old] - den], dim=1)
    p_old = torch.softmax(old_logits.float(), dim=1)
    per_pixel = -(p_old * log_q).sum(1) / n_old
    return _masked_mean(per_pixel, mask)


def bce_one_hot(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Binary cross-entropy against one-hot labels, summed over classes (LwF-MC / iCaRL's classifier).

    ``1/|P| sum_{i in P} sum_c BCE(sigmoid(logits_ic), [y_i = c])`` over labelled pixels P: every
    output is an independent sigmoid (iCaRL, Rebuffi et al., CVPR 2017, Alg. 3), summed over the
    ``C`` classes as MiB's ``BCEWithLogitsLossWithIgnoreIndex`` (fcdl94/MiB ``utils/loss.py``), which
    its ``--method LWF-MC`` trains with at every step, step 0 included (``train.py``,
    ``self.bce = opts.bce or opts.icarl``).

    Args:
        logits: ``(B, C, H, W)``; target: ``(B, H, W)`` int64 in ``0..C-1`` or ``ignore_index``.

    Returns:
        Scalar tensor (0 with a gradient path if no pixel is labelled).
    """
    C = logits.shape[1]
    t = plain_labels(target).clone()
    labelled = target != ignore_index
    t[~labelled] = 0
    onehot = F.one_hot(t, C).permute(0, 3, 1, 2).float()
    bce = F.binary_cross_entropy_with_logits(logits.float(), onehot, reduction="none").sum(1)
    return _masked_mean(bce, labelled)


def lwf_mc_distillation(
    logits: torch.Tensor, old_logits: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """LwF-MC's distillation: BCE of the old outputs against the old model's sigmoids, summed over classes.

    ``1/|P| sum_i sum_{c in Y^{t-1}} BCE(sigmoid(logits_ic), sigmoid(old_ic))`` (iCaRL's distillation,
    Rebuffi et al., CVPR 2017, Alg. 3). MiB's code (``train.py``, ``icarl_combined``) computes
    ``n_old * BCEWithLogitsLoss(mean)`` over the old outputs, i.e. the sum over old classes, and
    weights it 10 (``argparser.py``: ``icarl_importance = 10`` for ``--method LWF-MC``).

    Args:
        logits: ``(B, C, H, W)`` new model; old_logits: ``(B, C_old, H, W)`` frozen old model.
        mask: optional ``(B, H, W)`` pixels to distil (default every pixel, as MiB's code).
    """
    n_old = old_logits.shape[1]
    bce = F.binary_cross_entropy_with_logits(
        logits[:, :n_old].float(), torch.sigmoid(old_logits.float()), reduction="none"
    ).sum(1)
    return _masked_mean(bce, mask)


def lwf_mc_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    old_logits: torch.Tensor,
    weight: float = 10.0,
    mask: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """MiB's LwF-MC objective at steps >= 1: ``bce_one_hot + weight * lwf_mc_distillation``.

    The one-hot BCE covers every output (old classes have target 0 on the step's labels, where
    they are background); the distillation pulls the old outputs to the old model's sigmoids.
    Source: fcdl94/MiB ``train.py`` (``icarl_combined``), ``utils/loss.py``, ``argparser.py``.

    Args:
        logits: ``(B, C, H, W)``; target: ``(B, H, W)`` current labels; old_logits: ``(B, C_old, H, W)``.
        weight: distillation weight (MiB: 10). mask: pixels to distil (see :func:`lwf_mc_distillation`).
    """
    return bce_one_hot(logits, target, ignore_index) + weight * lwf_mc_distillation(logits, old_logits, mask)


def feature_distillation(
    features: torch.Tensor, old_features: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """ILT's feature-space distillation (Michieli & Zanuttigh, ICCVW 2019, Eq. 3): mean squared
    error between the new and the frozen old encoder outputs, ``(B, C, h, w)`` each.

    Args:
        mask: optional ``(B, H, W)`` pixels to distil at *image* resolution; each feature cell is
            weighted by the fraction of its pixels in the mask (area interpolation), so cells that
            lie in the padding count 0. None = every cell (MiB's ``nn.MSELoss()``).
    """
    err = (features.float() - old_features.float()).pow(2).mean(1)  # (B, h, w)
    if mask is None:
        return err.mean()
    w = F.interpolate(mask.float()[:, None], size=err.shape[-2:], mode="area")[:, 0]
    return (err * w).sum() / w.sum().clamp(min=1e-12)


def labelled_mask(target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``(B, H, W)`` bool: pixels with a label (not ``ignore_index``: crop padding and void)."""
    return target != ignore_index


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    m = mask.float()
    return (values * m).sum() / m.sum().clamp(min=1)
