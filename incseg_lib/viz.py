"""Pictures for the notebooks: coloured masks, sample grids, galleries, loss curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .data.common import VOID_COLOUR
from .data.transforms import denormalize
from .engine import predict
from .env import headless
from .experiment import model_and_data
from .results import class_order, display_labels, display_name, latest, run_labels

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
    handles = _class_handles(masks, palette, class_names)
    if handles:
        rows = (len(handles) + ncol - 1) // ncol
        fig.subplots_adjust(bottom=min(0.4, 0.03 + 0.3 * rows / max(fig.get_size_inches()[1], 1)))
        fig.legend(handles=handles, loc="lower center", ncol=min(ncol, len(handles)), fontsize=7, frameon=False)


def _class_handles(masks, palette: np.ndarray, class_names: Sequence[str]) -> list:
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


def _legend_below(fig, handles: list, ncol: int = 6, title: str | None = None) -> None:
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


def _to_rgb(image) -> np.ndarray:
    t = torch.as_tensor(image)
    if t.dtype.is_floating_point:
        t = denormalize(t)
        return (t.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
    return t.permute(1, 2, 0).cpu().numpy()


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
        axes[0].imshow(_to_rgb(image))
        axes[1].imshow(colorize(mask, palette))
        if class_names is not None:
            sub.suptitle(_names_in(mask, class_names), fontsize=8)
    fig.suptitle(title, fontsize=10)
    if class_names is not None:
        _legend_below(fig, _class_handles(shown, palette, class_names), ncol=7)
    return fig


def gallery(
    model,
    dataset,
    indices: Sequence[int],
    palette: np.ndarray,
    device="cpu",
    title: str = "",
    class_names: Sequence[str] | None = None,
):
    """image | ground truth | prediction rows for ``indices`` of an evaluation dataset, with a class legend.

    Each row is labelled with the classes of its ground truth; ``class_names`` default to
    ``dataset.info.class_names`` when the dataset has them.
    """
    import matplotlib.pyplot as plt

    info = getattr(dataset, "info", None)
    class_names = class_names or (info.class_names if info is not None else None)
    indices = list(indices)
    fig, axes = plt.subplots(
        len(indices), 3, figsize=(7.5, 2.2 * len(indices) + 1.2), squeeze=False, layout="constrained"
    )
    shown = []
    for row, i in zip(axes, indices):
        image, mask = dataset[i]
        pred = predict(model, image[None], device)[0]
        shown += [np.asarray(mask), pred.numpy()]
        for ax, pic in zip(row, (_to_rgb(image), colorize(mask, palette), colorize(pred, palette))):
            ax.imshow(pic)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"image {i}\n{_names_in(mask, class_names, 22)}", fontsize=8)
    for ax, name in zip(axes[0], ("image", "ground truth", "prediction")):
        ax.set_title(name, fontsize=9)
    fig.suptitle(title or "validation images: ground truth and prediction", fontsize=10)
    if class_names is not None:
        _legend_below(fig, _class_handles(shown, palette, class_names), ncol=6)
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


def iou_bars(record: dict, title: str = ""):
    """Horizontal bars of per-class IoU (%) from a results record, classes in id order.

    The default title names the model (method, backbone, learning rate and batch size when the
    record has them) and its mIoU; a class without an IoU (absent from labels and prediction) has
    no bar and says ``n/a``.
    """
    import matplotlib.pyplot as plt

    names = class_order(record.get("dataset", ""), record["iou"])
    vals = [record["iou"][n] for n in names]
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
                record.get("backbone"),
                f"lr {record['lr']}" if record.get("lr") is not None else None,
                f"batch {record['batch_size']}" if record.get("batch_size") is not None else None,
            )
            if x
        )
        miou = record.get("miou_all")
        miou_text = f"{100 * miou:.1f}%" if miou is not None else "n/a"
        title = f"{record.get('dataset', '')} {model}: IoU per class (mIoU {miou_text})"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


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
    fig, axes = plt.subplots(len(rows), n_steps + 2, figsize=(1.9 * (n_steps + 2), 1.8 * len(rows)), squeeze=False)
    names = ["image", "ground truth"] + [_step_title(s, pred.get("added")) for s in range(n_steps)]
    for r, (i, m) in enumerate(rows):
        masks = [pred["truth"][i]] + [pred["steps"][m][s][i] for s in range(n_steps)]
        pics = [_to_rgb(pred["images"][i])] + [colorize(x, pred["palette"]) for x in masks]
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


def _viewer_title(rec: dict, label: str) -> str:
    """``SMiB (5/class) on shapes 15-1 overlapped, after step 5 (the last): mIoU 73.4%``."""
    miou = rec.get("miou_all")
    return (
        f"{label} on {rec['dataset']} {rec['task']} {rec['setting']}, after step {rec['step']}: "
        f"mIoU {'n/a' if miou is None else f'{100 * miou:.1f}%'}"
    )


def results_viewer(records: list[dict], images: Sequence[int] = (0, 1, 2), device="cpu", data_root: str = ""):
    """Predictions of any recorded model: pick dataset / task / setting / method / step, see its gallery.

    With ipywidgets in an interactive kernel: five drop-downs (the method's choices are display
    labels such as ``SMiB (5/class)``, one per run, so each memory size can be picked); each choice
    loads the record's checkpoint (:func:`incseg_lib.experiment.model_and_data`) and draws image |
    ground truth | prediction for ``images`` of the evaluation split. Returns the widget (already
    displayed) after rendering the first choice.

    In headless runs (:func:`incseg_lib.env.headless`: the suite) or without ipywidgets it draws
    one static gallery instead, of the newest record whose checkpoint can be loaded, titled with
    the method's display label (memory size included), task, step and mIoU, and returns that
    figure. ``data_root`` overrides where the records' validation images are read from.
    """
    try:
        import ipywidgets as widgets
    except ImportError:  # the static gallery does without
        widgets = None

    recs = [r for r in latest(records) if r.get("checkpoint") and r.get("eval_protocol", "full") == "full"]
    recs = sorted(recs, key=lambda r: (r.get("created_ns", 0), r.get("_file", "")))
    label_of = {id(r): label for r, label in zip(recs, run_labels(recs))}

    def say(text: str):
        print(text)
        return widgets.HTML(text) if widgets is not None else None

    def show(rec):
        """The gallery of ``rec``, or None after saying why it cannot be shown."""
        try:
            model, data, palette = model_and_data(rec, data_root)
        except (OSError, ValueError, KeyError, RuntimeError) as e:  # missing/corrupt checkpoint, data moved ...
            print(f"cannot show {Path(rec.get('_file', '?')).name} ({label_of[id(rec)]} step {rec['step']}): {e}")
            return None
        idx = [i for i in images if i < len(data)]
        return gallery(model, data, idx, palette, device=device, title=_viewer_title(rec, label_of[id(rec)]))

    if not recs:
        return say("no record with a checkpoint to show")
    if widgets is None or headless():  # papermill: a widget kernel round-trip can hang; draw statically
        for rec in reversed(recs):
            fig = show(rec)
            if fig is not None:
                return fig
        return say("none of the records' checkpoints can be shown (see the lines above)")
    return _dropdown_viewer(widgets, recs, lambda r, f: label_of[id(r)] if f == "method" else str(r[f]), show)


def _dropdown_viewer(widgets, recs: list[dict], value, show):
    """Five linked drop-downs (dataset, task, setting, method, step) over ``recs`` and an output area
    where ``show(record)`` draws the chosen one; ``value(record, field)`` is what a drop-down lists.
    Displays the widget and returns it."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    fields = ("dataset", "task", "setting", "method", "step")
    boxes = {f: widgets.Dropdown(description=f, layout=widgets.Layout(width="260px")) for f in fields}
    out = widgets.Output()
    busy = [False]  # set while refresh() changes the boxes, so their observers do not redraw

    def matching(upto: int) -> list[dict]:
        return [r for r in recs if all(value(r, f) == str(boxes[f].value) for f in fields[:upto])]

    def refresh(level: int = 0) -> None:
        if busy[0]:
            return
        busy[0] = True
        try:
            for k in range(level, len(fields)):
                opts = {value(r, fields[k]) for r in matching(k)}
                opts = sorted(opts, key=lambda o: (len(o), o) if fields[k] == "step" else (o.lower(), o))
                box = boxes[fields[k]]
                box.options = opts
                if box.value not in opts:
                    box.value = opts[0] if opts else None
        finally:
            busy[0] = False
        draw()

    def draw(*_):
        chosen = matching(len(fields))
        out.clear_output(wait=True)
        if chosen:
            with out:
                fig = show(chosen[-1])
                if fig is not None:  # display, not plt.show(fig): that is no backend's signature
                    display(fig)
                    plt.close(fig)

    for k, f in enumerate(fields):
        boxes[f].observe(lambda change, k=k: refresh(k + 1), names="value")
    refresh(0)
    ui = widgets.VBox([widgets.HBox([boxes[f] for f in fields]), out])
    display(ui)
    return ui


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
    _legend_below(fig, handles, ncol=4)
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
    handles = [h for h in _class_handles(masks, palette, names) if h.get_label() != names[0]]  # 0 is not painted
    _legend_below(fig, handles, ncol=8, title="ground truth kept with the exemplars (unlabelled pixels dimmed)")
    return fig


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


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
            seen = r.get("seen")
            verdict, colour = ("recognised", "tab:green") if ok else ("not recognised", "tab:red")
            verdict += f"\n(sees {names[seen]})" if not ok and seen else ("\n(sees no object)" if not ok else "")
            row[3].set_xlabel(verdict, fontsize=8, color=colour)
        for ax in row:
            _off(ax)
        row[0].set_ylabel(f"target:\n{names[r['class_id']]}", fontsize=9)
    for ax, h in zip(axes[0], heads):
        ax.set_title(h, fontsize=8)
    fig.suptitle(
        title or "Synthetic images of every old class beside a real one, and what models see in them", fontsize=10
    )
    _legend_below(fig, _class_handles(shown, palette, names), ncol=6, title="label colours (void: unsure pixels)")
    return fig


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
            _off(ax)
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
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
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
                ax_c.text(x0, 1.5, "0", ha="center", va="bottom", fontsize=7, color=colours[k % 4])
        xo = np.arange(len(mems)) + (k - (len(models) - 1) / 2) * width
        over = [checks["memories"][mem][m]["overall"] for mem in mems]
        bars = ax_o.bar(xo, [100 * o["rate"] for o in over], width, color=colours[k % 4], label=m)
        ax_o.bar_label(bars, [f"{o['recognised']}/{o['images']}" for o in over], fontsize=7)
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


