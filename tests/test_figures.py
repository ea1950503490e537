"""The figures of notebooks 01, 03 and 06 (and the tables behind them) read on their own: a title saying
what is compared, labelled axes with units, ticks that do not overlap, text of 8 pt or more, a legend
for every colour, classes named where shapes are shown, display names for methods (never a run code),
and no empty category slot that reads as a zero."""

import re
import sys
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from incseg_lib import results, viz  # noqa: E402
from incseg_lib.exemplars import Exemplar, ExemplarMemory, ReplayConfig  # noqa: E402

from .helpers.records import make_record  # noqa: E402

RUN_CODE = re.compile(r"\d+ep|-r18-|\dit-|\dpx|\dpc-|class-balanced")
CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow"]
PALETTE = np.array([(0, 0, 0)] + [(25 * k, 255 - 20 * k, 40 + 15 * k) for k in range(1, len(CLASSES))], np.uint8)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------------- what every figure must satisfy
def _texts(fig) -> list[Text]:
    """Every visible, non-empty text of ``fig`` (titles, labels, tick labels, legends, annotations)."""
    fig.canvas.draw()
    hidden = {  # tick and axis labels of image axes turned off are not drawn
        id(t)
        for ax in fig.get_axes()
        if not ax.axison
        for t in [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label]
    }
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def _all_text(fig) -> str:
    return "\n".join(t.get_text() for t in _texts(fig))


def _check_common(fig) -> None:
    """No run code, nothing under 8 pt, no tick label overlapping its neighbour."""
    texts = _texts(fig)
    codes = [t.get_text() for t in texts if RUN_CODE.search(t.get_text())]
    assert not codes, f"internal run codes in the figure: {codes}"
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 8]
    assert not small, f"text under 8 pt: {small[:5]}"
    renderer = fig.canvas.get_renderer()
    for ax in [ax for ax in fig.get_axes() if ax.axison]:
        for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
            boxes = [t.get_window_extent(renderer) for t in ticks if t.get_visible() and t.get_text().strip()]
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    assert not boxes[i].overlaps(boxes[j]), f"overlapping tick labels on {ax.get_title()!r}"


def _legend_labels(fig) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.get_axes() if ax.get_legend() is not None]
    for sub in getattr(fig, "subfigs", []):
        legends += list(sub.legends)
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def _plots(fig):
    """The axes that carry quantities (not images, not colour bars)."""
    return [ax for ax in fig.get_axes() if not ax.images and ax.get_label() != "<colorbar>"]


# ---------------------------------------------------------------------- records and data made by hand
def _rec(method, step, old, new, all_, task="15-5", created=0, iou=None, setting="overlapped", **kw):
    iou = iou or {"background": old, "aeroplane": old, "bicycle": old, "cat": new}
    return make_record(method, step, old, new, all_, task=task, setting=setting, created=created, iou=iou,
                       notebook="02_x", **kw)  # fmt: skip


def _smib(step, old, size, task="15-1", **kw):
    replay = {"budget": size, "mode": "per-class", "strategy": "class-balanced", "share": 0.5}
    return _rec("smib", step, old, 0.3, old - 0.05, task=task, variant=f"{size}pc-class-balanced", replay=replay, **kw)


