"""DeepInversion (notebook 04): synthetic galleries, how an image emerges, the inversion losses,
transfer checks, scales and object sizes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .common import axis_off, class_handles, class_legend, colorize, legend_below


def synthetic_gallery(data: dict, title: str = ""):
    """What the old model dreams: one row per synthetic image, each old class in turn, the target
    class named on the row. Columns: a real training image of the class (the class outlined), the
    synthetic image asked to show it, the old model's pseudo-label of it (what replay trains on;
    cream: pixels it is unsure of), and, with a transfer check, an independently trained model's
    prediction, with the check's verdict under it. A legend names every colour of the label panels.

    Args:
        data: :func:`incseg_lib.experiment.synthetic_examples` (``rows``, ``class_names``,
            ``palette``, ``checker``).

    Raises:
        ValueError: no row to draw.
    """
    import textwrap

    import matplotlib.pyplot as plt

    rows = data["rows"]
    if not rows:
        raise ValueError("the synthetic memory is empty")
    names, palette = data["class_names"], data["palette"]
    checked = any(r.get("check") is not None for r in rows)
    heads = [
        "real training image\n(the class outlined)",
        "synthetic image",
        "old model's pseudo-label\n(the replay target)",
    ]
    if checked:
        heads.append(textwrap.fill(f"prediction of the {data.get('checker') or 'independent model'}", 26))
    size = (1.9 * len(heads) + 0.9, 1.75 * len(rows) + 1.6)
    fig, axes = plt.subplots(len(rows), len(heads), figsize=size, squeeze=False, layout="constrained")
    shown = []
    for row, r in zip(axes, rows):
        if r.get("real") is not None:
            row[0].imshow(r["real"])
            if r.get("real_mask") is not None and np.asarray(r["real_mask"]).any():
                row[0].contour(np.asarray(r["real_mask"], float), levels=[0.5], colors="white", linewidths=2.2)
                row[0].contour(np.asarray(r["real_mask"], float), levels=[0.5], colors="black", linewidths=0.8)
        else:
            row[0].text(0.5, 0.5, "no real image\nof this class", ha="center", va="center", fontsize=8)
        row[1].imshow(r["synthetic"])
        row[2].imshow(colorize(r["pseudo"], palette))
        shown.append(r["pseudo"])
        if checked:
            row[3].imshow(colorize(r["check"], palette))
            shown.append(r["check"])
            ok = bool(r.get("recognised"))
            row[3].set_xlabel(transfer_verdict(r["check"], r["class_id"], names, ok), fontsize=8,
                              color="tab:green" if ok else "tab:red")  # fmt: skip
        for ax in row:
            axis_off(ax)
        row[0].set_ylabel(f"target:\n{names[r['class_id']]}", fontsize=9)
    for ax, h in zip(axes[0], heads):
        ax.set_title(h, fontsize=8)
    fig.suptitle(
        title or "Synthetic images of every old class beside a real one, and what models see in them", fontsize=10
    )
    legend_below(fig, class_handles(shown, palette, names), ncol=6, title="label colours (void: unsure pixels)")
    return fig


def _share(v: float) -> str:
    """A share of the image in words a reader checks against the panel: ``0.8 %``, ``12 %``."""
    pct = 100 * v
    return f"{pct:.1f} %" if 0 < pct < 1 else f"{pct:.0f} %"


def transfer_verdict(check, class_id: int, class_names: Sequence[str], recognised: bool) -> str:
    """The transfer check's verdict under one prediction, in what was measured: the share of the image
    the target covers and, when it is not recognised, the class the model sees most instead
    (``recognised: star on 12 % of the image``; ``not recognised: star 0.8 %,\ncross 20 %``).
    The rule itself is :func:`~incseg_lib.inversion.target_recognised`."""
    pred = np.asarray(check).astype(np.int64)
    fg = pred[(pred != 0) & (pred != 255)]
    target = class_names[class_id]
    mine = _share(float((pred == class_id).mean()))
    if recognised:
        return f"recognised:\n{target} on {mine} of the image"
    if fg.size == 0:
        return f"not recognised:\nno object ({target} {mine})"
    top = int(np.bincount(fg).argmax())
    if top == class_id:  # the majority, but under the size the rule asks for
        return f"not recognised:\n{target} on only {mine}"
    return f"not recognised: {target} {mine},\n{class_names[top]} {_share(float((pred == top).mean()))}"


def _grid_tiles(grid: np.ndarray, n: int, padding: int = 2) -> list[np.ndarray]:
    """The ``n`` images of a one-row ``torchvision.utils.make_grid`` picture (``padding`` pixels around each)."""
    side = grid.shape[0] - 2 * padding
    step = side + padding
    if grid.shape[1] != n * step + padding:
        raise ValueError(f"a grid {grid.shape[1]} px wide does not hold {n} images of {side} px")
    return [grid[padding : padding + side, padding + k * step : padding + k * step + side] for k in range(n)]


def inversion_emergence(memory, class_names: Sequence[str] | None = None, title: str = ""):
    """The first synthetic batch at the iterations :meth:`SyntheticMemory.build` kept: one column per
    image, titled with the class it was asked to show, one row per iteration, labelled with its phase
    (half or full resolution).

    Args:
        memory: a :class:`~incseg_lib.inversion.SyntheticMemory` (its ``snapshots`` and first batch).
        class_names: names of the dataset's class ids (None: the ids).

    Raises:
        ValueError: the memory kept no snapshots.
    """
    import matplotlib.pyplot as plt
    from PIL import Image

    shots = memory.manifest.get("snapshots") or []
    if not shots:
        raise ValueError(f"no snapshots in {memory.folder}: the first batch was made before snapshots were kept")
    first = min(memory.manifest["batches"], key=lambda b: b["index"])["targets"]
    low = (memory.manifest.get("config") or {}).get("iterations_low", 0)
    n = len(first)
    fig, axes = plt.subplots(
        len(shots), n, figsize=(1.05 * n + 1.3, 1.1 * len(shots) + 1.3), squeeze=False, layout="constrained"
    )
    for row, s in zip(axes, shots):
        with Image.open(memory.folder / s["file"]) as im:
            tiles = _grid_tiles(np.asarray(im.convert("RGB")), n)
        for ax, tile in zip(row, tiles):
            ax.imshow(tile)
            axis_off(ax)
        phase = "half resolution" if s["iteration"] <= low else "full resolution"
        row[0].set_ylabel(f"iteration {s['iteration']}\n({phase})", fontsize=8)
    for ax, t in zip(axes[0], first):
        ax.set_title("\n".join(class_names[c] if class_names is not None else str(c) for c in t), fontsize=8)
    fig.suptitle(
        title or "The first batch emerging from noise: each column asked for the class above it, rows are iterations",
        fontsize=10,
    )
    return fig


#: The loss terms :func:`inversion_losses` draws: history key -> (name, the config field of its weight).
_INVERSION_TERMS = {
    "class": ("class (cross-entropy of pooled logits)", "main"),
    "bn": ("BN statistics", "r_feature"),
    "tv_l2": ("total variation (TV$_2$)", "tv_l2"),
    "l2": ("L2 norm of the image", "l2"),
    "outside": ("outside term (scale-aware)", "outside_weight"),
    "inside": ("inside term (scale-aware)", "inside_weight"),
    "adi": ("ADI competition", "adi"),
}


def inversion_losses(memory, title: str = ""):
    """What DeepInversion minimised, iteration by iteration, over every batch of a memory: left, each
    loss term times its weight and their sum (log scale: the terms differ by orders of magnitude);
    right, on its own axis, the old model's probability of the target class (a probability, not a
    loss). Lines are means over the batches, bands their range; the dotted line is the switch from
    half to full resolution.

    Raises:
        ValueError: the memory holds no loss curve.
    """
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(memory.loss_curves())
    if df.empty:
        raise ValueError(f"no loss curves in {memory.folder}")
    conf = memory.manifest.get("config") or {}
    batches = df["batch"].nunique()
    by_it = df.groupby("iteration")
    mean, lo, hi = by_it.mean(numeric_only=True), by_it.min(numeric_only=True), by_it.max(numeric_only=True)
    x = mean.index.to_numpy()
    fig, (ax_l, ax_p) = plt.subplots(1, 2, figsize=(11, 4.0), layout="constrained")
    for col, (name, weight_field) in _INVERSION_TERMS.items():
        weight = float(conf.get(weight_field, 1.0))
        if col not in mean or weight == 0:
            continue
        (line,) = ax_l.plot(x, weight * mean[col], lw=1.3, label=f"{name} x {weight:g}")
        if batches > 1:
            ax_l.fill_between(x, weight * lo[col], weight * hi[col], color=line.get_color(), alpha=0.15, lw=0)
    ax_l.plot(x, mean["total"], color="k", lw=1.0, ls="--", label="total (the sum)")
    ax_l.set_yscale("log")
    ax_l.set_ylabel("weighted loss term (log scale)")
    ax_l.set_title("loss terms, each times its weight", fontsize=9)
    mean_label = "mean over the batches" if batches > 1 else None
    ax_p.plot(x, mean["target_prob"], color="tab:purple", lw=1.6, label=mean_label)
    if batches > 1:
        ax_p.fill_between(
            x, lo["target_prob"], hi["target_prob"], color="tab:purple", alpha=0.2, lw=0, label="range over the batches"
        )
    ax_p.set_ylim(0, 1)
    ax_p.set_ylabel("probability of the target class")
    ax_p.set_title(
        "the old model's probability of the target class\n(softmax over the pooled class scores)", fontsize=9
    )
    low = conf.get("iterations_low", 0)
    for ax in (ax_l, ax_p):
        if low:
            ax.axvline(low, color="grey", ls=":", lw=1, label="half -> full resolution")
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    band = f" (lines: mean over {batches} batches; bands: their range)" if batches > 1 else ""
    fig.suptitle(title or f"DeepInversion's objective during synthesis{band}", fontsize=10)
    return fig


def transfer_bars(checks: dict, title: str = ""):
    """DeepInversion's transfer check as bars: left, per target class, the share of the first memory's
    synthetic images each model recognises; right, the share over all classes for every memory checked.
    Bars are labelled ``recognised/images``.

    Args:
        checks: :func:`incseg_lib.experiment.transfer_checks`.

    Raises:
        ValueError: no memory was checked.
    """
    import matplotlib.pyplot as plt

    if not checks["memories"]:
        raise ValueError("no synthetic memory was checked")
    names, models = checks["class_names"], checks["models"]
    mems = list(checks["memories"])
    first = checks["memories"][mems[0]]
    classes = list(first[models[0]]["per_class"])
    width = 0.8 / len(models)
    fig, (ax_c, ax_o) = plt.subplots(
        1,
        2,
        figsize=(max(8, 0.45 * len(classes) + 0.9 * len(mems) + 3), 3.9),
        gridspec_kw={"width_ratios": [max(len(classes), 1), max(1.6 * len(mems), 2)]},
        layout="constrained",
    )
    colours = ["tab:grey", "tab:blue", "tab:orange", "tab:green"]
    for k, m in enumerate(models):
        per = first[m]["per_class"]
        xs = np.arange(len(classes)) + (k - (len(models) - 1) / 2) * width
        ax_c.bar(xs, [100 * per[c]["rate"] for c in classes], width, color=colours[k % 4], label=m)
        for x0, c in zip(xs, classes):
            if per[c]["recognised"] == 0:  # no bar: say 0, so it does not read as missing
                ax_c.text(x0, 1.5, "0", ha="center", va="bottom", fontsize=8, color=colours[k % 4])
        xo = np.arange(len(mems)) + (k - (len(models) - 1) / 2) * width
        over = [checks["memories"][mem][m]["overall"] for mem in mems]
        bars = ax_o.bar(xo, [100 * o["rate"] for o in over], width, color=colours[k % 4], label=m)
        ax_o.bar_label(bars, [f"{o['recognised']}/{o['images']}" for o in over], fontsize=8)
    ax_c.set_xticks(np.arange(len(classes)), [names[c] for c in classes], rotation=60, ha="right", fontsize=8)
    ax_c.set_xlabel("target class")
    ax_c.set_title(f"per class ({mems[0]} memory)", fontsize=9)
    ax_o.set_xticks(np.arange(len(mems)), mems, rotation=20, ha="right", fontsize=8)
    ax_o.set_xlabel("synthetic memory")
    ax_o.set_title("all classes", fontsize=9)
    for ax in (ax_c, ax_o):
        ax.set_ylim(0, 112)
        ax.set_ylabel("synthetic images recognised (%)")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = ax_c.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(models), fontsize=8, frameon=False)
    rule = (
        "recognised: the target is the prediction's majority foreground class and covers "
        f">= {100 * checks['min_fraction']:g}% of the image"
    )
    question = "Transfer check: does a model see the class an image was synthesised for?"
    fig.suptitle(title or f"{question}\n{rule}", fontsize=9)
    return fig


OUTCOME_COLOURS = {"found": "tab:green", "missed": "tab:orange", "moved": "tab:red"}


def outcome_text(outcome: dict, class_names: Sequence[str] | None = None) -> str:
    """Short lines for a :func:`~incseg_lib.seam.pseudo_label_outcome`, in what was measured: the
    class, then its IoU against the rule's bar (``IoU 0.62, at least 0.5``; ``IoU 0.49, below 0.5``),
    and what the label covers when that explains it (``covers 0.8 % of the image``, ``mostly on
    square``, ``covers 64 % of the image``)."""

    def name(c):
        return class_names[c] if class_names is not None else str(c)

    bar = outcome.get("iou_min", 0.5)
    iou = f"IoU {outcome['iou']:.2f}, " + (f"at least {bar:g}" if outcome["outcome"] == "found" else f"below {bar:g}")
    share = outcome.get("share", 0.0)
    if outcome["outcome"] == "moved":
        detail = f"mostly on {name(outcome['old_class'])}"
    elif share < 0.01 or share > 0.5:
        detail = f"covers {_share(share)} of the image"
    else:
        detail = ""
    return "\n".join([f"{name(outcome['class_id'])}:", iou] + ([detail] if detail else []))


def scale_examples(data: dict, title: str = ""):
    """One old class synthesised at several target scales (data of
    :func:`incseg_lib.experiment.synthesis_at_scales`): each image above its pseudo-label, titled with
    the fraction asked for and the fraction the class covers."""
    import matplotlib.pyplot as plt

    n = len(data["asked"])
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5.0), squeeze=False)
    for k in range(n):
        axes[0, k].imshow(data["images"][k].permute(1, 2, 0).clamp(0, 1).numpy())
        axes[0, k].set_title(
            f"asked {100 * data['asked'][k]:.0f}% of the image\ncovers {100 * data['got'][k]:.0f}%", fontsize=9
        )
        axes[1, k].imshow(colorize(data["labels"][k], data["palette"]))
        axes[1, k].set_title("old model's pseudo-label", fontsize=8)
        for ax in axes[:, k]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("synthetic image", fontsize=9)
    axes[1, 0].set_ylabel("pseudo-label", fontsize=9)
    class_legend(fig, data["labels"], data["palette"], data["class_names"], ncol=6)
    name = data["class_names"][data["class_id"]]
    fig.suptitle(title or f"'{name}' synthesised by the step-0 model at {n} target sizes (scale-aware)", fontsize=10)
    return fig


def object_size_histogram(sizes: dict, title: str = ""):
    """How much of their image the old classes' objects cover: real step-0 objects against each
    synthetic memory's pseudo-labelled objects (data of :func:`incseg_lib.experiment.object_size_samples`),
    as the share of objects in logarithmic size bins."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    bins = np.logspace(-3, 0, 16)
    styles = {"real step-0 objects": dict(color="k", lw=2.2)}
    for name, values in sizes.items():
        values = np.clip(np.asarray(values, dtype=float), bins[0], 1.0)
        if not len(values):  # said, not hidden: a memory whose images the old model is not sure of
            ax.plot([], [], lw=1.6, label=f"{name}: no object the old model is sure of")
            continue
        counts, _ = np.histogram(values, bins=bins)
        ax.stairs(
            100 * counts / len(values),
            bins,
            label=f"{name} (n={len(values)}, median {100 * np.median(values):.1f}%)",
            **styles.get(name, dict(lw=1.6)),
        )
    ax.set_xscale("log")
    ax.set_xticks([0.001, 0.01, 0.1, 1.0], ["0.1%", "1%", "10%", "100%"])
    ax.set_xlabel("fraction of the image the object covers (log scale)")
    ax.set_ylabel("share of objects (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Object sizes of the old classes: real images against synthetic memories", fontsize=10)
    fig.tight_layout()
    return fig


