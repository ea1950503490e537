"""DeepInversion for segmentation: synthesise images of the old classes from the old model.

When no old image may be stored, the old model itself can be *inverted*: starting from noise, a
batch of images is optimised until the frozen model recognises chosen old classes in it, while
the statistics of its features match what the model saw in training (Yin et al., "Dreaming to
Distill: Data-free Knowledge Transfer via DeepInversion", CVPR 2020). For a segmentation model
the class target is image-level, on pooled segmentation logits (the idea of inverting a
segmenter with image-level targets, as in Half-Real Half-Fake distillation / SegInversion).

Objective for a batch ``x`` (``(B, 3, H, W)`` in the model's ImageNet-normalised input space,
Yin et al. Eq. 3-5 and NVlabs/DeepInversion ``deepinversion.py``, ``DeepInversionClass.get_images``)::

    L(x) = main * L_cls(x) + r_feature * sum_l w_l R_l(x) + tv_l2 * TV_2(x) + tv_l1 * TV_1(x)
           + l2 * mean_b ||x_b||_2 + adi * (1 - JS(old || student))

* ``L_cls``: classification of the log-sum-exp pooled logits of the old *foreground* outputs
  (:func:`lse_pool`; cross-entropy with one class per image, multi-label BCE with several);
  background is never a target, so the images show objects, not empty scenes.
* ``R_l``: :class:`BNStatistics` on every BatchNorm layer, ``||mu_l(x) - mu_l||_2 +
  ||var_l(x) - var_l||_2`` against the running statistics; the first layer weighted
  ``first_bn_multiplier`` (NVlabs: 10), the others 1. The running statistics summarise the
  training images' appearance layer by layer, so matching them should make the images look like
  data rather than adversarial noise (Yin et al.'s argument; :func:`transfer_check` is their test).
* ``TV_2`` / ``TV_1``: :func:`image_priors` (NVlabs ``get_image_prior_losses``).
* ADI (Adaptive DeepInversion, Yin et al. Sec. 3.3; off by default): the Jensen-Shannon divergence
  between the old and the current (student) model's outputs, maximised, so the images fall where
  the student disagrees (:func:`competition`).

Each iteration applies a random jitter (roll) and a random horizontal flip; the image is clamped to
the valid normalised range after each Adam step (NVlabs ``utils.clip``). Schedule: NVlabs'
``setting_id=0`` (multi-resolution: 2k iterations on a 2x average-pooled image, then 1k at full
resolution, Adam betas (0.5, 0.9), learning rate 0.2 with cosine decay after a linear warm-up),
scaled down by :class:`InversionConfig`; by default the half-resolution phase optimises a
half-size image that is upsampled to start the full phase (:attr:`InversionConfig.multires`).
The best iterate of the full-resolution phase is kept (NVlabs meant to keep the best, but its
``best_cost`` is never updated, so it keeps the last).

The seed course project's attempt made replay worse than plain MiB; its flaws and where this module
avoids them: synthetic images not normalised like inputs (here the optimised tensor *is* a
normalised input, clamped to its range, and stored de-normalised); a pooling temperature redrawn
every iteration (here fixed, :attr:`InversionConfig.lse_r`); background drawn as a target (here
only old foreground classes); distillation fed integer labels (here replay uses MiB's unbiased
distillation on the old model's logits, as for exemplars); BN hooks never removed
(:class:`BNStatistics` is a context manager that removes them, also on error); 20k iterations per
class (here a few hundred per *batch* of classes, multi-resolution).

The package is split by job: :mod:`.options` (:class:`InversionConfig`), :mod:`.terms` (the
objective's terms), :mod:`.synthesis` (one synthesis, :func:`synthesize`), :mod:`.memory`
(:class:`SyntheticMemory`, what steps replay) and :mod:`.transfer` (the transfer check).
"""

from .memory import SyntheticMemory
from .options import AGGREGATIONS, InversionConfig
from .synthesis import SynthesisResult, image_targets, pseudo_labels, snapshot_iterations, synthesize
from .terms import (
    BNStatistics,
    class_loss,
    competition,
    cosine_lr,
    image_priors,
    input_range,
    inside_term,
    lse_pool,
    measured_scales,
    object_sizes,
    outside_term,
    scale_aware_pool,
    scale_aware_score,
    scale_aware_terms,
    topk_pixels,
)
from .transfer import TRANSFER_MIN_FRACTION, target_recognised, transfer_check

__all__ = [
    "AGGREGATIONS",
    "BNStatistics",
    "class_loss",
    "competition",
    "cosine_lr",
    "image_priors",
    "image_targets",
    "input_range",
    "inside_term",
    "InversionConfig",
    "lse_pool",
    "measured_scales",
    "object_sizes",
    "outside_term",
    "pseudo_labels",
    "scale_aware_pool",
    "scale_aware_score",
    "scale_aware_terms",
    "snapshot_iterations",
    "SynthesisResult",
    "synthesize",
    "SyntheticMemory",
    "target_recognised",
    "topk_pixels",
    "transfer_check",
    "TRANSFER_MIN_FRACTION",
]