def _study() -> list[dict]:
    """15-1 with FT, MiB and SMiB at 1 and 5 exemplars per class; 15-5 with FT, MiB and MiB+DI."""
    recs = [_rec("step0", 0, 0.8, None, 0.8, task=t) for t in ("15-1", "15-5")]
    for s in range(1, 6):
        recs += [
            _rec("ft", s, 0.5 - 0.08 * s, 0.1, 0.4 - 0.07 * s, task="15-1"),
            _rec("mib", s, 0.78 - 0.05 * s, 0.3, 0.7 - 0.05 * s, task="15-1"),
            _smib(s, 0.78 - 0.01 * s, 1),
            _smib(s, 0.79 - 0.01 * s, 5),
        ]
    recs[-1]["iou"] = {"background": 0.8004, "aeroplane": 0.1, "bicycle": 0.9, "cat": 0.3}  # forgets -0.04 points
    syn = {"images": 15, "settings": {"aggregation": "lse", "images_per_class": 1, "resolution": 64}}
    recs += [
        _rec("ft", 1, 0.05, 0.6, 0.2),
        _rec("mib", 1, 0.75, 0.5, 0.7),
        _rec("mib+di", 1, 0.76, 0.5, 0.71, variant="di-1pc-60+30it-64px", synthetic=syn),
        _rec("ft-s", 1, 0.05, 0.4, 0.1, variant="seam-r18-os8-step0-8ep-t0.26", weak={"seam": {"bg_threshold": 0.26}}),
    ]
    return recs


class _Data:
    """A tiny segmentation dataset: square images, masks with two classes each, VOC-like names."""

    def __init__(self, n=8, size=24):
        rng = np.random.default_rng(0)
        self.info = SimpleNamespace(
            class_names=CLASSES, palette=PALETTE, display_palette=PALETTE, has_background=True, num_classes=11
        )
        self.images = [torch.as_tensor(rng.integers(0, 255, (3, size, size)), dtype=torch.uint8) for _ in range(n)]
        self.masks = []
        for i in range(n):
            m = np.zeros((size, size), np.int64)
            m[2:10, 2:10] = 1 + i % 10
            m[12:20, 12:20] = 1 + (i + 3) % 10
            m[10, :] = 255
            self.masks.append(m)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i].float() / 255, torch.as_tensor(self.masks[i])

    def read_image(self, i):
        return self.images[i]

    def read_mask(self, i):
        return self.masks[i]


class _Model(torch.nn.Module):
    def forward(self, x):
        return {"out": torch.nn.functional.one_hot(torch.full(x.shape[-2:], 3), 11).permute(2, 0, 1)[None].float()}


# ---------------------------------------------------------------------- notebook 01
def test_sample_grid_names_the_classes_of_each_pair_and_no_title_covers_an_image():
    data = _Data()
    fig = viz.show_samples(data, range(8), PALETTE, CLASSES)
    assert fig._suptitle is not None and fig._suptitle.get_text()
    text = _all_text(fig)
    for m in data.masks:  # every pair titled with the classes it shows
        assert all(CLASSES[c] in text for c in np.unique(m) if 0 < c < 255)
    assert set(_legend_labels(fig)) >= {CLASSES[c] for m in data.masks for c in np.unique(m) if c < 255}
    renderer = fig.canvas.get_renderer()
    images = [ax.get_window_extent(renderer) for ax in fig.get_axes() if ax.images]
    for t in _texts(fig):
        if t.get_text() in {*CLASSES, "void"} or t in fig.legends[0].get_texts():
            continue
        box = t.get_window_extent(renderer)
        assert not any(box.overlaps(img) for img in images), f"{t.get_text()!r} covers an image"
    _check_common(fig)


def test_prediction_gallery_is_titled_and_names_the_classes():
    data = _Data(3)
    fig = viz.gallery(_Model(), data, [0, 1, 2], PALETTE)
    assert fig._suptitle is not None and fig._suptitle.get_text()
    assert [ax.get_title() for ax in fig.get_axes()[:3]] == ["image", "ground truth", "prediction"]
    legend = set(_legend_labels(fig))
    assert {"bird"} | {CLASSES[c] for m in data.masks[:3] for c in np.unique(m) if c < 255} <= legend | {"void"}
    assert CLASSES[data.masks[1][3, 3]] in fig.get_axes()[3].get_ylabel()  # the row names its classes
    _check_common(fig)


