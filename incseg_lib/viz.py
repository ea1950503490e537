"""Pictures for the notebooks: coloured masks, sample grids, galleries, loss curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .data.transforms import denormalize
from .engine import predict
from .env import headless
from .experiment import model_and_data
from .results import class_order, display_name, latest

IGNORE_COLOUR = (224, 224, 192)  # VOC's cream for void


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
    from matplotlib.patches import Patch

    present = sorted(set().union(*(np.unique(np.asarray(m)).tolist() for m in masks)))
    handles = [
        Patch(facecolor=np.asarray(palette[c]) / 255, edgecolor="k", lw=0.3, label=class_names[c])
        for c in present
        if c < len(class_names) and c < len(palette)
    ]
    if 255 in present:
        handles.append(Patch(facecolor=np.asarray(IGNORE_COLOUR) / 255, edgecolor="k", lw=0.3, label="void"))
    if handles:
        rows = (len(handles) + ncol - 1) // ncol
        fig.subplots_adjust(bottom=min(0.4, 0.03 + 0.3 * rows / max(fig.get_size_inches()[1], 1)))
        fig.legend(handles=handles, loc="lower center", ncol=min(ncol, len(handles)), fontsize=7, frameon=False)


def _to_rgb(image) -> np.ndarray:
    t = torch.as_tensor(image)
    if t.dtype.is_floating_point:
        t = denormalize(t)
        return (t.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
    return t.permute(1, 2, 0).cpu().numpy()


def show_samples(
    dataset, indices: Sequence[int], palette: np.ndarray, class_names: Sequence[str] | None = None, cols: int = 4
):
    """Grid of image | mask pairs from ``dataset`` (items ``(image, mask)``). Returns the figure."""
    import matplotlib.pyplot as plt

    rows = (len(indices) + cols - 1) // cols
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(3 * cols, 1.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    shown = []
    for k, i in enumerate(indices):
        image, mask = dataset[i]
        shown.append(np.asarray(mask))
        r, c = divmod(k, cols)
        axes[r, 2 * c].imshow(_to_rgb(image))
        axes[r, 2 * c + 1].imshow(colorize(mask, palette))
        if class_names is not None:
            present = [class_names[v] for v in np.unique(np.asarray(mask)) if v < len(class_names) and v != 0]
            axes[r, 2 * c + 1].set_title(", ".join(present)[:28], fontsize=7)
    fig.tight_layout()
    class_legend(fig, shown, palette, class_names)
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

    ``class_names`` default to ``dataset.info.class_names`` when the dataset has them.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(indices), 3, figsize=(7.5, 2.3 * len(indices)), squeeze=False)
    shown = []
    for row, i in zip(axes, indices):
        image, mask = dataset[i]
        pred = predict(model, image[None], device)[0]
        shown += [np.asarray(mask), pred.numpy()]
        for ax, pic, name in zip(
            row,
            (_to_rgb(image), colorize(mask, palette), colorize(pred, palette)),
            ("image", "ground truth", "prediction"),
        ):
            ax.imshow(pic)
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    info = getattr(dataset, "info", None)
    class_legend(fig, shown, palette, class_names or (info.class_names if info is not None else None))
    return fig


def loss_curves(histories: dict[str, dict], title: str = "training loss"):
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
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def iou_bars(record: dict, title: str = ""):
    """Horizontal bars of per-class IoU (%) from a results record."""
    import matplotlib.pyplot as plt

    names = class_order(record.get("dataset", ""), record["iou"])
    vals = [100 * (record["iou"][n] or 0) for n in names]
    fig, ax = plt.subplots(figsize=(6, 0.22 * len(names) + 1))
    ax.barh(names, vals, color="tab:blue")
    ax.invert_yaxis()
    ax.set_xlabel("IoU %")
    ax.set_xlim(0, 100)
    ax.set_title(title or f"{record['dataset']} {record['method']} mIoU {100 * (record['miou_all'] or 0):.1f}")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- incremental learning
def predictions_over_steps(pred: dict, methods: Sequence[str] | None = None, title: str = ""):
    """One row per (image, method): image | ground truth | prediction after each step.

    Args:
        pred: the dict of :func:`incseg_lib.experiment.step_predictions`.
    """
    import matplotlib.pyplot as plt

    methods = list(methods or pred["steps"])
    n_steps = len(next(iter(pred["steps"].values())))
    rows = [(i, m) for i in range(len(pred["images"])) for m in methods]
    fig, axes = plt.subplots(len(rows), n_steps + 2, figsize=(1.9 * (n_steps + 2), 1.7 * len(rows)), squeeze=False)
    for r, (i, m) in enumerate(rows):
        pics = [_to_rgb(pred["images"][i]), colorize(pred["truth"][i], pred["palette"])]
        pics += [colorize(pred["steps"][m][s][i], pred["palette"]) for s in range(n_steps)]
        names = ["image", "ground truth"] + [f"step {s}" for s in range(n_steps)]
        for c, (ax, pic) in enumerate(zip(axes[r], pics)):
            ax.imshow(pic)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(names[c], fontsize=8)
        axes[r, 2].set_ylabel(display_name(m), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    shown = list(pred["truth"]) + [p for m in methods for step in pred["steps"][m] for p in step]
    class_legend(fig, shown, pred["palette"], pred.get("class_names"))
    return fig


def step_curves(frame, title: str = "mIoU after each step"):
    """Lines of mIoU (%) per step, one per method (rows of :func:`results.miou_by_step`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for method, row in frame.iterrows():
        row = row.dropna()
        ax.plot(row.index, row.values, marker="o", ms=4, label=method)
    ax.set_xlabel("step")
    ax.set_ylabel("mIoU % (all seen classes)")
    ax.set_xticks(list(frame.columns))
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def iou_heatmap(
    frame,
    title: str = "per-class IoU % at the last step",
    split_at: str | None = None,
    cmap: str = "viridis",
    vmin: float = 0,
    vmax: float = 100,
    label: str = "IoU %",
):
    """Seaborn heatmap of a methods x classes table in % (:func:`results.class_iou`, :func:`results.forgetting`).

    Args:
        split_at: a class name; a vertical line is drawn before it (old | new classes).
        cmap, vmin, vmax, label: colour map, its range and the colour bar's label.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(0.42 * len(frame.columns) + 2, 0.4 * len(frame) + 1.6))
    sns.heatmap(
        frame,
        annot=True,
        fmt=".0f",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        cbar_kws={"label": label},
        annot_kws={"fontsize": 6},
        ax=ax,
    )
    if split_at is not None and split_at in frame.columns:
        ax.axvline(list(frame.columns).index(split_at), color="white", lw=2)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def comparison_bars(table, title: str = "mIoU % at the last step"):
    """Grouped bars (old / new / all) per method, one panel per (dataset, task, setting).

    Args:
        table: :func:`incseg_lib.results.incremental_table`.
    """
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(c[:3] for c in table.columns))
    fig, axes = plt.subplots(1, len(groups), figsize=(max(4.5, 0.6 * len(table)) * len(groups), 3.4), squeeze=False)
    width = 0.27
    for ax, g in zip(axes[0], groups):
        x = np.arange(len(table))
        for k, part in enumerate(("old", "new", "all")):
            if g + (part,) in table.columns:
                ax.bar(x + (k - 1) * width, table[g + (part,)].values, width, label=part)
        ax.set_xticks(x)
        ax.set_xticklabels(table.index, rotation=45, ha="right", fontsize=8)
        ax.set_title(" ".join(g), fontsize=9)
        ax.set_ylabel("mIoU %")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def results_viewer(records: list[dict], images: Sequence[int] = (0, 1, 2), device="cpu", data_root: str = ""):
    """ipywidgets viewer: pick dataset / task / setting / method / step, see its gallery.

    Each choice loads the record's checkpoint (:func:`incseg_lib.experiment.model_and_data`) and
    draws image | ground truth | prediction for ``images`` of the evaluation split. Returns the
    widget (already displayed) after rendering the first choice; in headless runs
    (:func:`incseg_lib.config.headless`) it returns a static gallery figure of the newest
    record. ``data_root`` overrides where the records' validation images are read from.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    recs = [r for r in latest(records) if r.get("checkpoint") and r.get("eval_protocol", "full") == "full"]
    if not recs:
        return widgets.HTML("no record with a checkpoint to show")

    def load(rec):
        """``(model, data, palette)``, or None after saying which record cannot be shown and why."""
        try:
            return model_and_data(rec, data_root)
        except (OSError, ValueError, KeyError, RuntimeError) as e:  # missing/corrupt checkpoint, data moved ...
            print(f"cannot show {Path(rec.get('_file', '?')).name} ({rec['method']} step {rec['step']}): {e}")
            return None

    if headless():  # papermill: a widget kernel round-trip can hang; draw the newest showable record statically
        for rec in reversed(recs):
            loaded = load(rec)
            if loaded is not None:
                model, data, palette = loaded
                return gallery(
                    model,
                    data,
                    [i for i in images if i < len(data)],
                    palette,
                    device=device,
                    title=f"{rec['dataset']} {rec['task']} {rec['setting']} {rec['method']} step {rec['step']}",
                )
        return widgets.HTML("none of the records' checkpoints can be shown (see the lines above)")
    fields = ("dataset", "task", "setting", "method", "step")
    boxes = {f: widgets.Dropdown(description=f, layout=widgets.Layout(width="220px")) for f in fields}
    out = widgets.Output()
    busy = [False]  # set while refresh() changes the boxes, so their observers do not redraw

    def matching(upto: int) -> list[dict]:
        return [r for r in recs if all(str(r[f]) == str(boxes[f].value) for f in fields[:upto])]

    def refresh(level: int = 0) -> None:
        if busy[0]:
            return
        busy[0] = True
        try:
            for k in range(level, len(fields)):
                opts = sorted({str(r[fields[k]]) for r in matching(k)})
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
        if not chosen:
            return
        rec = chosen[-1]
        with out:
            loaded = load(rec)
            if loaded is None:
                return
            model, data, palette = loaded
            idx = [i for i in images if i < len(data)]
            fig = gallery(
                model,
                data,
                idx,
                palette,
                device=device,
                title=f"{rec['dataset']} {rec['task']} {rec['setting']} {rec['method']} step {rec['step']}: "
                f"mIoU {100 * (rec['miou_all'] or 0):.1f}",
            )
            plt.show(fig)

    for k, f in enumerate(fields):
        boxes[f].observe(lambda change, k=k: refresh(k + 1), names="value")
    refresh(0)
    ui = widgets.VBox([widgets.HBox([boxes[f] for f in fields]), out])
    display(ui)
    return ui


def memory_curves(frame, title: str = ""):
    """mIoU (old / new / all) against exemplars per class: one panel per part, one line per method
    with memory, MiB without memory as a dashed reference line (:func:`results.miou_by_memory`)."""
    import matplotlib.pyplot as plt

    parts = ["old", "new", "all"]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharey=False)
    for ax, part in zip(axes, parts):
        sub = frame[frame["part"] == part]
        ref = sub[(sub["method"] == "MiB") & (sub["exemplars"] == 0)]
        for method, g in sub[sub["exemplars"] > 0].groupby("method"):
            g = g.sort_values("exemplars")
            ax.plot(g["exemplars"], g["mIoU %"], marker="o", ms=4, label=method)
        if len(ref):
            ax.axhline(float(ref["mIoU %"].iloc[-1]), color="k", ls="--", lw=1, label="MiB (no memory)")
        ax.set_xscale("log")
        ax.set_xlabel("exemplars per class")
        ax.set_title(f"mIoU {part}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mIoU %")
    axes[-1].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def exemplar_gallery(memory, dataset, max_classes: int = 8, per_class: int = 4, title: str = ""):
    """The stored exemplars, one row per class: image with its stored mask blended in.

    Args:
        memory: an :class:`~incseg_lib.exemplars.ExemplarMemory`.
        dataset: the unfiltered training dataset (class ids) the memory indexes.
    """
    import matplotlib.pyplot as plt

    per = sorted(memory.per_class().items())[:max_classes]
    if not per:
        raise ValueError("the exemplar memory is empty")
    cols = max(1, min(per_class, max(len(v) for _, v in per)))
    fig, axes = plt.subplots(len(per), cols, figsize=(1.9 * cols, 1.7 * len(per)), squeeze=False)
    palette = dataset.info.palette
    for row, (c, items) in zip(axes, per):
        for k, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            if k >= len(items):
                ax.axis("off")
                continue
            e = items[k]
            img = dataset.read_image(e.index).permute(1, 2, 0).numpy()
            mask = dataset.read_mask(e.index)
            keep = np.isin(mask, e.classes) & (mask != 0)
            over = colorize(np.where(keep, mask, 0), palette)
            ax.imshow(np.where(keep[..., None], (0.45 * img + 0.55 * over).astype(np.uint8), img))
            ax.set_title(e.image_id[:14], fontsize=6)
        row[0].set_ylabel(dataset.info.class_names[c], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def synthetic_gallery(
    memory, real, max_classes: int = 8, per_class: int = 3, real_per_class: int = 2, cache_dir=None, title: str = ""
):
    """Synthetic images of each old class beside real training images of that class.

    One row per class: ``real_per_class`` real images first (grey titles), then up to
    ``per_class`` synthetic images asked to show the class, with the old model's pseudo-labels
    outlined in colour on the right half of each synthetic image.

    Args:
        memory: a :class:`~incseg_lib.inversion.SyntheticMemory`.
        real: the unfiltered training dataset (class ids), for the real images.
        cache_dir: where the dataset's class-presence index is cached.
    """
    import matplotlib.pyplot as plt

    syn = memory.as_dataset(real.info)
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(memory.targets):
        by_class.setdefault(t[0], []).append(i)
    classes = sorted(by_class)[:max_classes]
    if not classes:
        raise ValueError("the synthetic memory is empty")
    presence = real.class_presence(cache_dir)
    cols = real_per_class + per_class
    fig, axes = plt.subplots(len(classes), cols, figsize=(1.7 * cols, 1.7 * len(classes)), squeeze=False)
    palette = real.info.palette
    for row, c in zip(axes, classes):
        have = np.flatnonzero(presence[:, c])  # spread over the list (video datasets: other scenes)
        reals = have[np.linspace(0, len(have) - 1, real_per_class).round().astype(int)].tolist() if len(have) else []
        for k, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            if k < real_per_class:
                if k >= len(reals):
                    ax.axis("off")
                    continue
                ax.imshow(real.read_image(reals[k]).permute(1, 2, 0).numpy())
                ax.set_title("real", fontsize=6, color="grey")
                continue
            j = k - real_per_class
            if j >= len(by_class[c]):
                ax.axis("off")
                continue
            i = by_class[c][j]
            img = syn.read_image(i).permute(1, 2, 0).numpy()
            mask = syn.read_mask(i)
            over = colorize(np.where(mask == 255, 0, mask), palette)
            half = img.copy()
            w = img.shape[1] // 2
            fg = (mask != 0) & (mask != 255)
            half[:, w:] = np.where(fg[:, w:, None], (0.4 * img[:, w:] + 0.6 * over[:, w:]).astype(np.uint8), img[:, w:])
            ax.imshow(half)
            ax.set_title("synthetic", fontsize=6)
        row[0].set_ylabel(real.info.class_names[c], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def inversion_emergence(memory, title: str = "one batch emerging from noise"):
    """The first synthetic batch at the iterations :meth:`SyntheticMemory.build` kept, one row each."""
    import matplotlib.pyplot as plt
    from PIL import Image

    shots = memory.manifest.get("snapshots") or []
    if not shots:
        raise ValueError(f"no snapshots in {memory.folder}: the first batch was made before snapshots were kept")
    fig, axes = plt.subplots(len(shots), 1, figsize=(10, 1.5 * len(shots)), squeeze=False)
    for ax, s in zip(axes[:, 0], shots):
        with Image.open(memory.folder / s["file"]) as im:
            ax.imshow(np.asarray(im))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(f"it {s['iteration']}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def inversion_losses(memory, title: str = "DeepInversion loss terms"):
    """Each loss term over iterations (every batch; the vertical line ends the low-resolution phase)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(memory.loss_curves())
    if df.empty:
        raise ValueError(f"no loss curves in {memory.folder}")
    terms = [
        ("class", "class (LSE-pooled)"),
        ("bn", "BN statistics"),
        ("tv_l2", "TV (L2)"),
        ("target_prob", "target probability"),
    ]
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 2.6))
    low = (memory.manifest.get("config") or {}).get("iterations_low", 0)
    for ax, (col, name) in zip(axes, terms):
        for _, part in df.groupby("batch"):
            ax.plot(part["iteration"], part[col], lw=0.8, alpha=0.7)
        if low:
            ax.axvline(low, color="grey", ls=":", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        if col in ("class", "bn"):
            ax.set_yscale("log")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def seam_gallery(
    examples: Sequence[dict], palette: np.ndarray, class_names: Sequence[str] | None = None, title: str = ""
):
    """image | ground truth | CAM | PCM-refined CAM | pseudo-label, one row per example.

    Args:
        examples: from :func:`~incseg_lib.experiment.seam_examples` (``image``, ``mask``, ``cam``,
            ``pcm``, ``pseudo``, ``classes``); the heat maps are the maximum over the image's
            labelled classes of the normalised maps, in [0, 1].
        palette: colours of the dataset ids.
    """
    import matplotlib.pyplot as plt

    if not examples:
        raise ValueError("no example to draw")
    heads = ["image", "ground truth", "CAM", "CAM + PCM", "pseudo-label"]
    fig, axes = plt.subplots(len(examples), 5, figsize=(9, 1.9 * len(examples) + 0.6), squeeze=False)
    for row, ex in zip(axes, examples):
        rgb = _to_rgb(ex["image"])
        cells = [rgb, colorize(ex["mask"], palette), ex["cam"], ex["pcm"], colorize(ex["pseudo"], palette)]
        for k, (ax, cell) in enumerate(zip(row, cells)):
            if k in (2, 3):
                ax.imshow(rgb)
                ax.imshow(cell, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            else:
                ax.imshow(cell)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(", ".join(ex["classes"]), fontsize=7)
    for ax, h in zip(axes[0], heads):
        ax.set_title(h, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    class_legend(fig, [m for ex in examples for m in (ex["mask"], ex["pseudo"])], palette, class_names)
    return fig


def threshold_sweep(sweep: Sequence[dict], chosen: float | None = None, title: str = "background score sweep"):
    """Pseudo-label mIoU (%) against the background score, before and after PCM (a line each).

    Args:
        sweep: rows ``{"source", "threshold", "miou"}`` (:meth:`~incseg_lib.seam.PseudoLabels.sweep`).
        chosen: the threshold used for training, drawn as a dotted line.
    """
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(list(sweep))
    if df.empty:
        raise ValueError("the threshold sweep is empty")
    fig, ax = plt.subplots(figsize=(4.6, 3))
    for source, part in df.groupby("source"):
        ax.plot(part["threshold"], part["miou"], marker="o", ms=3, label="CAM + PCM" if source == "pcm" else "CAM")
    if chosen is not None:
        ax.axvline(chosen, color="grey", ls=":", lw=1, label=f"used: {chosen:g}")
    ax.set_xlabel("background score")
    ax.set_ylabel("pseudo-label mIoU % (bg + new)")
    ax.set_title(title, fontsize=10)
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
