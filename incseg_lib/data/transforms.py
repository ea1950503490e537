"""``torchvision.transforms.v2`` pipelines for an image with its ``tv_tensors.Mask``.

Each pipeline is a callable ``(image, mask) -> (image, mask)`` taking a ``tv_tensors.Image``
``(3, H, W)`` uint8 and a ``tv_tensors.Mask`` ``(H, W)`` uint8 and returning a float32 image
normalised with the ImageNet mean/std and an int64 mask (255 = ignore).
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_FILL = {tv_tensors.Mask: 255, "others": 0}


class RandomScale(torch.nn.Module):
    """Resize image and mask by a random factor in ``scale_range`` (relative to their own size).

    The image is resized bilinearly (antialiased), the mask by nearest neighbour. This is the
    "random scale 0.5-2.0" augmentation of DeepLab/MiB/BiSeNet.
    """

    def __init__(self, scale_range: tuple[float, float] = (0.5, 2.0)):
        super().__init__()
        self.scale_range = scale_range

    def forward(self, image, mask):
        lo, hi = self.scale_range
        s = float(torch.empty(1).uniform_(lo, hi))
        h, w = image.shape[-2:]
        size = [max(1, round(h * s)), max(1, round(w * s))]
        return F.resize(image, size, antialias=True), F.resize(mask, size, interpolation=v2.InterpolationMode.NEAREST)


class _Finish(torch.nn.Module):
    def forward(self, image, mask):
        image = F.normalize(F.to_dtype(image, torch.float32, scale=True), IMAGENET_MEAN, IMAGENET_STD)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


def train_transforms(crop_size: int, scale_range: tuple[float, float] = (0.5, 2.0)) -> v2.Compose:
    """Random scale, random crop ``crop_size`` (padding the mask with 255), horizontal flip, normalise."""
    return v2.Compose(
        [
            RandomScale(scale_range),
            v2.RandomCrop(crop_size, pad_if_needed=True, fill=_FILL),
            v2.RandomHorizontalFlip(),
            _Finish(),
        ]
    )


def eval_transforms() -> v2.Compose:
    """Full-image evaluation: normalise only (the mask keeps the image's size)."""
    return v2.Compose([_Finish()])


def centre_crop_transforms(crop_size: int) -> v2.Compose:
    """MiB's validation crop: resize the shorter side to ``crop_size``, then centre-crop a square."""
    return v2.Compose(
        [
            v2.Resize(crop_size, antialias=True),
            v2.CenterCrop(crop_size),
            _Finish(),
        ]
    )


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation: ``(..., 3, H, W)`` float -> same shape, values in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0, 1)