def test_loss_curves_label_their_axes_and_every_run():
    fig = viz.loss_curves({"resnet18 lr=0.05 bs=8": {"loss": [3, 2, 1]}, "resnet18 lr=0.01 bs=8": {"loss": [3, 2.5]}})
    (ax,) = _plots(fig)
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() and ax.get_title()
    assert set(_legend_labels(fig)) == {"resnet18 lr=0.05 bs=8", "resnet18 lr=0.01 bs=8"}
    _check_common(fig)


def test_iou_bars_name_the_model_and_label_classes_and_percent():
    rec = _rec("offline", 0, 0.6, None, 0.61, setting="offline", lr=0.05, batch_size=8)
    fig = viz.iou_bars(rec)
    (ax,) = _plots(fig)
    assert "%" in ax.get_xlabel() and ax.get_ylabel() == "class"
    assert "61.0%" in ax.get_title() and "lr 0.05" in ax.get_title()
    _check_common(fig)


# ---------------------------------------------------------------------- notebook 03


def test_memory_curves_have_one_slot_per_size_a_shared_axis_from_zero_and_one_legend():
    recs = _study() + [
        _rec(
            "ft+mem",
            5,
            0.5,
            0.2,
            0.45,
            task="15-1",
            variant=f"{b}pc-class-balanced",
            replay={"budget": b, "mode": "per-class"},
        )
        for b in (1, 5)
    ]
    frame = results.miou_by_memory(recs, "voc", "15-1", "overlapped")
    assert set(frame["method"]) == {"MiB", "SMiB", "FT + memory"}
    fig = viz.memory_curves(frame, title="15-1 overlapped")
    axes = _plots(fig)
    assert len(axes) == 3
    for ax in axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "5"]  # the sizes run, not log decades
        assert ax.get_xlabel() == "exemplars per class" and ax.get_title()
        assert ax.get_ylim() == (0, 100)  # shared and from 0: a point of mIoU does not look steep
        assert ax.get_legend() is None
    assert "%" in axes[0].get_ylabel()
    assert "15-1 overlapped" in fig._suptitle.get_text()
    assert set(_legend_labels(fig)) == {"SMiB", "FT + memory", "MiB, no memory"}  # one figure-level legend
    _check_common(fig)


def test_exemplar_gallery_shows_every_class_with_its_count_and_a_legend():
    data = _Data(12)
    mem = ExemplarMemory(ReplayConfig(budget=2))
    mem.items = [Exemplar(i, f"img_{i:05d}", 1 + i % 10, 0, list(range(11))) for i in range(12)]  # 2 for 2 classes
    fig = viz.exemplar_gallery(mem, data, title="15-5 overlapped, SMiB (2/class)")
    text = _all_text(fig)
    assert "img_" not in text  # titled by class, not by file name
    assert all(f"{CLASSES[c]}" in text for c in range(1, 11))  # every class of the memory, not the first 8
    assert "12 images in memory, 1-2 per class for 10 classes" in text
    assert "aeroplane: 2 stored" in text and "bird: 1 stored" in text  # counts differ: each class says its own
    kept = {CLASSES[c] for m in data.masks for c in np.unique(m) if 0 < c < 255}
    assert set(_legend_labels(fig)) >= kept
    _check_common(fig)


def test_memory_table_keeps_apart_runs_of_one_memory_size():
    recs = _study() + [_smib(5, 0.7, 5, share=0.25)]
    recs[-1]["replay"] = {**recs[-1]["replay"], "share": 0.25}
    recs[-1]["variant"] = "5pc-class-balanced-share0.25"
    table = results.memory_table(recs)
    assert ("SMiB", "1") in table.index and ("MiB", "-") in table.index
    assert ("SMiB (replay share 0.5)", "5") in table.index and ("SMiB (replay share 0.25)", "5") in table.index


