"""Pictures for the notebooks: coloured masks, sample grids, galleries, loss curves."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .data.transforms import denormalize

IGNORE_COLOUR = (224, 224, 192)  # VOC's cream for void


def colorize(mask, palette: np.ndarray) -> np.ndarray:
    """Class-id mask ``(H, W)`` (any int type) -> ``(H, W, 3)`` uint8 RGB; 255 drawn cream."""
    m = np.asarray(mask).astype(np.int64)
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = palette
    lut[255] = IGNORE_COLOUR
    return lut[np.clip(m, 0, 255)]


def _to_rgb(image) -> np.ndarray:
    t = torch.as_tensor(image)
    if t.dtype.is_floating_point:
        t = denormalize(t)
        return (t.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
    return t.permute(1, 2, 0).cpu().numpy()


def show_samples(dataset, indices: Sequence[int], palette: np.ndarray, class_names: Sequence[str] | None = None,
                 cols: int = 4):
    """Grid of image | mask pairs from ``dataset`` (items ``(image, mask)``). Returns the figure."""
    import matplotlib.pyplot as plt

    rows = (len(indices) + cols - 1) // cols
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(3 * cols, 1.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, i in enumerate(indices):
        image, mask = dataset[i]
        r, c = divmod(k, cols)
        axes[r, 2 * c].imshow(_to_rgb(image))
        axes[r, 2 * c + 1].imshow(colorize(mask, palette))
        if class_names is not None:
            present = [class_names[v] for v in np.unique(np.asarray(mask)) if v < len(class_names) and v != 0]
            axes[r, 2 * c + 1].set_title(", ".join(present)[:28], fontsize=7)
    fig.tight_layout()
    return fig


def gallery(model, dataset, indices: Sequence[int], palette: np.ndarray, device="cpu", title: str = ""):
    """image | ground truth | prediction rows for ``indices`` of an evaluation dataset."""
    import matplotlib.pyplot as plt

    from .engine import predict

    fig, axes = plt.subplots(len(indices), 3, figsize=(7.5, 2.3 * len(indices)), squeeze=False)
    for row, i in zip(axes, indices):
        image, mask = dataset[i]
        pred = predict(model, image[None], device)[0]
        for ax, pic, name in zip(row, (_to_rgb(image), colorize(mask, palette), colorize(pred, palette)),
                                 ("image", "ground truth", "prediction")):
            ax.imshow(pic)
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def loss_curves(histories: dict[str, dict], title: str = "training loss"):
    """One line per run: mean training loss per epoch. ``histories``: label -> fit() history."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, h in histories.items():
        loss = h.get("loss") or []
        ax.plot(range(1, len(loss) + 1), loss, marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (principal + auxiliary)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def iou_bars(record: dict, title: str = ""):
    """Horizontal bars of per-class IoU (%) from a results record."""
    import matplotlib.pyplot as plt

    names = list(record["iou"])
    vals = [100 * (record["iou"][n] or 0) for n in names]
    fig, ax = plt.subplots(figsize=(6, 0.22 * len(names) + 1))
    ax.barh(names, vals, color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel("IoU %")
    ax.set_xlim(0, 100)
    ax.set_title(title or f"{record['dataset']} {record['method']} mIoU {100 * (record['miou_all'] or 0):.1f}")
    fig.tight_layout()
    return fig
