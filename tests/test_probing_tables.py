"""Notebook 07's tables, figures and findings on hand-made records: the probe beside its run per
step, EWF's slider in order of the weight, and the claims of RevisitingCSS and EWF."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from incseg_lib import findings, results, viz  # noqa: E402
from incseg_lib.config import RunConfig  # noqa: E402
from incseg_lib.experiment import probing_plan  # noqa: E402

from .helpers.records import make_record  # noqa: E402


def rec(method, step, old, new=None, task="15-1", **kw):
    return make_record(method, step, old, new, dataset="shapes", task=task, **kw)


RECORDS = [
    rec("step0", 0, 0.80),
    rec("step0|probe", 0, 0.78),
    *[rec("ft", s, 0.80 - 0.15 * s, 0.1) for s in range(1, 6)],
    *[rec("ft|probe", s, 0.75 - 0.03 * s, 0.3) for s in range(1, 6)],
    *[rec("mib", s, 0.78 - 0.03 * s, 0.2) for s in range(1, 6)],
    rec("dft", 5, 0.74, 0.15),
    rec("mib+ewf", 5, 0.70, 0.10),
    *[
        rec(f"mib+ewf|w={w:.2f}", 1, 0.8 - 0.3 * w, 0.1 + 0.4 * w, task="15-5", ewf_w=w, ewf_default=w == 0.49)
        for w in (1.0, 0.0, 0.49, 0.5)
    ],
]


def test_probe_frame_puts_each_probe_under_its_run_with_step_0_shared():
    frame = results.probe_frame(RECORDS, "shapes", "15-1", "overlapped", ["ft", "mib"])
    assert list(frame.index) == ["FT", "FT (probe)", "MiB"]  # MiB was not probed: no probe row
    assert list(frame.columns) == [0, 1, 2, 3, 4, 5]
    assert frame.loc["FT", 0] == pytest.approx(80.0) and frame.loc["FT (probe)", 0] == pytest.approx(78.0)
    assert frame.loc["FT", 5] == pytest.approx(5.0) and frame.loc["FT (probe)", 5] == pytest.approx(60.0)
    assert math.isnan(results.probe_frame(RECORDS, "shapes", "15-1", "overlapped", ["ft"], "new").loc["FT", 0])
    with pytest.raises(ValueError, match="part"):
        results.probe_frame(RECORDS, "shapes", "15-1", "overlapped", ["ft"], "mean")


def test_probe_frame_starts_each_run_from_its_own_step_0():
    """DFT*'s curve starts at its own step 0 (every head pre-allocated), not at the shared one."""
    frame = results.probe_frame([*RECORDS, rec("step0-prealloc", 0, 0.82)], "shapes", "15-1", "overlapped", ["dft"])
    assert list(frame.index) == ["DFT*"]
    assert frame.loc["DFT*", 0] == pytest.approx(82.0) and frame.loc["DFT*", 5] == pytest.approx(74.0)


def test_fusion_frame_orders_the_weights_and_marks_ewfs_own():
    frame = results.fusion_frame(RECORDS, "shapes", "15-5", "overlapped")
    assert list(frame["w"]) == [0.0, 0.49, 0.5, 1.0] and list(frame["default"]) == [False, True, False, False]
    assert frame.loc[0, "old"] == pytest.approx(80.0) and frame.loc[3, "new"] == pytest.approx(50.0)
    assert results.fusion_frame(RECORDS, "shapes", "15-1", "overlapped").empty


def test_probe_and_fusion_figures_label_what_they_compare():
    frame = results.probe_frame(RECORDS, "shapes", "15-1", "overlapped", ["ft", "mib"])
    fig = viz.probe_curves(frame, title="15-1: models against probes")
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() == "old-class mIoU (%)" and ax.get_ylim() == (0, 100)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["FT: the model", "FT: probe of its features", "MiB: the model"]
    lines = ax.get_lines()
    assert lines[0].get_color() == lines[1].get_color() and lines[1].get_linestyle() == "--"
    assert "FT 80 to 5, its probe 78 to 60 (+55 over the model at the end)" in viz.probe_reading(frame)
    plt.close(fig)
    sweep = results.fusion_frame(RECORDS, "shapes", "15-5", "overlapped")
    fig = viz.fusion_curve(sweep, title="15-5: MiB+EWF per weight")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "new-class mIoU (%)" and ax.get_ylabel() == "old-class mIoU (%)"
    assert any("EWF's weight w=0.49" in t.get_text() for t in ax.get_legend().get_texts())
    assert fig.axes[1].get_ylabel() == "weight w of the new model"  # the colour bar
    assert "EWF's own w=0.49: old 65 / new 30" in viz.fusion_reading(sweep)
    assert ax.get_xlim() == (0, 100) and ax.get_ylim() == (0, 100)  # the shapes' slider spans 30 and 40 points
    plt.close(fig)
    # a slider that hardly moves (CamVid 8-1: old 42.6 to 43.0) is drawn around its points, not as one dot
    flat = sweep.assign(old=[42.6, 42.7, 42.8, 43.0], new=[15.7, 16.3, 16.5, 17.6])
    ax = viz.fusion_curve(flat).axes[0]
    assert ax.get_ylim() == pytest.approx((41.6, 44.0)) and ax.get_xlim() == pytest.approx((14.7, 18.6))
    plt.close("all")


def test_probing_findings_follow_the_plan_and_read_the_records():
    plan = probing_plan(RunConfig.from_profile("demo"))
    texts = [f.text for f in findings.probing_findings(plan)]
    assert len(texts) == 8  # 15-1: probe x2, DFT* x2, EWF x2; 10-1 (FT and MiB only): probe x2
    assert texts[0] == "15-1 overlapped: the probe of FT's features keeps more old-class mIoU than FT"
    assert not [t for t in texts if t.startswith("10-1") and ("DFT" in t or "EWF" in t)]
    res = {f.text: f.check(RECORDS) for f in findings.probing_findings({**plan, "tasks": ["15-1"]})}
    holds = {name.split(": ", 1)[1]: r.gap > 0 for name, r in res.items()}
    assert holds == {
        "the probe of FT's features keeps more old-class mIoU than FT": True,  # 60 > 5
        "the probe of FT's features keeps at least half of step 0's old-class mIoU": True,  # 60 >= 40
        "DFT* keeps more old-class mIoU than FT": True,
        "DFT* keeps more old-class mIoU than MiB": True,  # 74 > 63
        "MiB+EWF keeps more old-class mIoU than MiB": True,  # 70 > 63
        "MiB+EWF learns less of the new classes than MiB": True,  # 10 < 20
    }