# ---------------------------------------------------------------------- notebook 06
def test_display_labels_live_in_results_and_runs_keep_one_label_across_tasks():
    from incseg_lib import report

    assert report.row_labels is results.display_labels
    recs = [_smib(5, 0.7, 1), _smib(1, 0.7, 1, task="15-5"), _smib(5, 0.7, 5)]
    assert results.run_labels(recs) == ["SMiB (1/class)", "SMiB (1/class)", "SMiB (5/class)"]
    assert results.display_labels(recs, shown_elsewhere=("memory", "selection")) == ["SMiB #1", "SMiB #2", "SMiB"]
    table = results.incremental_table(_study())
    assert not [m for m in table.index if RUN_CODE.search(m)]
    assert {"MiB+DI", "FT-S", "SMiB (1/class)", "SMiB (5/class)"} <= set(table.index)
    assert results.display_name("mib") == "MiB"


def test_comparison_bars_one_panel_per_task_with_only_the_methods_that_ran():
    table = results.incremental_table(_study())
    fig = viz.comparison_bars(table)
    axes = _plots(fig)
    assert len(axes) == 2
    ran = {
        "voc 15-1 overlapped": ["FT", "MiB", "SMiB (1/class)", "SMiB (5/class)"],
        "voc 15-5 overlapped": ["FT", "FT-S", "MiB", "MiB+DI"],
    }
    for ax in axes:
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == ran[ax.get_title()]  # no slot for a method that did not run on this task
        assert len(ax.patches) == 3 * len(ticks)
        assert "%" in ax.get_ylabel() and ax.get_xlabel()
        assert [round(y) for y in ax.get_yticks()] == [0, 20, 40, 60, 80, 100]
        assert ax.get_window_extent().height / fig.dpi >= 2.5  # inches: readable, not a 90-pixel strip
    assert set(_legend_labels(fig)) == {"old classes (step 0)", "new classes", "all classes"}
    assert fig._suptitle.get_text()
    _check_common(fig)


def test_forgetting_heatmap_one_row_per_memory_size_no_minus_zero_and_a_stated_colour_cap():
    forgot = results.forgetting(_study(), "voc", "15-1", "overlapped")
    assert list(forgot.index) == ["FT", "MiB", "SMiB (1/class)", "SMiB (5/class)"]
    assert not (np.signbit(forgot.to_numpy()) & (forgot.to_numpy() == 0)).any()  # no -0.0 in the table
    fig = viz.iou_heatmap(
        forgot, title="forgetting per old class", cmap="RdBu_r", vmin=-50, vmax=50, label="IoU after - before (points)"
    )
    ax = fig.get_axes()[0]
    cells = [t.get_text() for t in ax.texts]
    assert "0" in cells and not {"-0", "−0", "-0.0"} & set(cells)
    assert ax.get_xlabel() == "class" and ax.get_ylabel() == "method" and ax.get_title()
    bar_label = fig.get_axes()[1].get_ylabel()
    assert "capped at ±50" in bar_label  # 70 points of FT's forgetting is beyond the colours
    _check_common(fig)


def test_step_curves_one_line_per_run_on_a_full_axis():
    curves = results.miou_by_step(_study(), "voc", "15-1", "overlapped")
    fig = viz.step_curves(curves, title="15-1 overlapped: mIoU of all seen classes")
    (ax,) = _plots(fig)
    assert set(_legend_labels(fig)) == {"FT", "MiB", "SMiB (1/class)", "SMiB (5/class)"}
    assert "%" in ax.get_ylabel() and "step" in ax.get_xlabel() and ax.get_title()
    assert ax.get_ylim() == (0, 100)
    _check_common(fig)


