"""SEAM weak supervision (notebook 05): CAM / PCM galleries and the threshold sweep."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .common import axis_off, class_handles, colorize, legend_below, to_rgb
from .inversion import OUTCOME_COLOURS, outcome_text


def seam_gallery(
    examples: Sequence[dict],
    palette: np.ndarray,
    class_names: Sequence[str] | None = None,
    title: str = "",
    threshold: float | None = None,
):
    """image | ground truth | CAM | PCM-refined CAM | pseudo-label, one row per example, the row named
    by the image-level label. The heat maps share a colour bar (normalised score, 0-1; the background
    score marked when given) and say how much of the image scores above the background score; under
    each pseudo-label, whether it found each labelled object (:func:`outcome_text`: found, missed, or
    moved onto an old object), in green, orange or red.

    Args:
        examples: from :func:`~incseg_lib.experiment.seam_examples` (``image``, ``mask``, ``cam``,
            ``pcm``, ``pseudo``, ``classes``, ``outcomes``); the heat maps are the maximum over the
            image's labelled classes of the normalised maps, in [0, 1].
        palette: colours of the dataset ids.
        threshold: the background score the pseudo-labels used (SEAM: 0.26).

    Raises:
        ValueError: no example.
    """
    import matplotlib.pyplot as plt

    if not examples:
        raise ValueError("no example to draw")
    heads = ["image", "ground truth", "CAM", "CAM + PCM", "pseudo-label\n(what the step trains on)"]
    fig, axes = plt.subplots(
        len(examples), 5, figsize=(10, 2.05 * len(examples) + 2.2), squeeze=False, layout="constrained"
    )
    heat = None
    for row, ex in zip(axes, examples):
        rgb = to_rgb(ex["image"])
        row[0].imshow(rgb)
        row[1].imshow(colorize(ex["mask"], palette))
        for ax, key in ((row[2], "cam"), (row[3], "pcm")):
            cell = np.asarray(ex[key], dtype=float)
            ax.imshow(rgb)
            heat = ax.imshow(cell, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if cell.max() <= 1e-6:
                note = "all 0: no activation"
            elif threshold is not None:
                note = f"{100 * (cell > threshold).mean():.0f}% of the image > {threshold:g}"
            else:
                note = f"peak {cell.max():.2f}"
            ax.set_xlabel(note, fontsize=8)
        row[4].imshow(colorize(ex["pseudo"], palette))
        outcomes = ex.get("outcomes") or []
        if outcomes:
            worst = max(outcomes, key=lambda o: ("found", "missed", "moved").index(o["outcome"]))
            text = "\n".join(outcome_text(o, class_names) for o in outcomes)
            row[4].set_xlabel(text, fontsize=8, color=OUTCOME_COLOURS[worst["outcome"]])
        for ax in row:
            axis_off(ax)
        row[0].set_ylabel("label:\n" + "\n".join(ex["classes"]), fontsize=8)
    for ax, h in zip(axes[0], heads):
        ax.set_title(h, fontsize=8)
    bar = fig.colorbar(heat, ax=axes[:, 2:4], location="bottom", shrink=0.9, aspect=25, pad=0.01)
    bar.set_label("class activation, normalised per image and class (0-1)", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    if threshold is not None:
        bar.ax.axvline(threshold, color="k", lw=1.5)
        bar.ax.text(
            threshold,
            1.15,
            f"background score {threshold:g}",
            transform=bar.ax.get_xaxis_transform(),
            ha="left",
            va="bottom",
            fontsize=8,
        )
    fig.suptitle(title or "What SEAM sees: class activations and the pseudo-labels they make", fontsize=10)
    if class_names is not None:
        masks = [m for ex in examples for m in (ex["mask"], ex["pseudo"])]
        legend_below(fig, class_handles(masks, palette, class_names), ncol=6, title="label colours")
    return fig


def threshold_sweep(
    sweep: Sequence[dict],
    chosen: float | None = None,
    title: str = "Pseudo-label quality against the background score, before and after PCM",
):
    """Pseudo-label mIoU (%) against the background score, before and after PCM (a line each).

    Args:
        sweep: rows ``{"source", "threshold", "miou"}`` (:meth:`~incseg_lib.seam.PseudoLabels.sweep`).
        chosen: the threshold used for training, drawn as a dotted line.

    Raises:
        ValueError: an empty sweep.
    """
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(list(sweep))
    if df.empty:
        raise ValueError("the threshold sweep is empty")
    fig, ax = plt.subplots(figsize=(5.2, 3.3))
    for source, part in df.groupby("source"):
        ax.plot(part["threshold"], part["miou"], marker="o", ms=3, label="CAM + PCM" if source == "pcm" else "CAM")
    if chosen is not None:
        ax.axvline(chosen, color="grey", ls=":", lw=1, label=f"used for training: {chosen:g}")
    ax.set_xlabel("background score (a pixel is background below it)")
    ax.set_ylabel("pseudo-label mIoU % (bg + new)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sweep_reading(sweep: Sequence[dict]) -> str:
    """What :func:`threshold_sweep`'s figure shows, from the same rows: at how many background scores
    the pseudo-labels after PCM beat CAM's, and each one's best; said plainly when PCM, which SEAM
    adds to spread each class's activation over its object, scores below CAM.

    Raises:
        ValueError: a sweep without both sources.
    """
    by = {}
    for row in sweep:
        by.setdefault(row["source"], {})[round(float(row["threshold"]), 4)] = float(row["miou"])
    if "pcm" not in by or "cam" not in by:
        raise ValueError("the sweep needs both sources, cam and pcm")
    common = sorted(set(by["pcm"]) & set(by["cam"]))
    above = sum(by["pcm"][t] > by["cam"][t] for t in common)
    best = {s: max(by[s].items(), key=lambda kv: kv[1]) for s in ("pcm", "cam")}
    line = (
        f"What this figure shows: after PCM the pseudo-labels score above CAM's at {above} of {len(common)} "
        f"background scores (best: CAM + PCM {best['pcm'][1]:.1f} at {best['pcm'][0]:g}, CAM "
        f"{best['cam'][1]:.1f} at {best['cam'][0]:g})."
    )
    if above * 2 < len(common):
        line += (
            " That is the opposite of what PCM is for (spreading each class's activation over its whole "
            "object): on these images its spread costs more than it adds, so the CAMs alone make the "
            "better labels."
        )
    return line


def seam_gallery_reading(examples: Sequence[dict], threshold: float | None = None) -> str:
    """What :func:`seam_gallery`'s figure shows, from the same maps: in how many images the CAM has no
    positive activation for the labelled class (its panel says "all 0") while the map after PCM
    does, and how much of those images the PCM map puts above the background score. Said plainly:
    there the pseudo-label comes from PCM's revision, not from any activation the classifier had."""
    empty, lit = [], []
    for ex in examples:
        cam, pcm = np.asarray(ex["cam"], float), np.asarray(ex["pcm"], float)
        if cam.max() <= 1e-6:
            empty.append(ex)
            if pcm.max() > 1e-6:
                lit.append(100 * float((pcm > (threshold or 0.0)).mean()))
    n = len(examples)
    if not empty:
        return f"What this figure shows: the CAM activates for the labelled class in all {n} images."
    line = (
        f"What this figure shows: in {len(empty)} of the {n} images the CAM has no positive activation "
        "for the labelled class (all 0)"
    )
    if lit:
        above = f"above the background score {threshold:g}" if threshold is not None else "above 0"
        line += (
            f", while after PCM {len(lit)} of them light{'s' if len(lit) == 1 else ''} up "
            f"({', '.join(f'{v:.0f} %' for v in lit)} of the image "
            f"{above}). There the pseudo-label is made by PCM's revision alone: the classifier itself never "
            "scored the class, so where PCM's affinities spread the map decides what the step learns."
        )
    else:
        line += ", and PCM cannot revise a map that is all 0: those images give no new-class pixels."
    return line
