"""Masks, legends, sample grids, galleries, loss curves and per-class bars: what every notebook draws."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..data.common import VOID_COLOUR
from ..data.transforms import denormalize
from ..engine import predict
from ..results import Record, class_order, display_labels

IGNORE_COLOUR = VOID_COLOUR  # VOC's cream for void


def colorize(mask, palette: np.ndarray) -> np.ndarray:
    """Class-id mask ``(H, W)`` (any int type) -> ``(H, W, 3)`` uint8 RGB; 255 drawn cream."""
    m = np.asarray(mask).astype(np.int64)
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(palette)] = palette
    lut[255] = IGNORE_COLOUR
    return lut[np.clip(m, 0, 255)]


def class_legend(fig, masks, palette: np.ndarray, class_names: Sequence[str] | None, *, ncol: int = 6) -> None:
    """Add a legend of coloured patches below ``fig`` for every class id found in ``masks``.

    Args:
        masks: iterable of class-id arrays (ground truths and predictions shown in the figure);
            255 (void) is listed as ``void`` when present.
        class_names: names indexed by class id; None draws no legend.
    """
    if class_names is None:
        return
    handles = class_handles(masks, palette, class_names)
    if handles:
        rows = (len(handles) + ncol - 1) // ncol
        fig.subplots_adjust(bottom=min(0.4, 0.03 + 0.3 * rows / max(fig.get_size_inches()[1], 1)))
        fig.legend(handles=handles, loc="lower center", ncol=min(ncol, len(handles)), fontsize=8, frameon=False)


def class_handles(masks, palette: np.ndarray, class_names: Sequence[str]) -> list:
    """A coloured patch per class id found in ``masks`` (``void`` for 255), labelled by its name."""
    from matplotlib.patches import Patch

    present = sorted(set().union(*(np.unique(np.asarray(m)).tolist() for m in masks)))
    handles = [
        Patch(facecolor=np.asarray(palette[c]) / 255, edgecolor="k", lw=0.3, label=class_names[c])
        for c in present
        if c < len(class_names) and c < len(palette)
    ]
    if 255 in present:
        handles.append(Patch(facecolor=np.asarray(IGNORE_COLOUR) / 255, edgecolor="k", lw=0.3, label="void"))
    return handles


def legend_below(fig, handles: list, ncol: int = 6, title: str | None = None) -> None:
    """A figure-level legend under the panels of a constrained-layout figure (8 pt, no frame)."""
    if handles:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=min(ncol, len(handles)),
            fontsize=8,
            title=title,
            title_fontsize=8,
            frameon=False,
        )


def _names_in(mask, class_names: Sequence[str] | None, width: int = 30) -> str:
    """The names of the classes in ``mask`` (background and void left out), wrapped to ``width``."""
    import textwrap

    if class_names is None:
        return ""
    ids = [int(v) for v in np.unique(np.asarray(mask)) if 0 < v < len(class_names)]
    text = ", ".join(class_names[v] for v in ids)
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or "background only"


def to_rgb(image) -> np.ndarray:
    """An image as ``(H, W, 3)`` uint8 RGB: a normalised float tensor ``(3, H, W)`` is denormalised."""
    t = torch.as_tensor(image)
    if t.dtype.is_floating_point:
        t = denormalize(t)
        return (t.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
    return t.permute(1, 2, 0).cpu().numpy()


def agreement(preds, truths, classes=None) -> float:
    """The share of pixels a prediction labels as the ground truth does, over several images:
    ``preds``, ``truths`` are sequences of ``(H, W)`` class-id masks (the same ids; 255 in a truth is
    void and left out); ``classes`` restricts the count to the truth's pixels of those ids (step 0's
    classes, for what a model kept). NaN when no pixel counts."""
    t = np.concatenate([np.asarray(x).ravel() for x in truths])
    p = np.concatenate([np.asarray(x).ravel() for x in preds])
    mask = np.isin(t, list(classes)) if classes is not None else t != 255
    return float((p[mask] == t[mask]).mean()) if mask.any() else float("nan")


def show_samples(
    dataset,
    indices: Sequence[int],
    palette: np.ndarray,
    class_names: Sequence[str] | None = None,
    cols: int = 4,
    title: str = "training images (left) and their masks (right), titled with the classes they hold",
):
    """Grid of image | mask pairs from ``dataset`` (items ``(image, mask)``), each pair titled with the
    classes its mask holds, and a legend of the mask colours. Returns the figure."""
    import matplotlib.pyplot as plt

    indices = list(indices)
    rows = (len(indices) + cols - 1) // cols
    fig = plt.figure(figsize=(3.1 * cols, 1.85 * rows + 1.0), layout="constrained")
    pairs = np.atleast_1d(fig.subfigures(rows, cols, wspace=0.04, hspace=0.02)).ravel()
    shown = []
    for k, sub in enumerate(pairs):
        axes = sub.subplots(1, 2)
        for ax in axes:
            ax.axis("off")
        if k >= len(indices):
            continue
        image, mask = dataset[indices[k]]
        shown.append(np.asarray(mask))
        axes[0].imshow(to_rgb(image))
        axes[1].imshow(colorize(mask, palette))
        if class_names is not None:
            sub.suptitle(_names_in(mask, class_names), fontsize=8)
    fig.suptitle(title, fontsize=10)
    if class_names is not None:
        legend_below(fig, class_handles(shown, palette, class_names), ncol=7)
    return fig


def predict_images(model, dataset, indices: Sequence[int], device="cpu") -> list[np.ndarray]:
    """``model``'s ``(H, W)`` class-id prediction of each of ``indices`` of ``dataset`` (items
    ``(image, mask)``): what :func:`gallery` draws and :func:`gallery_reading` counts, made once."""
    return [predict(model, dataset[i][0][None], device)[0].numpy() for i in indices]


def gallery(
    model,
    dataset,
    indices: Sequence[int],
    palette: np.ndarray,
    device="cpu",
    title: str = "",
    class_names: Sequence[str] | None = None,
    predictions: Sequence[np.ndarray] | None = None,
):
    """image | ground truth | prediction rows for ``indices`` of an evaluation dataset, with a class legend.

    Each row is labelled with the classes of its ground truth; ``class_names`` default to
    ``dataset.info.class_names`` when the dataset has them. ``predictions``: those of
    :func:`predict_images` when the caller made them already (``model`` is then not run).
    """
    import matplotlib.pyplot as plt

    info = getattr(dataset, "info", None)
    class_names = class_names or (info.class_names if info is not None else None)
    indices = list(indices)
    fig, axes = plt.subplots(
        len(indices), 3, figsize=(7.5, 2.2 * len(indices) + 1.2), squeeze=False, layout="constrained"
    )
    if predictions is None:
        predictions = predict_images(model, dataset, indices, device)
    shown = []
    for row, i, pred in zip(axes, indices, predictions):
        image, mask = dataset[i]
        shown += [np.asarray(mask), np.asarray(pred)]
        for ax, pic in zip(row, (to_rgb(image), colorize(mask, palette), colorize(pred, palette))):
            ax.imshow(pic)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"image {i}\n{_names_in(mask, class_names, 22)}", fontsize=8)
    for ax, name in zip(axes[0], ("image", "ground truth", "prediction")):
        ax.set_title(name, fontsize=9)
    fig.suptitle(title or "validation images: ground truth and prediction", fontsize=10)
    if class_names is not None:
        legend_below(fig, class_handles(shown, palette, class_names), ncol=6)
    return fig


def loss_curves(histories: dict[str, dict], title: str = "training loss per epoch, one line per configuration"):
    """One line per run: mean training loss per epoch. ``histories``: label -> fit() history."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, h in histories.items():
        loss = h.get("loss") or []
        ax.plot(range(1, len(loss) + 1), loss, marker="o", ms=3, label=label)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (principal + auxiliary)")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def iou_bars(record: Mapping, title: str = ""):
    """Horizontal bars of per-class IoU (%) from a results record, classes in id order.

    The default title names the model (method, backbone, learning rate and batch size when the
    record has them) and its mIoU; a class without an IoU (absent from labels and prediction) has
    no bar and says ``n/a``.
    """
    import matplotlib.pyplot as plt

    record = Record.from_dict(record)
    names = class_order(record.dataset, record.iou)
    vals = [record.iou[n] for n in names]
    fig, ax = plt.subplots(figsize=(6, 0.24 * len(names) + 1.3))
    ax.barh(names, [100 * v if v is not None else 0 for v in vals], color="tab:blue")
    for k, v in enumerate(vals):
        if v is None:
            ax.text(1, k, "n/a", va="center", fontsize=8, color="grey")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("IoU (%)")
    ax.set_ylabel("class")
    ax.set_xlim(0, 100)
    ax.grid(axis="x", alpha=0.3)
    if not title:
        model = ", ".join(
            str(x)
            for x in (
                display_labels([record])[0],
                record.backbone,
                f"lr {record['lr']}" if record.get("lr") is not None else None,
                f"batch {record['batch_size']}" if record.get("batch_size") is not None else None,
            )
            if x
        )
        miou = record.miou_all
        miou_text = f"{100 * miou:.1f}%" if miou is not None else "n/a"
        title = f"{record.get('dataset', '')} {model}: IoU per class (mIoU {miou_text})"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def axis_off(ax) -> None:
    """No ticks on ``ax`` (an image panel), its frame kept."""
    ax.set_xticks([])
    ax.set_yticks([])