def test_static_viewer_names_the_method_with_its_memory(monkeypatch, capsys):
    data = _Data(3)
    recs = [{**r, "checkpoint": "ckpt.pt", "created_ns": k} for k, r in enumerate(_study()) if r["task"] == "15-1"]
    monkeypatch.setattr(viz.viewer, "model_and_data", lambda rec, root="": (_Model(), data, PALETTE))
    monkeypatch.setenv("INCSEG_PROGRESS", "0")  # headless (the suite): the galleries compare, the viewer says so
    assert viz.results_viewer(recs, images=[0, 1]) is None
    assert "galleries above compare every method" in capsys.readouterr().out
    monkeypatch.setenv("INCSEG_PROGRESS", "1")
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets raises ImportError
    fig = viz.results_viewer(recs, images=[0, 1])
    title = fig._suptitle.get_text()
    assert title.startswith("SMiB (5/class) on voc 15-1 overlapped, after step 5")  # the newest record
    assert "mIoU" in title and "%" in title
    _check_common(fig)


def test_training_curves_label_every_panel_and_term():
    curves = {
        "MiB": {
            "epochs": [1, 2, 3, 4],
            "steps": [1, 1, 2, 2],
            "step_ids": [1, 2],
            "terms": {"loss": [3.0, 2.0, 2.5, 1.5], "ukd": [0.2, 0.3, 0.25, 0.2]},
            "miou": {"old": [50.0, 40.0], "new": [20.0, 10.0], "all": [40.0, 30.0]},
        }
    }
    fig = viz.training_curves(curves, title="shapes 15-1: loss terms and mIoU")
    top, bottom = fig.axes[0], fig.axes[1]
    assert fig._suptitle.get_text() == "shapes 15-1: loss terms and mIoU" and top.get_title() == "MiB"
    assert top.get_ylabel() and top.get_xlabel() and bottom.get_ylabel() == "mIoU (%)"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"total", "unbiased distillation", "old classes (step 0)", "new classes", "all classes"} <= set(labels)
    assert all("10^" not in t.get_text() for t in top.get_yticklabels())  # plain numbers on the log axis
    with pytest.raises(ValueError, match="no incremental records"):
        viz.training_curves({})


def test_readings_say_when_a_figure_contradicts_the_mechanism():
    """The cases a reader met unremarked: PLOP further from the old model than MiB, PCM below CAM,
    images without the BN term transferring better, a step whose loss rose."""
    pod = {"distance": {"step 0": 0.0, "mib": 91.0, "plop": 247.0}}
    assert "the opposite of what Local POD exists to do" in viz.pod_reading(
        pod
    ) and "247 against 91" in viz.pod_reading(pod)
    pod["distance"]["plop"] = 40.0
    assert "stay closer to the old model's than MiB's" in viz.pod_reading(pod)

    sweep = [
        {"source": s, "threshold": t, "miou": m} for t in (0.2, 0.3, 0.4) for s, m in (("cam", 40 + t), ("pcm", 30 + t))
    ]
    text = viz.sweep_reading(sweep)
    assert "above CAM's at 0 of 3" in text and "opposite of what PCM is for" in text
    sweep = [dict(r, miou=r["miou"] + (20 if r["source"] == "pcm" else 0)) for r in sweep]
    assert "at 3 of 3" in viz.sweep_reading(sweep) and "opposite" not in viz.sweep_reading(sweep)

    curves = {
        "PLOP": {"terms": {"loss": [330.0, 320.0, 320.0, 347.0]}, "steps": [2, 2, 3, 3], "step_ids": [2, 3]},
        "MiB": {"terms": {"loss": [2.0, 1.0, 2.0, 1.5]}, "steps": [2, 2, 3, 3], "step_ids": [2, 3]},
    }
    assert viz.training_reading(curves).startswith(
        "What this figure shows: the total loss did not come down within PLOP step 3 (320 to 347)"
    )
    curves.pop("PLOP")
    assert "came down" in viz.training_reading(curves)


