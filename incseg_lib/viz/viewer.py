"""Notebook 06's views of recorded models: the interactive viewer (one model on validation images) and the
method gallery (every model of a task after its last step, on the same images)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..env import headless
from ..experiment import last_step_predictions, model_and_data
from ..results import Record, as_records, display_labels, display_name, final_steps, latest, run_labels
from ..runs import run_rank
from .common import agreement, class_handles, colorize, gallery, legend_below, show, to_rgb


def _viewer_title(rec: Record, label: str) -> str:
    """``SMiB (5/class) on shapes 15-1 overlapped, after step 5 (the last): mIoU 73.4%``."""
    miou = rec.miou_all
    return (
        f"{label} on {rec.dataset} {rec.task} {rec.setting}, after step {rec.step}: "
        f"mIoU {'n/a' if miou is None else f'{100 * miou:.1f}%'}"
    )


def results_viewer(records: Iterable[Mapping], images: Sequence[int] = (0, 1, 2), device="cpu", data_root: str = ""):
    """Predictions of any recorded model: pick dataset / task / setting / method / step, see its gallery.

    With ipywidgets in an interactive kernel: five drop-downs (the method's choices are display
    labels such as ``SMiB (5/class)``, one per run, so each memory size can be picked, and first
    :data:`EVERY_METHOD`, which draws :func:`method_gallery` of the chosen task and step); each choice
    loads the record's checkpoint (:func:`incseg_lib.experiment.model_and_data`) and draws image |
    ground truth | prediction for ``images`` of the evaluation split. Returns the widget (already
    displayed) after rendering the first choice.

    Without ipywidgets it draws one static gallery instead, of the newest record whose checkpoint
    can be loaded, titled with the method's display label (memory size included), task, step and
    mIoU, and returns that figure. In headless runs (:func:`incseg_lib.env.headless`: the suite)
    it draws nothing and says so: :func:`method_galleries` compares the methods there.
    ``data_root`` overrides where the records' validation images are read from.
    """
    try:
        import ipywidgets as widgets
    except ImportError:  # the static gallery does without
        widgets = None

    recs = [r for r in latest(records) if r.checkpoint and r.eval_protocol == "full"]
    recs = sorted(recs, key=lambda r: (r.created_ns, r.file))
    label_of = {id(r): label for r, label in zip(recs, run_labels(recs))}

    def say(text: str):
        print(text)
        return widgets.HTML(text) if widgets is not None else None

    def show_one(rec):
        """The gallery of ``rec``, or None after saying why it cannot be shown."""
        try:
            model, data, palette = model_and_data(rec, data_root)
        except (OSError, ValueError, KeyError, RuntimeError) as e:  # missing/corrupt checkpoint, data moved ...
            print(f"cannot show {Path(rec.file or '?').name} ({label_of[id(rec)]} step {rec.step}): {e}")
            return None
        idx = [i for i in images if i < len(data)]
        return gallery(model, data, idx, palette, device=device, title=_viewer_title(rec, label_of[id(rec)]))

    if not recs:
        return say("no record with a checkpoint to show")
    if headless():  # papermill: a widget round-trip can hang, and one arbitrary model compares nothing
        print(
            "The viewer is interactive (Jupyter with ipywidgets): there it shows any recorded model. "
            "The galleries above compare every method on the same images."
        )
        return None
    if widgets is None:  # Jupyter without ipywidgets: the newest model, statically
        for rec in reversed(recs):
            fig = show_one(rec)
            if fig is not None:
                return fig
        return say("none of the records' checkpoints can be shown (see the lines above)")

    def show_all(chosen: list[dict]):
        """Every method's model of one task and step on the same images, or None after saying why."""
        try:
            data = last_step_predictions(sorted(chosen, key=lambda r: run_rank(r.method)), images, data_root, device)
        except ValueError as e:
            print(e)
            return None
        return method_gallery(data, title=f"{data['title']}, step {chosen[0]['step']}: every method on the same images")

    return _dropdown_viewer(
        widgets, recs, lambda r, f: label_of[id(r)] if f == "method" else str(r[f]), show_one, show_all=show_all
    )


#: The method drop-down's first choice: every method of the chosen task and step, on the same images.
EVERY_METHOD = "every method"