_OUTCOME_COLOURS = {"found": "tab:green", "missed": "tab:orange", "moved": "tab:red"}


def outcome_text(outcome: dict, class_names: Sequence[str] | None = None) -> str:
    """Three short lines for a :func:`~incseg_lib.seam.pseudo_label_outcome`: the class, the verdict
    (``found``, ``missed``, ``moved onto square``) and the IoU, with the share of the image the label
    covers when it is over half (``dark-ellipse:\nmoved onto square\nIoU 0.21``)."""

    def name(c):
        return class_names[c] if class_names is not None else str(c)

    what = outcome["outcome"]
    detail = f"IoU {outcome['iou']:.2f}"
    if outcome.get("share", 0) > 0.5:
        detail += f", {100 * outcome['share']:.0f}% of the image"
    if what == "moved":
        what = f"moved onto {name(outcome['old_class'])}"
    return f"{name(outcome['class_id'])}:\n{what}\n{detail}"


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
        rgb = _to_rgb(ex["image"])
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
            ax.set_xlabel(note, fontsize=7)
        row[4].imshow(colorize(ex["pseudo"], palette))
        outcomes = ex.get("outcomes") or []
        if outcomes:
            worst = max(outcomes, key=lambda o: ("found", "missed", "moved").index(o["outcome"]))
            text = "\n".join(outcome_text(o, class_names) for o in outcomes)
            row[4].set_xlabel(text, fontsize=7, color=_OUTCOME_COLOURS[worst["outcome"]])
        for ax in row:
            _off(ax)
        row[0].set_ylabel("label:\n" + "\n".join(ex["classes"]), fontsize=8)
    for ax, h in zip(axes[0], heads):
        ax.set_title(h, fontsize=8)
    bar = fig.colorbar(heat, ax=axes[:, 2:4], location="bottom", shrink=0.9, aspect=25, pad=0.01)
    bar.set_label("class activation, normalised per image and class (0-1)", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    if threshold is not None:
        bar.ax.axvline(threshold, color="k", lw=1.5)
        bar.ax.text(
            threshold,
            1.15,
            f"background score {threshold:g}",
            transform=bar.ax.get_xaxis_transform(),
            ha="left",
            va="bottom",
            fontsize=7,
        )
    fig.suptitle(title or "What SEAM sees: class activations and the pseudo-labels they make", fontsize=10)
    if class_names is not None:
        masks = [m for ex in examples for m in (ex["mask"], ex["pseudo"])]
        _legend_below(fig, _class_handles(masks, palette, class_names), ncol=6, title="label colours")
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


def pod_profiles(data: dict, title: str = ""):
    """What PLOP's Local POD keeps of a feature map: its squared activations pooled over the width (one
    value per row) and over the height (one per column), for the step-0 model and each method after the
    last step (data of :func:`incseg_lib.experiment.pod_profiles`); the legend gives each model's POD
    distance to step 0 on that map."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), gridspec_kw={"width_ratios": [1, 1.4, 1.4]})
    axes[0].imshow(_to_rgb(data["image"]))
    axes[0].set_title("validation image", fontsize=10)
    axes[0].axis("off")
    styles = {"step 0": dict(color="k", lw=2.2, ls="--")}
    for ax, key, what in ((axes[1], "rows", "row (top to bottom)"), (axes[2], "cols", "column (left to right)")):
        for name, prof in data[key].items():
            label = display_name(name) if name != "step 0" else "step 0 (old model)"
            if name != "step 0":
                label += f" (POD distance {data['distance'][name]:.0f})"
            ax.plot(np.arange(len(prof)), prof, marker="o", ms=3, label=label, **styles.get(name, {}))
        ax.set_xlabel(f"{what} of the 1/{2 ** (data['stage'] + 2)} map")
        ax.set_ylabel("mean squared activation")
        ax.set_title(f"pooled over the {'width' if key == 'rows' else 'height'}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=8, loc="best")
    fig.suptitle(title or f"ResNet stage {data['stage'] + 1}: what Local POD compares, step 0 against the last step")
    fig.tight_layout()
    return fig


def latent_space(data: dict, title: str = ""):
    """SDR's latent space: pixel features of validation images (dots, coloured by their class) and the
    class prototypes (stars) on two principal axes, after step 0 and after the last step (data of
    :func:`incseg_lib.experiment.latent_projection`)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    panels, names, palette = data["panels"], data["class_names"], np.asarray(data["palette"]) / 255
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.8), sharex=True, sharey=True)
    classes = sorted(
        {int(c) for p in panels for c in np.unique(p["labels"])} | {c for p in panels for c in p["prototypes"]}
    )
    for ax, p in zip(np.atleast_1d(axes), panels):
        for c in classes:
            pts = p["points"][p["labels"] == c]
            if len(pts):
                ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.45, color=palette[c], edgecolors="none")
            if c in p["prototypes"]:
                q = p["prototypes"][c]
                ax.scatter([q[0]], [q[1]], s=180, marker="*", color=palette[c], edgecolors="k", linewidths=0.8)
        ax.set_title(p["title"], fontsize=10)
        ax.set_xlabel("first principal axis")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("second principal axis")
    handles = [Line2D([], [], marker="o", ls="", color=palette[c], label=names[c]) for c in classes]
    handles.append(Line2D([], [], marker="*", ls="", color="w", markeredgecolor="k", ms=12, label="prototype"))
    fig.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=7, frameon=False)
    fig.suptitle(title or "SDR's latent space: pixel features (dots) and class prototypes (stars)")
    fig.tight_layout(rect=(0, 0.06 + 0.03 * (len(handles) // 8), 1, 1))
    return fig


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