def test_transfer_description_says_when_the_bn_term_did_not_help():
    from incseg_lib.experiment import describe_transfer

    def result(hit, n):
        return {"overall": {"recognised": hit, "images": n, "rate": hit / n}, "per_class": {1: {"rate": hit / n}}}

    checks = {
        "class_names": ["background", "disc"],
        "models": ["inverted", "independent"],
        "memories": {
            "LSE synthesis": {"inverted": result(15, 15), "independent": result(9, 15)},
            "LSE synthesis, no BN term": {"inverted": result(15, 15), "independent": result(15, 15)},
        },
    }
    text = describe_transfer(checks)
    assert "recognises more images (15/15 against 9/15 with it)" in text and text.count("Without the BN") == 1
    assert "the opposite of DeepInversion's finding" in text


def _gallery_data():
    """Two 4x4 images of a 15-x task: class 1 (old, step 0) on the top half, class 9 (new) bottom right."""
    truth = torch.zeros(4, 4, dtype=torch.int64)
    truth[:2] = 1
    truth[2:, 2:] = 9
    ft = truth.clone()
    ft[:2] = 9  # the old class painted as the new one: forgotten
    mib = truth.clone()
    mib[0, :2] = 0  # a quarter of the old pixels lost to background
    recs = [_rec("ft", 1, 0.05, 0.6, 0.2), _rec("mib", 1, 0.7, 0.5, 0.65), _rec("joint", 1, 0.8, 0.8, 0.8)]
    return {
        "images": [torch.rand(3, 4, 4), torch.rand(3, 4, 4)],
        "truth": [truth, truth],
        "preds": [[ft, ft], [mib, mib], [torch.zeros(4, 4, dtype=torch.int64)] * 2],
        "records": recs,
        "missing": [],
        "palette": PALETTE,
        "class_names": CLASSES,
        "old": list(range(1, 9)),
        "title": "voc 15-5 overlapped",
    }


def test_method_gallery_shows_every_model_on_the_same_images_with_its_miou():
    fig = viz.method_gallery(_gallery_data())
    _check_common(fig)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["image", "ground truth", "FT\nall 20.0 %", "MiB\nall 65.0 %", "Joint\nall 80.0 %"]
    assert "voc 15-5 overlapped" in fig.get_suptitle() and "same images" in fig.get_suptitle()
    assert sum("all\nbackground" in t.get_text() for t in _texts(fig)) == 2  # the empty prediction says so
    assert {"background", "aeroplane", "chair"} <= set(_legend_labels(fig))  # class 9 is chair
    assert len([ax for ax in fig.axes if ax.images]) == 2 * 5


def test_method_gallery_reading_counts_the_old_pixels_each_model_still_labels_right():
    text = viz.method_gallery_reading(_gallery_data())
    # old pixels: the top half (16 of 32); MiB keeps 12, FT 0, the all-background "Joint" 0
    assert "on these 2 images" in text
    assert text.index("MiB 75 %") < text.index("FT 0 %")
    assert "FT 0 % (all pixels 50 %)" in text and "MiB 75 % (all pixels 88 %)" in text