def size_reading(sizes: dict) -> str:
    """What :func:`object_size_histogram`'s figure shows, from the same sizes: each synthetic memory's
    median object size against the real step-0 objects', and whether it is smaller or larger."""
    real = sizes.get("real step-0 objects")
    if real is None or not len(real):
        return "What this figure shows: no real object to compare with."
    ref = float(np.median(real))
    parts = []
    for name, values in sizes.items():
        if name == "real step-0 objects":
            continue
        if not len(values):
            parts.append(f"{name}: no object the old model is sure of")
            continue
        med = float(np.median(values))
        ratio = med / ref if ref else float("nan")
        parts.append(f"{name} {100 * med:.1f} % ({ratio:.1f} times the real median)")
    return (
        f"What this figure shows: median object size, real step-0 objects {100 * ref:.1f} %; " + "; ".join(parts) + "."
    )


def scale_reading(data: dict) -> str:
    """What :func:`scale_examples`'s figure shows, from the same data: for each target size, the share
    of the image the class covers, and whether the covered sizes grow with the sizes asked for."""
    pairs = list(zip(data["asked"], data["got"]))
    shown = ", ".join(f"asked {100 * a:.0f} %, covers {100 * g:.0f} %" for a, g in pairs)
    grows = all(b[1] > a[1] for a, b in zip(pairs, pairs[1:]))
    line = f"What this figure shows: {data['class_names'][data['class_id']]}: {shown}."
    if len(pairs) > 1:
        line += (
            " The object grows with the size asked for, as the scale-aware target means it to."
            if grows
            else " The object does not grow with every size asked for: the target did not control its size here."
        )
    return line