def _dropdown_viewer(widgets, recs: list[Record], value, show, show_all=None):
    """Five linked drop-downs (dataset, task, setting, method, step) over ``recs`` and an output area
    where ``show(record)`` draws the chosen one; ``value(record, field)`` is what a drop-down lists.
    With ``show_all(records)`` the method drop-down starts with :data:`EVERY_METHOD`, which draws
    every method's record of the chosen step (one per checkpoint). Displays the widget and returns it."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    fields = ("dataset", "task", "setting", "method", "step")
    boxes = {f: widgets.Dropdown(description=f, layout=widgets.Layout(width="260px")) for f in fields}
    out = widgets.Output()
    busy = [False]  # set while refresh() changes the boxes, so their observers do not redraw

    def matching(upto: int) -> list[dict]:
        return [
            r
            for r in recs
            if all(value(r, f) == str(boxes[f].value) or boxes[f].value == EVERY_METHOD for f in fields[:upto])
        ]

    def refresh(level: int = 0) -> None:
        if busy[0]:
            return
        busy[0] = True
        try:
            for k in range(level, len(fields)):
                opts = {value(r, fields[k]) for r in matching(k)}
                opts = sorted(opts, key=lambda o: (len(o), o) if fields[k] == "step" else (o.lower(), o))
                if fields[k] == "method" and show_all is not None and len(opts) > 1:
                    opts = [EVERY_METHOD, *opts]
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
                every = boxes["method"].value == EVERY_METHOD
                fig = show_all(list({str(r.checkpoint): r for r in chosen}.values())) if every else show(chosen[-1])
                if fig is not None:  # display, not plt.show(fig): that is no backend's signature
                    display(fig)
                    plt.close(fig)

    for k, f in enumerate(fields):
        boxes[f].observe(lambda change, k=k: refresh(k + 1), names="value")
    refresh(0)
    ui = widgets.VBox([widgets.HBox([boxes[f] for f in fields]), out])
    display(ui)
    return ui


def method_gallery(data: dict, title: str = ""):
    """Every model of one task after its last step on the same validation images: a column per
    image; rows image, ground truth, then one per model labelled with its display name and its
    mIoU (all) after the last step. A prediction that is background everywhere says so in the
    panel. The data: :func:`incseg_lib.experiment.last_step_predictions`.
    """
    import textwrap

    import matplotlib.pyplot as plt

    recs, n = as_records(data["records"]), len(data["images"])
    labels = display_labels(recs)
    rows = ["image", "ground truth"] + [
        f"{lab}\nall {100 * r.miou_all:.1f} %" if r.miou_all is not None else lab for lab, r in zip(labels, recs)
    ]
    size = (1.7 * n + 1.8, 1.45 * len(rows) + 1.4)
    fig, axes = plt.subplots(len(rows), n, figsize=size, squeeze=False, layout="constrained")
    for j in range(n):
        masks = [data["truth"][j]] + [p[j] for p in data["preds"]]
        pics = [to_rgb(data["images"][j])] + [colorize(m, data["palette"]) for m in masks]
        for i, (ax, pic) in enumerate(zip(axes[:, j], pics)):
            ax.imshow(pic)
            ax.set_xticks([])
            ax.set_yticks([])
            if i >= 2 and not np.asarray(masks[i - 1]).any():
                ax.text(0.5, 0.5, "all\nbackground", transform=ax.transAxes, ha="center", va="center",
                        color="white", fontsize=9)  # fmt: skip
        axes[0, j].set_title(f"image {j + 1}", fontsize=10)
    for ax, name in zip(axes[:, 0], rows):
        ax.set_ylabel(name, fontsize=10, rotation=0, ha="right", va="center")
    title = title or f"{data['title']}: every method after the last step, on the same images"
    fig.suptitle(textwrap.fill(title, int(11 * size[0])), fontsize=11)  # about 11 characters per inch at 11 pt
    shown = list(data["truth"]) + [m for p in data["preds"] for m in p]
    legend_below(fig, class_handles(shown, data["palette"], data["class_names"]), ncol=4, title="classes")
    return fig


def method_gallery_reading(data: dict) -> str:
    """What :func:`method_gallery` shows, from its own data: per model the share of the shown pixels
    of step 0's classes it still labels as the ground truth does (the old classes kept) and of all
    labelled pixels; the models in that order."""
    truth = data["truth"]
    has_old = np.isin(np.concatenate([np.asarray(t).ravel() for t in truth]), data["old"]).any()
    rows = [
        (agreement(pred, truth, data["old"]), agreement(pred, truth), lab)
        for lab, pred in zip(display_labels(data["records"]), data["preds"])
    ]
    rows.sort(key=lambda x: -np.nan_to_num(x[0], nan=-1))
    if not has_old:
        return (
            "What this figure shows: no pixel of step 0's classes in these images; pixels labelled as the "
            "ground truth: " + ", ".join(f"{lab} {100 * acc:.0f} %" for _, acc, lab in rows) + "."
        )
    parts = [f"{lab} {100 * k:.0f} % (all pixels {100 * acc:.0f} %)" for k, acc, lab in rows]
    return (
        f"What this figure shows: pixels of step 0's classes on these {len(truth)} images that each model still "
        f"labels as the ground truth does, most first: {', '.join(parts)}."
    )


def method_galleries(records: Iterable[Mapping], images: Sequence[int] = (0, 1, 2), data_root: str = "", device="cpu"):
    """:func:`method_gallery` for every incremental task of ``records``, each followed by its reading
    (:func:`method_gallery_reading`), drawn in order: one model per checkpoint (a model another
    notebook re-evaluated is shown once), in the tables' order. Models whose checkpoint is not on
    this machine are named, not drawn. Returns the figures.
    """
    groups: dict[tuple, dict[str, dict]] = {}
    for r in sorted(final_steps(records), key=lambda r: -r.created_ns):  # newest first: it stays
        one = groups.setdefault((r.dataset, r.task, r.setting), {})
        one.setdefault(str(r.checkpoint or id(r)), r)
    figs = []
    for group in sorted(groups):
        recs = sorted(groups[group].values(), key=lambda r: (run_rank(r.method), r.created_ns))
        try:
            data = last_step_predictions(recs, list(images), data_root, device)
        except ValueError as e:
            print(f"{' '.join(group)}: {e}")
            continue
        figs.append(method_gallery(data))
        show(figs[-1], method_gallery_reading(data))
        for rec, why in data["missing"]:
            print(f"  not shown: {display_name(rec.method)} ({why})")
    return figs