def test_more_readings_name_the_contradictions_readers_met():
    """SDR's new prototypes collapsed onto background, CAM all 0 while PCM lights up, the synthetic
    memory above the real one, and a method losing the old classes over the steps."""
    first = {"prototypes": {0: (0.0, 0.0), 1: (4.0, 0.0), 2: (0.0, 4.0), 3: (4.0, 4.0)}}
    last = {"prototypes": {**first["prototypes"], 9: (0.3, 0.2)}, "points": np.zeros((0, 2)), "labels": []}
    data = {"panels": [first, last], "class_names": CLASSES}
    text = viz.latent_reading(data)
    assert "chair 0.4 from background's prototype" in text and "typically 4.0 apart" in text
    assert "Chair sits on top of background" in text and "SDR's repulsion is meant to push" in text
    last["prototypes"][9] = (-3.0, -3.0)
    assert "stands apart from background" in viz.latent_reading(data)
    # no background prototype (the demo's SDR keeps none): the mean of background's pixels; new ones together
    last["prototypes"] = {c: p for c, p in last["prototypes"].items() if c != 0} | {10: (-3.1, -3.0)}
    last["points"], last["labels"] = np.array([[9.0, 9.0], [11.0, 9.0], [0.0, 0.0]]), np.array([0, 0, 1])
    text = viz.latent_reading(data)
    assert "from the mean of background's pixels" in text and "0.1 from each other" in text
    assert "The 2 new prototypes sit on top of each other" in text and "Chair" not in text
    last["prototypes"][10] = (-4.5, -3.0)  # 1.5 apart: crowded (38 % of 4.0), not on top
    assert "The 2 new prototypes crowd together (38% of the old classes' typical distance)" in viz.latent_reading(data)

    zero, lit = np.zeros((4, 4)), np.zeros((4, 4))
    lit[:2] = 0.9  # half the image above the background score
    examples = [{"cam": zero, "pcm": lit}] * 3 + [{"cam": lit, "pcm": lit}]
    text = viz.seam_gallery_reading(examples, 0.26)
    assert "in 3 of the 4 images the CAM has no positive activation" in text
    assert "3 of them light up (50 %, 50 %, 50 % of the image above the background score 0.26)" in text
    assert "all 4 images" in viz.seam_gallery_reading(examples[3:] * 4, 0.26)

    cols = [("shapes", "15-5", "overlapped", k) for k in ("old", "new", "all")]
    import pandas as pd

    table = pd.DataFrame([[77.9, 66.6, 75.2], [75.1, 47.4, 68.5]], index=["MiB+DI (LSE)", "SMiB (1/class)"],
                         columns=pd.MultiIndex.from_tuples(cols))  # fmt: skip
    (line,) = results.synthetic_vs_real_lines(table)
    assert line.startswith("shapes 15-5 overlapped: MiB+DI (LSE) keeps 2.8 points more") and "77.9 against 75.1" in line
    assert "at least as well as the same number of real ones" in line
    table.iloc[0, 0] = 70.0
    assert "keeps 5.1 points less" in results.synthetic_vs_real_lines(table)[0]

    truth = torch.zeros(4, 4, dtype=torch.int64)
    truth[:2] = 1  # aeroplane, a step-0 class
    gone = torch.zeros(4, 4, dtype=torch.int64)
    pred = {
        "truth": [truth],
        "class_names": CLASSES,
        "added": [CLASSES[1:9], ["chair"], ["cow"]],
        "steps": {"ft": [[truth], [truth], [gone]], "mib": [[truth], [truth], [truth]]},
    }
    text = viz.steps_reading(pred)
    assert "after step 0 and after step 2: FT 100 % to 0 %, MiB 100 % to 100 %" in text
    assert "FT loses most of them" in text and "MiB loses" not in text


def test_pod_profiles_tick_whole_positions_of_a_small_map():
    prof = {"step 0": np.arange(5.0), "mib": np.arange(5.0) + 1, "plop": np.arange(5.0) + 2}
    data = {"image": torch.rand(3, 8, 8), "rows": prof, "cols": prof, "stage": 3,
            "distance": {"mib": 5.0, "plop": 10.0}}  # fmt: skip
    fig = viz.pod_profiles(data)
    _check_common(fig)
    fig.canvas.draw()
    for ax in fig.axes[1:]:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks  # a 5-position map: no 0.5 ticks
    assert "POD distance 10" in " ".join(_legend_labels(fig))