def synthetic_reading(data: dict) -> str:
    """What :func:`synthetic_gallery`'s figure shows, from the same rows: how many targets the
    independent model recognises, and which it does not (or, without a transfer check, how many
    synthetic images the old model's pseudo-label gives their target at all)."""
    rows, names = data["rows"], data["class_names"]
    if any(r.get("check") is not None for r in rows):
        missed = [names[r["class_id"]] for r in rows if not r.get("recognised")]
        line = (
            f"What this figure shows: the independent model recognises {len(rows) - len(missed)} of {len(rows)} targets"
        )
        return line + (f"; not {', '.join(missed)}." if missed else ".")
    has = sum(bool((np.asarray(r["pseudo"]) == r["class_id"]).any()) for r in rows)
    return f"What this figure shows: the old model labels the target in {has} of {len(rows)} synthetic images."


def inversion_reading(memory) -> str:
    """What :func:`inversion_losses`'s figure shows, from the same curves: the old model's probability
    of the target class and the total loss at the first and the last iteration (means over the
    batches), and the probability just before and after the switch to full resolution."""
    import pandas as pd

    df = pd.DataFrame(memory.loss_curves())
    if df.empty:
        return "What this figure shows: no loss curve was kept."
    mean = df.groupby("iteration").mean(numeric_only=True)
    p, total = mean["target_prob"], mean["total"]
    line = (
        f"What this figure shows: the old model's probability of the target class goes from {p.iloc[0]:.2f} to "
        f"{p.iloc[-1]:.2f} over {len(p)} iterations, the total loss from {total.iloc[0]:.3g} to {total.iloc[-1]:.3g}"
    )
    low = int((memory.manifest.get("config") or {}).get("iterations_low", 0))
    if 0 < low < len(p):
        line += f"; at the switch to full resolution (iteration {low}) the probability is {p.iloc[low - 1]:.2f}"
    return line + "."