def show(fig, reading: str = "") -> None:
    """Show ``fig`` now, then print its ``reading`` (what the figure shows, computed from its data) under
    it, so the line follows its picture in the notebook and in the report. The figure is closed
    afterwards (Jupyter would otherwise draw it a second time at the end of the cell)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)
    if reading:
        print(reading)


def loss_reading(histories: dict[str, dict]) -> str:
    """What :func:`loss_curves`'s figure shows, from the same histories: each run's loss at its first
    and last epoch, lowest last first; a run whose loss ended above where it started is named."""
    ends = [(h["loss"][-1], label, h["loss"][0]) for label, h in histories.items() if h.get("loss")]
    if not ends:
        return "What this figure shows: no epoch trained (every run was reused from its checkpoint)."
    line = "What this figure shows: loss at the first and the last epoch, "
    line += ", ".join(f"{label} {a:.2f} to {b:.2f}" for b, label, a in sorted(ends)) + "."
    rose = [label for b, label, a in ends if b > a]
    if rose:
        line += f" {', '.join(rose)} ended above where {'it' if len(rose) == 1 else 'they'} started: not training."
    return line


def iou_reading(record: Mapping) -> str:
    """What :func:`iou_bars`'s figure shows, from the same record: the mIoU, and the classes with the
    highest and the lowest IoU."""
    record = Record.from_dict(record)
    vals = {n: 100 * v for n, v in record.iou.items() if v is not None}
    if not vals:
        return "What this figure shows: no class has an IoU."
    ranked = sorted(vals, key=vals.get)
    low = ", ".join(f"{n} {vals[n]:.0f}" for n in ranked[:3])
    high = ", ".join(f"{n} {vals[n]:.0f}" for n in ranked[::-1][:3])
    miou = record.miou_all
    head = f"mIoU {100 * miou:.1f}; " if miou is not None else ""
    return f"What this figure shows: {head}highest IoU {high}; lowest {low}."


def gallery_reading(dataset, indices: Sequence[int], predictions: Sequence[np.ndarray]) -> str:
    """What :func:`gallery`'s figure shows, from the same predictions (:func:`predict_images`): for
    each image, the share of its labelled pixels the prediction gets right and the classes of its
    ground truth the prediction misses entirely."""
    names = getattr(getattr(dataset, "info", None), "class_names", None)
    parts = []
    for i, pred in zip(indices, predictions):
        truth, pred = np.asarray(dataset[i][1]), np.asarray(pred)
        missed = [int(c) for c in np.unique(truth) if c not in (0, 255) and not (pred == c).any()]
        text = f"image {i} {100 * agreement([pred], [truth]):.0f} %"
        if missed:
            text += " (misses " + ", ".join(names[c] if names else str(c) for c in missed) + ")"
        parts.append(text)
    return "What this figure shows: pixels labelled as the ground truth does, " + ", ".join(parts) + "."
