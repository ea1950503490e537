"""Exemplar memory (notebook 03): mIoU against memory size and the stored exemplars."""

from __future__ import annotations

import numpy as np

from .common import class_handles, colorize, legend_below


def memory_curves(frame, title: str = ""):
    """mIoU (old / new / all, %) after the last step against the memory size.

    One panel per part, sharing one y axis from 0 to 100; the x axis has one slot per memory size
    that was run (exemplars per class, evenly spaced, not to scale); one line per method trained
    with memory; MiB without memory is a dashed reference line; one legend for the figure.

    Args:
        frame: :func:`results.miou_by_memory` (columns ``method``, ``exemplars``, ``part``,
            ``mIoU %``; exemplars 0 is the reference without memory).
        title: what the figure shows, e.g. the task and setting; the default names the comparison.

    Raises:
        ValueError: ``frame`` holds no run with memory.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    with_memory = frame[frame["exemplars"] > 0] if len(frame) else frame
    if not len(with_memory):
        raise ValueError("no run with an exemplar memory to draw")
    sizes = sorted(int(x) for x in with_memory["exemplars"].unique())
    slot = {size: k for k, size in enumerate(sizes)}
    methods = list(dict.fromkeys(with_memory["method"]))
    colours = {m: f"C{k}" for k, m in enumerate(methods)}
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), sharey=True, layout="constrained")
    refs = set()
    for ax, part in zip(axes, ("old", "new", "all")):
        sub = frame[frame["part"] == part]
        for method in methods:
            g = sub[(sub["method"] == method) & (sub["exemplars"] > 0)].sort_values("exemplars")
            ax.plot([slot[int(x)] for x in g["exemplars"]], g["mIoU %"], marker="o", ms=5, color=colours[method])
            for x, y in zip(g["exemplars"], g["mIoU %"]):
                ax.annotate(
                    f"{y:.1f}",
                    (slot[int(x)], y),
                    textcoords="offset points",
                    xytext=(0, 6),
                    fontsize=8,
                    ha="center",
                    color=colours[method],
                )
        for k, (method, g) in enumerate(sub[sub["exemplars"] == 0].groupby("method", sort=False)):
            refs.add(method)
            y = float(g["mIoU %"].iloc[-1])
            ax.axhline(y, color="k", ls=("--", ":", "-.")[k % 3], lw=1)
            ax.annotate(
                f"{y:.1f}", (len(sizes) - 0.5, y), textcoords="offset points", xytext=(0, 3), fontsize=8, ha="right"
            )
        ax.set_xticks(range(len(sizes)), [str(x) for x in sizes])
        ax.set_xlim(-0.5, len(sizes) - 0.5)
        ax.set_xlabel("exemplars per class")
        ax.set_ylim(0, 100)
        ax.set_yticks(range(0, 101, 20))
        ax.set_title(f"{part} classes", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mIoU (%) after the last step")
    handles = [Line2D([], [], color=colours[m], marker="o", label=m) for m in methods]
    handles += [
        Line2D([], [], color="k", ls=("--", ":", "-.")[k % 3], lw=1, label=f"{m}, no memory")
        for k, m in enumerate(sorted(refs))
    ]
    legend_below(fig, handles, ncol=4)
    name = "mIoU after the last step against the memory size"
    fig.suptitle(f"{title}: {name}" if title else name, fontsize=10)
    return fig


def _greyed_overlay(image: np.ndarray, mask: np.ndarray, palette: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """``image`` in dimmed grey with the classes of ``mask`` (ids > 0; 0 and 255 left out) painted in
    their colours at ``alpha`` and outlined in white: the image's own colours cannot be mistaken
    for the mask's, and a grey class colour still stands out."""
    grey = np.repeat(image.astype(np.float32).mean(-1, keepdims=True), 3, -1)
    labelled = (mask != 0) & (mask != 255)
    colour = colorize(np.where(labelled, mask, 0), palette).astype(np.float32)
    out = np.where(labelled[..., None], (1 - alpha) * grey + alpha * colour, 0.55 * grey)
    ids = np.where(labelled, mask, 0)
    edge = np.zeros_like(labelled)
    edge[1:] |= ids[1:] != ids[:-1]
    edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    out[edge & labelled] = 255
    return out.astype(np.uint8)