def test_every_comparison_figure_has_a_reading_from_its_own_data():
    import pandas as pd

    steps = pd.DataFrame({0: [82.0, 82.0], 1: [6.0, 77.0], 2: [7.0, 65.0]}, index=["FT", "MiB"])
    text = viz.step_curves_reading(steps)
    assert "from step 0 to step 2: MiB 82 to 65, FT 82 to 7" in text and "FT at step 1 (76 points)" in text

    table = results.incremental_table(_study())
    assert viz.comparison_reading(table).startswith("What this figure shows: voc 15-1 overlapped: highest on all")

    heat = pd.DataFrame({"aeroplane": [0.0, 80.0], "cat": [60.0, 55.0]}, index=["FT", "MiB"])
    assert "FT 30 on average, lowest on aeroplane (0)" in viz.heatmap_reading(heat)
    assert "FT forgot 30 points on average, most on cat (60)" in viz.heatmap_reading(heat, what="forgetting")

    rows = [("SMiB", 1, "old", 70.0), ("SMiB", 5, "old", 65.0), ("MiB", 0, "old", 60.0), ("SMiB", 1, "new", 9.0)]
    frame = pd.DataFrame(rows, columns=["method", "exemplars", "part", "mIoU %"])
    text = viz.memory_reading(frame)
    assert "SMiB 70.0 with 1/class to 65.0 with 5/class (without memory: MiB 60.0)" in text
    assert "SMiB kept less with the larger memory" in text

    text = viz.loss_reading({"lr 0.05": {"loss": [5.0, 1.2]}, "lr 0.5": {"loss": [5.0, 7.0]}})
    assert "lr 0.05 5.00 to 1.20, lr 0.5 5.00 to 7.00" in text and "lr 0.5 ended above where it started" in text
    assert "reused" in viz.loss_reading({"a": {"loss": []}})

    rec = make_record("mib", 1, 0.7, all_=0.68, iou={"background": 0.95, "cat": 0.4, "bus": None, "cow": 0.7})
    text = viz.iou_reading(rec)
    assert text.startswith("What this figure shows: mIoU 68.0; highest IoU background 95, cow 70, cat 40;")
    assert text.endswith("lowest cat 40, cow 70, background 95.") and "bus" not in text

    sizes = {"real step-0 objects": [0.1, 0.1], "LSE synthesis": [0.05], "scale-aware synthesis": []}
    text = viz.size_reading(sizes)
    assert "real step-0 objects 10.0 %; LSE synthesis 5.0 % (0.5 times the real median)" in text
    assert "scale-aware synthesis: no object the old model is sure of" in text


def test_prediction_gallery_reading_counts_right_pixels_and_missed_classes():
    data = _Data(2)
    preds = viz.predict_images(_Model(), data, [0, 1])  # the model predicts class 3 (bird) everywhere
    text = viz.gallery_reading(data, [0, 1], preds)
    assert text.startswith("What this figure shows: pixels labelled as the ground truth does, image 0 0 %")
    assert "(misses aeroplane, boat)" in text and "image 1 " in text


def test_the_interactive_viewer_offers_every_method_of_a_task_and_step(monkeypatch):
    pytest.importorskip("ipywidgets")
    recs = [
        {**r, "checkpoint": f"{r['method']}-{r.get('variant', '')}-{r['step']}.pt", "created_ns": k}
        for k, r in enumerate(_study())
        if r["task"] == "15-1"
    ]
    drawn = []
    monkeypatch.setenv("INCSEG_PROGRESS", "1")  # interactive
    monkeypatch.setattr(viz.viewer, "model_and_data", lambda rec, root="": (_Model(), _Data(3), PALETTE))
    monkeypatch.setattr(
        viz.viewer,
        "last_step_predictions",
        lambda chosen, idx, root, device: {"title": "voc 15-1 overlapped", "methods": [r["method"] for r in chosen]},
    )
    monkeypatch.setattr(viz.viewer, "method_gallery", lambda data, title="": drawn.append((data["methods"], title)))
    ui = viz.results_viewer(recs, images=[0])
    dataset, task, setting, method, step = ui.children[0].children
    assert method.options[0] == "every method" and "SMiB (5/class)" in method.options
    method.value = "every method"
    step.value = "5"
    methods, title = drawn[-1]
    assert methods == ["ft", "mib", "smib", "smib"]  # one per model, in the tables' order
    assert title == "voc 15-1 overlapped, step 5: every method on the same images"
