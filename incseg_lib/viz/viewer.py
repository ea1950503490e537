"""The interactive results viewer of notebook 06: a record's model on validation images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..env import headless
from ..experiment import model_and_data
from ..results import latest, run_labels
from .common import gallery


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
