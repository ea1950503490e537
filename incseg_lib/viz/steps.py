"""Incremental learning over steps (notebooks 02 and 06): predictions after every step, mIoU per
step, per-class heat maps, the comparison bars."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..results import display_name
from .common import agreement, class_legend, colorize, to_rgb


# ---------------------------------------------------------------------- incremental learning
def _step_title(step: int, added: Sequence[Sequence[str]] | None) -> str:
    """``step 0\n15 classes`` / ``step 3\n+ dark-ring`` (``+ 5 classes`` when several are added)."""
    if not added:
        return f"step {step}"
    names = list(added[step])
    if step == 0:
        return f"step 0\n{len(names)} classes"
    return f"step {step}\n+ {names[0]}" if len(names) == 1 else f"step {step}\n+ {len(names)} classes"


def predictions_over_steps(pred: dict, methods: Sequence[str] | None = None, title: str = ""):
    """One row per (image, method): image | ground truth | prediction after each step; each step's
    column names the class(es) it added, and a prediction that is background everywhere says so in
    the panel (it is the method forgetting, not a blank figure).

    Args:
        pred: the dict of :func:`incseg_lib.experiment.step_predictions` (``added`` optional).
    """
    import matplotlib.pyplot as plt

    methods = list(methods or pred["steps"])
    n_steps = len(next(iter(pred["steps"].values())))
    rows = [(i, m) for i in range(len(pred["images"])) for m in methods]
    fig, axes = plt.subplots(
        len(rows), n_steps + 2, figsize=(1.3 * (n_steps + 2), 1.3 * len(rows) + 0.6), squeeze=False
    )
    names = ["image", "ground truth"] + [_step_title(s, pred.get("added")) for s in range(n_steps)]
    for r, (i, m) in enumerate(rows):
        masks = [pred["truth"][i]] + [pred["steps"][m][s][i] for s in range(n_steps)]
        pics = [to_rgb(pred["images"][i])] + [colorize(x, pred["palette"]) for x in masks]
        for c, (ax, pic) in enumerate(zip(axes[r], pics)):
            ax.imshow(pic)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(names[c], fontsize=8)
            if c >= 2 and not np.asarray(masks[c - 1]).any():
                ax.text(0.5, 0.5, "all\nbackground", transform=ax.transAxes, ha="center", va="center",
                        color="white", fontsize=8)  # fmt: skip
        axes[r, 2].set_ylabel(display_name(m), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    shown = list(pred["truth"]) + [p for m in methods for step in pred["steps"][m] for p in step]
    class_legend(fig, shown, pred["palette"], pred.get("class_names"))
    return fig


def step_curves(frame, title: str = "mIoU of all seen classes after each step"):
    """Lines of mIoU (%) per step, one per run (rows of :func:`results.miou_by_step`, named by their
    display labels), on a y axis from 0 to 100."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for method, row in frame.iterrows():
        row = row.dropna()
        ax.plot(row.index, row.values, marker="o", ms=4, label=method)
    ax.set_xlabel("step (0: the base classes)")
    ax.set_ylabel("mIoU (%), all seen classes")
    ax.set_xticks(list(frame.columns))
    ax.set_ylim(0, 100)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=2 if len(frame) > 4 else 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


#: How each logged loss term is shown (the terms :meth:`~incseg_lib.methods.Method.loss_fn` and
#: :func:`~incseg_lib.engine.fit` log; anything else under its own name).
TERM_LABELS = {
    "loss": "total",
    "principal": "classification (final head)",
    "aux": "classification (auxiliary heads)",
    "kd": "distillation",
    "ukd": "unbiased distillation",
    "bce_kd": "BCE distillation",
    "feature": "feature distillation",
    "pod": "Local POD",
    "prototypes": "prototype matching",
    "sparsity": "sparsification",
    "attraction": "attraction",
    "repulsion": "repulsion",
    "penalty": "parameter penalty",
}