def exemplar_gallery(memory, dataset, per_class: int = 5, title: str = "", max_width: float = 14.0):
    """Every class of an exemplar memory with its stored images, each shown in grey with the ground
    truth it keeps painted over it in the class colours (legend below).

    Classes sit in blocks of up to ``per_class`` images, several blocks a row (the figure at most
    ``max_width`` inches wide); each block is titled with its class, and with how many images the
    memory holds for it when that differs between classes or is more than ``per_class`` (the
    figure's title gives the count per class).

    Args:
        memory: an :class:`~incseg_lib.exemplars.ExemplarMemory`.
        dataset: the unfiltered training dataset (class ids) the memory indexes.
        per_class: images shown per class.
        title: what the memory is (task, method, size); the counts are added.

    Raises:
        ValueError: the memory is empty.
    """
    import matplotlib.pyplot as plt

    per = sorted(memory.per_class().items())
    if not per:
        raise ValueError("the exemplar memory is empty")
    names, palette = dataset.info.class_names, dataset.info.display_palette
    counts = sorted({len(v) for _, v in per})
    shown = max(1, min(per_class, counts[-1]))
    cell = 0.85 if shown > 2 else 1.1
    block = max(shown * cell, 1.6)  # room for the class name above a block of one or two images
    blocks = max(1, min(len(per), int(max_width // (block + 0.15))))
    rows = (len(per) + blocks - 1) // blocks
    fig = plt.figure(figsize=(blocks * (block + 0.15), (cell + 0.3) * rows + 1.3), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(rows, blocks, wspace=0.03, hspace=0.01)).ravel()
    masks = []
    for sub, (c, items) in zip(subs, per):
        axes = np.atleast_1d(sub.subplots(1, shown))
        for k, ax in enumerate(axes):
            ax.axis("off")
            if k >= len(items):
                continue
            e = items[k]
            mask = np.asarray(dataset.read_mask(e.index))
            kept = np.where(np.isin(mask, e.classes) & (mask != 255), mask, 0)  # the labels it keeps
            masks.append(kept)
            ax.imshow(_greyed_overlay(dataset.read_image(e.index).permute(1, 2, 0).numpy(), kept, palette))
        count = f": {len(items)} stored" if len(counts) > 1 or len(items) > shown else ""
        sub.suptitle(names[c] + count + (f", {shown} shown" if len(items) > shown else ""), fontsize=8)
    for sub in subs[len(per) :]:
        sub.subplots(1, 1).axis("off")
    each = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    what = f"{len(memory)} images in memory, {each} per class for {len(per)} classes"
    fig.suptitle(f"{title}: {what}" if title else f"exemplar memory: {what}", fontsize=10)
    handles = [h for h in class_handles(masks, palette, names) if h.get_label() != names[0]]  # 0 is not painted
    legend_below(fig, handles, ncol=8, title="ground truth kept with the exemplars (unlabelled pixels dimmed)")
    return fig


def memory_reading(frame) -> str:
    """What :func:`memory_curves`'s figure shows, from the same rows: per method with memory, its
    old-class mIoU at the smallest and the largest memory against the run without memory, and
    whether more memory kept more of the old classes (said plainly when it did not)."""
    old = frame[frame["part"] == "old"] if len(frame) else frame
    refs = old[old["exemplars"] == 0]
    ref = f" (without memory: {', '.join(f'{m} {v:.1f}' for m, v in zip(refs['method'], refs['mIoU %']))})"
    parts, fewer = [], []
    for method, g in old[old["exemplars"] > 0].groupby("method", sort=False):
        g = g.sort_values("exemplars")
        lo, hi = g.iloc[0], g.iloc[-1]
        parts.append(f"{method} {lo['mIoU %']:.1f} with {int(lo['exemplars'])}/class to {hi['mIoU %']:.1f} with "
                     f"{int(hi['exemplars'])}/class")  # fmt: skip
        if len(g) > 1 and hi["mIoU %"] < lo["mIoU %"]:
            fewer.append(str(method))
    if not parts:
        return "What this figure shows: no run with memory."
    line = "What this figure shows: old-class mIoU " + "; ".join(parts) + (ref if len(refs) else "") + "."
    if fewer:
        line += f" {', '.join(fewer)} kept less with the larger memory: here more stored images did not help."
    return line