def training_curves(curves: dict, title: str = ""):
    """Small multiples of what each run trained on (:func:`results.training_curves`): top row, every
    loss term per epoch through the steps (log scale; dotted lines between steps; ``task``, the
    total without a penalty, left out); bottom row, old / new / all mIoU (%) after each step.
    One column per run, at most four per row of panels."""
    import math

    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    names = list(curves)
    if not names:
        raise ValueError("no incremental records to draw training curves from")
    cols = min(4, len(names))
    blocks = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(
        2 * blocks,
        cols,
        figsize=(3.4 * cols, 4.6 * blocks),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 2] * blocks},
        layout="constrained",
    )
    terms = sorted({t for c in curves.values() for t in c["terms"] if t != "task"}, key=lambda t: (t != "loss", t))
    colour = {t: ("black" if t == "loss" else plt.cm.tab10(i % 10)) for i, t in enumerate(terms)}
    for k, name in enumerate(names):
        c = curves[name]
        top, bottom = axes[2 * (k // cols), k % cols], axes[2 * (k // cols) + 1, k % cols]
        for t in terms:
            values = c["terms"].get(t)
            if values and any(v == v and v > 0 for v in values):
                top.plot(c["epochs"], values, color=colour[t], lw=2 if t == "loss" else 1, label=TERM_LABELS.get(t, t))
        top.set_yscale("log")
        shown = [v for t in terms for v in (c["terms"].get(t) or []) if v == v and v > 0]
        wide = bool(shown) and max(shown) / min(shown) > 100  # over two decades: one tick per decade
        top.yaxis.set_major_locator(LogLocator(subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
        top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.5, 1, 2: not 5x10^-1
        top.yaxis.set_minor_formatter(NullFormatter())
        for i in range(1, len(c["steps"])):
            if c["steps"][i] != c["steps"][i - 1]:
                top.axvline(c["epochs"][i] - 0.5, color="grey", ls=":", lw=0.8)
        top.set_title(name, fontsize=9)
        top.set_xlabel("epoch (through the steps)", fontsize=8)
        top.set_ylabel("training loss per epoch", fontsize=8)
        for part, style in (("old", "s-"), ("new", "^-"), ("all", "o-")):
            bottom.plot(c["step_ids"], c["miou"][part], style, ms=4, label=PART_LABELS[part])
        bottom.set_ylim(0, 100)
        bottom.set_xticks(c["step_ids"])
        bottom.set_xlabel("after step", fontsize=8)
        bottom.set_ylabel("mIoU (%)", fontsize=8)
        for ax in (top, bottom):
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
    for k in range(len(names), blocks * cols):
        axes[2 * (k // cols), k % cols].axis("off")
        axes[2 * (k // cols) + 1, k % cols].axis("off")
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.suptitle(title or "What each method trained on: its loss terms per epoch and mIoU after each step", fontsize=10)
    ncol = max(2, min(5, cols + 1, len(handles)))
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)
    return fig


def _cell_text(v: float, decimals: int = 0) -> str:
    """A heat map cell's number: ``decimals`` places, NaN empty, never ``-0``."""
    if v != v:
        return ""
    text = f"{v:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def iou_heatmap(
    frame,
    title: str = "per-class IoU % at the last step",
    split_at: str | None = None,
    cmap: str = "viridis",
    vmin: float = 0,
    vmax: float = 100,
    label: str = "IoU (%)",
    xlabel: str = "class",
    ylabel: str = "method",
):
    """Seaborn heatmap of a methods x classes table in % (:func:`results.class_iou`, :func:`results.forgetting`).

    Each cell carries its value rounded to a whole number (``0``, never ``-0``; NaN left empty).
    When values fall outside ``[vmin, vmax]`` the colours saturate there and the colour bar's
    label says so; the numbers stay exact.

    Args:
        split_at: a class name; a vertical line is drawn before it (old | new classes).
        cmap, vmin, vmax, label: colour map, its range and the colour bar's label.
        xlabel, ylabel: the axes' labels.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    values = frame.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < vmin or finite.max() > vmax):
        cap = f"±{vmax:g}" if vmin == -vmax else f"{vmin:g} and {vmax:g}"
        label = f"{label}\ncolour scale capped at {cap} (numbers exact)"
    fig, ax = plt.subplots(figsize=(0.5 * len(frame.columns) + 3.2, 0.42 * len(frame) + 2.0))
    sns.heatmap(
        frame,
        annot=np.array([[_cell_text(v) for v in row] for row in values], dtype=object),
        fmt="",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        cbar_kws={"label": label},
        annot_kws={"fontsize": 8},
        ax=ax,
    )
    if split_at is not None and split_at in frame.columns:
        ax.axvline(list(frame.columns).index(split_at), color="white", lw=2)
    ax.tick_params(labelsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


PART_LABELS = {"old": "old classes (step 0)", "new": "new classes", "all": "all classes"}


def comparison_bars(table, title: str = "mIoU after the last step, per task"):
    """Grouped bars (old / new / all mIoU, %) per method, one panel per (dataset, task, setting).

    Each panel holds only the methods that ran on its task (a method with no value there has no
    slot, so nothing reads as a zero); the y axis runs from 0 to 100 with a tick every 20; one
    legend for the figure.

    Args:
        table: :func:`incseg_lib.results.incremental_table` (rows: display labels).

    Raises:
        ValueError: the table holds no mIoU column.
    """
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(c[:3] for c in table.columns if c[3] in PART_LABELS))
    if not groups:
        raise ValueError("the table has no old/new/all mIoU column")
    ran = {
        g: [m for m in table.index if table.loc[m, [c for c in table.columns if c[:3] == g]].notna().any()]
        for g in groups
    }
    ncols = min(2, len(groups))
    nrows = (len(groups) + ncols - 1) // ncols
    slots = [len(ran[g]) for g in groups]
    ratios = [n + 2 for n in slots] if nrows == 1 else [1] * ncols  # one row: bars equally wide in every panel
    width = sum(max(4.0, 0.55 * n + 1.2) for n in slots) if nrows == 1 else ncols * (0.55 * max(slots) + 1.2)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width, 4.2 * nrows + 0.8),
        squeeze=False,
        layout="constrained",
        gridspec_kw={"width_ratios": ratios},
    )
    bar = 0.27
    for ax in axes.ravel()[len(groups) :]:
        ax.axis("off")
    for ax, g in zip(axes.ravel(), groups):
        methods = ran[g]
        x = np.arange(len(methods))
        for k, part in enumerate(PART_LABELS):
            if g + (part,) in table.columns:
                vals = table.loc[methods, g + (part,)].to_numpy(dtype=float)
                ax.bar(x + (k - 1) * bar, np.nan_to_num(vals), bar, color=f"C{k}", label=PART_LABELS[part])
        ax.set_xticks(x, methods, rotation=35, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylim(0, 100)
        ax.set_yticks(range(0, 101, 20))
        ax.set_yticks(range(0, 101, 10), minor=True)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.set_axisbelow(True)
        ax.set_title(" ".join(g), fontsize=9)
        ax.set_ylabel("mIoU (%)")
        ax.set_xlabel("method")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def training_reading(curves: dict) -> str:
    """What :func:`training_curves`'s figure shows, from the same data: whether every step's total
    loss came down from its first epoch to its last, naming the steps where it did not (a rising
    total within a step is a schedule or balance problem worth a look, not noise to scroll past)."""
    rising = []
    for name, c in curves.items():
        total = c["terms"].get("loss", [])
        for step in c["step_ids"]:
            values = [v for v, s in zip(total, c["steps"]) if s == step and v == v]
            if len(values) > 1 and values[-1] >= values[0]:
                rising.append(f"{name} step {step} ({values[0]:.3g} to {values[-1]:.3g})")
    if not rising:
        return "What this figure shows: within every step of every method the total loss came down."
    return (
        "What this figure shows: the total loss did not come down within "
        + ", ".join(rising)
        + "; the other steps' did. A step whose loss does not decrease trained at a rate or a balance of "
        "terms that does not suit it: read its terms above."
    )


def _these(n: int) -> str:
    return "this image" if n == 1 else f"these {n} images"


def steps_reading(pred: dict) -> str:
    """What :func:`predictions_over_steps`'s figure shows, from the same masks: for each method, the
    share of the shown pixels of step 0's classes (background left out) that it labels as the ground
    truth does after step 0 and after the last step, and which methods lose most of them.

    Args:
        pred: the dict of :func:`incseg_lib.experiment.step_predictions` (with ``added`` and
            ``class_names``: step 0's classes are ``added[0]``).
    """
    names = list(pred["class_names"])
    old = [names.index(n) for n in pred["added"][0] if n in names]
    if not np.isin(np.concatenate([np.asarray(t).ravel() for t in pred["truth"]]), old).any():
        return "What this figure shows: these images hold no pixel of step 0's classes (only new ones)."
    kept = {
        m: tuple(agreement(per_step[s], pred["truth"], old) for s in (0, -1)) for m, per_step in pred["steps"].items()
    }
    n_steps = len(next(iter(pred["steps"].values()))) - 1
    shown = ", ".join(f"{display_name(m)} {100 * a:.0f} % to {100 * b:.0f} %" for m, (a, b) in kept.items())
    line = (
        f"What this figure shows: pixels of step 0's classes on {_these(len(pred['truth']))} labelled as the "
        f"ground truth does, after step 0 and after step {n_steps}: {shown}."
    )
    lost = [display_name(m) for m, (a, b) in kept.items() if a > 0 and b < a / 2]
    if lost:
        line += f" {', '.join(lost)} {'loses' if len(lost) == 1 else 'lose'} most of them: background shift at work."
    return line


def step_curves_reading(frame) -> str:
    """What :func:`step_curves`'s figure shows, from the same table: each run's mIoU of all seen classes
    at its first and last step, best first, and the one step where a run lost most at once."""
    if frame is None or not len(frame):
        return "What this figure shows: no run to compare."
    ends, worst = [], (0.0, "", 0)
    for method, row in frame.iterrows():
        row = row.dropna()
        if not len(row):
            continue
        ends.append((float(row.iloc[-1]), f"{method} {row.iloc[0]:.0f} to {row.iloc[-1]:.0f}"))
        drops = -row.diff().dropna()
        if len(drops) and float(drops.max()) > worst[0]:
            worst = (float(drops.max()), str(method), drops.idxmax())
    first, last = frame.columns[0], frame.columns[-1]
    line = f"What this figure shows: mIoU of all seen classes from step {first} to step {last}: "
    line += ", ".join(text for _, text in sorted(ends, key=lambda e: -e[0])) + "."
    if worst[1]:
        line += f" The largest loss in one step: {worst[1]} at step {worst[2]} ({worst[0]:.0f} points)."
    return line


def comparison_reading(table) -> str:
    """What :func:`comparison_bars`'s figure shows, from the same table (:func:`incseg_lib.results.
    incremental_table`): per task, which run ends highest on all, old and hIoU, and how close it
    comes to Joint (:func:`incseg_lib.results.comparison_lines`)."""
    from ..results import comparison_lines

    lines = comparison_lines(table)
    return "What this figure shows: " + (" ".join(lines) if lines else "no incremental run to compare.")


def heatmap_reading(frame, what: str = "IoU") -> str:
    """What :func:`iou_heatmap`'s figure shows, from the same table (rows runs, columns classes,
    values in points): per row, its mean and the class with the lowest value (``what="IoU"``) or,
    for a forgetting map (``what="forgetting"``), the class it forgot most."""
    import pandas as pd

    if frame is None or not len(frame):
        return "What this figure shows: nothing to compare."
    parts = []
    for name, row in frame.iterrows():
        row = pd.to_numeric(row, errors="coerce").dropna()
        if not len(row):
            continue
        if what == "forgetting":
            parts.append(f"{name} forgot {row.mean():.0f} points on average, most on {row.idxmax()} ({row.max():.0f})")
        else:
            parts.append(f"{name} {row.mean():.0f} on average, lowest on {row.idxmin()} ({row.min():.0f})")
    return "What this figure shows: " + "; ".join(parts) + "."
