"""Notebooks 04 and 05's figures on hand-made inputs (titles, labels, legends, no empty panel, each
row/column naming its class), the transfer check and the found/missed/moved rule."""

import json
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from incseg_lib import viz  # noqa: E402
from incseg_lib.inversion import target_recognised, transfer_check  # noqa: E402
from incseg_lib.seam import count_outcomes, pseudo_label_outcome  # noqa: E402

NAMES = ("background", "disc", "square", "triangle", "star")
PALETTE = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48]], np.uint8)


@pytest.fixture(autouse=True)
def _close_figures():
    """After each test: every text of every figure it drew is at least 8 pt (11 px in the report,
    which shows figures at 100 dpi and their own size), then the figures are closed."""
    yield
    from matplotlib.text import Text

    small = []
    for n in plt.get_fignums():
        fig = plt.figure(n)
        fig.canvas.draw()
        small += [(t.get_text()[:30], t.get_fontsize()) for t in fig.findobj(Text)
                  if t.get_visible() and t.get_text().strip() and t.get_fontsize() < 8]  # fmt: skip
    plt.close("all")
    assert not small, f"text under 8 pt: {small[:5]}"


def _panels(fig):
    """The figure's image/plot axes (colour bars left out)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _legend_texts(fig) -> set[str]:
    texts = {t.get_text() for leg in fig.legends for t in leg.get_texts()}
    for ax in fig.axes:
        if ax.get_legend() is not None:
            texts |= {t.get_text() for t in ax.get_legend().get_texts()}
    return texts


def _assert_no_empty_panel(fig):
    for ax in _panels(fig):
        assert ax.images or ax.lines or ax.patches or ax.collections, f"empty axes {ax.get_title()!r}"


# ---------------------------------------------------------------------- the transfer check
class ConstantSeg(nn.Module):
    """Predicts, at every pixel, the output index written in the image's first pixel (channel 0)."""

    def __init__(self, outputs=5):
        super().__init__()
        self.outputs = outputs
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        k = x[:, 0, 0, 0].round().long()
        logits = torch.zeros(len(x), self.outputs, *x.shape[-2:])
        logits[torch.arange(len(x)), k] = 5.0
        return {"out": logits + 0 * self.dummy}


def test_transfer_check_counts_the_images_whose_prediction_shows_the_target():
    images = torch.zeros(3, 3, 8, 8)
    images[:, 0, 0, 0] = torch.tensor([1.0, 2.0, 3.0])  # the fake model predicts 1, 2, 3
    res = transfer_check(ConstantSeg(), images, targets=[1, 2, 1], class_order=[0, 1, 2, 3, 4])
    assert res["overall"] == {"images": 3, "recognised": 2, "rate": pytest.approx(2 / 3)}
    assert res["per_class"][1] == {"images": 2, "recognised": 1, "rate": 0.5}
    assert res["per_class"][2]["rate"] == 1.0
    assert [r["recognised"] for r in res["per_image"]] == [True, True, False]
    assert res["per_image"][2]["majority"] == 3
    assert res["predictions"].shape == (3, 8, 8)


def test_transfer_check_maps_outputs_to_dataset_ids_and_refuses_mismatches():
    images = torch.zeros(2, 3, 4, 4)
    images[:, 0, 0, 0] = torch.tensor([1.0, 2.0])
    res = transfer_check(ConstantSeg(3), images, [7, 9], class_order=[0, 7, 9])  # output 1 is class 7
    assert res["overall"]["recognised"] == 2
    with pytest.raises(ValueError, match="2 images but 1 targets"):
        transfer_check(ConstantSeg(3), images, [7], class_order=[0, 7, 9])


def test_recognised_means_the_majority_foreground_class_over_the_size_rule():
    pred = np.zeros((10, 10), np.int64)
    pred[:3, :3] = 2  # 9 px
    pred[5:, 5:7] = 1  # 10 px
    assert target_recognised(pred, 1) and not target_recognised(pred, 2)  # 2 is present, not the majority
    assert not target_recognised(pred, 3)  # absent
    assert not target_recognised(pred, 1, min_fraction=0.2)  # 10% of the image < 20%
    pred[pred == 0] = 255  # void never counts as a class
    assert target_recognised(pred, 1)
    assert not target_recognised(np.zeros((4, 4), np.int64), 0)  # background is never a target


# ---------------------------------------------------------------------- found / missed / moved
def _scene():
    truth = np.zeros((10, 10), np.int64)
    truth[0:4, 0:4] = 7  # the new object: 16 px
    truth[6:10, 6:10] = 2  # an old object: 16 px
    return truth


def test_a_label_on_the_object_is_found():
    truth = _scene()
    pseudo = np.where(truth == 7, 7, 0)
    pseudo[0, 0] = 0  # IoU 15/16
    out = pseudo_label_outcome(pseudo, truth, 7, old_classes=[0, 1, 2])
    assert out["outcome"] == "found" and out["iou"] == pytest.approx(15 / 16)


def test_a_label_on_an_old_object_is_moved_and_names_it():
    truth = _scene()
    pseudo = np.zeros_like(truth)
    pseudo[6:10, 6:10] = 7  # all of the old square painted as the new class
    pseudo[0:2, 0:2] = 7  # and a quarter of the new object
    out = pseudo_label_outcome(pseudo, truth, 7, old_classes=[0, 1, 2])
    assert out["outcome"] == "moved" and out["old_class"] == 2
    assert (out["on_old"], out["on_new"]) == (16, 4)


def test_a_label_on_background_only_is_missed_and_void_is_left_out():
    truth = _scene()
    pseudo = np.zeros_like(truth)
    pseudo[4:6, :] = 7  # background between the objects
    assert pseudo_label_outcome(pseudo, truth, 7, old_classes=[0, 2])["outcome"] == "missed"
    truth[4:6, :] = 255  # the same label on void pixels counts nowhere
    out = pseudo_label_outcome(pseudo, truth, 7, old_classes=[0, 2])
    assert out["outcome"] == "missed" and out["iou"] == 0.0 and out["share"] == 0.0
    counts = count_outcomes([out, {"outcome": "found"}, {"outcome": "moved"}, {"outcome": "found"}])
    assert counts == {"found": 2, "missed": 1, "moved": 1, "objects": 4}


# ---------------------------------------------------------------------- notebook 04's figures
def _gallery_data(checked=True):
    rng = np.random.default_rng(0)
    rows = []
    for c, ok in ((1, True), (2, False), (3, True)):
        pseudo = np.zeros((16, 16), np.int64)
        pseudo[4:10, 4:10] = c
        pseudo[0, :4] = 255
        check = np.zeros((16, 16), np.int64)
        check[4:10, 4:10] = c if ok else 4
        real_mask = np.zeros((20, 20), bool)
        real_mask[5:12, 5:12] = True
        rows.append(
            {
                "class_id": c,
                "synthetic": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                "pseudo": pseudo,
                "real": rng.integers(0, 255, (20, 20, 3), dtype=np.uint8),
                "real_mask": real_mask,
                "check": check if checked else None,
                "recognised": ok if checked else None,
                "seen": c if ok else 4,
            }
        )
    return {"rows": rows, "class_names": NAMES, "palette": PALETTE, "checker": "independent model (seed 1)"}


def test_synthetic_gallery_names_the_target_on_every_row_and_keeps_labels_apart_with_a_legend():
    fig = viz.synthetic_gallery(_gallery_data())
    axes = np.asarray(_panels(fig)).reshape(3, 4)  # one row per class, no blank slot
    _assert_no_empty_panel(fig)
    for row, name in zip(axes, ("disc", "square", "triangle")):
        assert name in row[0].get_ylabel()
    titles = [ax.get_title() for ax in axes[0]]
    assert "synthetic image" in titles[1] and "pseudo-label" in titles[2] and "independent" in titles[3]
    assert "real" in titles[0]
    assert axes[1, 3].get_xlabel().startswith("not recognised") and "star" in axes[1, 3].get_xlabel()
    assert axes[0, 3].get_xlabel().startswith("recognised:") and "% of the image" in axes[0, 3].get_xlabel()
    assert {"background", "disc", "square", "triangle", "star", "void"} <= _legend_texts(fig)
    assert fig.get_suptitle()


def test_synthetic_gallery_without_a_check_has_three_columns():
    fig = viz.synthetic_gallery(_gallery_data(checked=False))
    assert len(_panels(fig)) == 9
    _assert_no_empty_panel(fig)


def _fake_memory(tmp_path, batches=2, per_batch=3):
    from torchvision.utils import make_grid

    from incseg_lib.store import atomic_write_png

    (tmp_path / "snapshots").mkdir()
    shots = []
    for it in (1, 10, 20):
        grid = make_grid(torch.rand(per_batch, 3, 12, 12), nrow=per_batch, padding=2, pad_value=1.0)
        atomic_write_png(tmp_path / "snapshots" / f"it-{it:05d}.png", (grid * 255).byte().permute(1, 2, 0).numpy())
        shots.append({"iteration": it, "file": f"snapshots/it-{it:05d}.png"})
    curves = []
    for b in range(batches):
        for it in range(1, 21):
            curves.append(
                {
                    "iteration": it,
                    "total": 50.0 - it + b,
                    "class": 2.0 / it,
                    "bn": 900.0 - it,
                    "tv_l2": 300.0,
                    "l2": 100.0,
                    "adi": 0.0,
                    "target_prob": min(1.0, 0.04 * it + 0.01 * b),
                    "batch": b,
                }
            )
    manifest = {
        "snapshots": shots,
        "config": {"iterations_low": 10, "main": 1.0, "r_feature": 0.05, "tv_l2": 1e-4, "l2": 1e-5, "adi": 0.0},
        "batches": [{"index": b, "targets": [[1], [2], [3]][:per_batch]} for b in range(batches)],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return SimpleNamespace(folder=tmp_path, manifest=manifest, loss_curves=lambda: curves)


def test_emergence_names_each_column_target_and_each_row_iteration(tmp_path):
    fig = viz.inversion_emergence(_fake_memory(tmp_path), NAMES)
    axes = np.asarray(_panels(fig)).reshape(3, 3)  # iterations x images
    _assert_no_empty_panel(fig)
    assert [ax.get_title() for ax in axes[0]] == ["disc", "square", "triangle"]
    labels = [row[0].get_ylabel() for row in axes]
    assert "iteration 1" in labels[0] and "half resolution" in labels[0]
    assert "iteration 20" in labels[2] and "full resolution" in labels[2]
    assert axes[0, 0].images[0].get_array().shape[:2] == (12, 12)  # one image per panel, not the strip


def test_loss_plot_labels_every_line_and_keeps_the_probability_on_its_own_axis(tmp_path):
    fig = viz.inversion_losses(_fake_memory(tmp_path))
    loss_ax, prob_ax = _panels(fig)
    for ax in (loss_ax, prob_ax):
        assert ax.get_xlabel() == "iteration" and ax.get_ylabel() and ax.get_title()
        labels = {t.get_text() for t in ax.get_legend().get_texts()}
        drawn = {ln.get_label() for ln in ax.lines if not ln.get_label().startswith("_")}
        assert drawn and drawn <= labels  # every drawn line is in the legend
        assert len(drawn) == len(ax.lines)  # and no line is unlabelled
    assert "loss" in loss_ax.get_ylabel() and "probability" in prob_ax.get_ylabel()
    assert prob_ax.get_ylim() == (0, 1)
    assert any("BN statistics" in t for t in _legend_texts(fig)) and "total (the sum)" in _legend_texts(fig)
    assert not any("probab" in ln.get_label() for ln in loss_ax.lines)
    assert "loss" not in prob_ax.get_title().split("\n")[0]
    assert fig.get_suptitle()


def _checks():
    def result(hits):
        per = {c: {"images": 1, "recognised": h, "rate": float(h)} for c, h in zip((1, 2, 3), hits)}
        n = sum(hits)
        return {"per_class": per, "overall": {"images": 3, "recognised": n, "rate": n / 3}}

    models = ["inverted step-0 model (seed 0)", "independent step-0 model (seed 1)"]
    return {
        "memories": {
            "LSE synthesis": dict(zip(models, (result([1, 1, 0]), result([1, 0, 0])))),
            "LSE synthesis, no BN term": dict(zip(models, (result([1, 1, 1]), result([0, 0, 0])))),
        },
        "models": models,
        "min_fraction": 0.01,
        "class_names": NAMES,
        "palette": PALETTE,
    }


def test_transfer_bars_label_axes_classes_models_and_memories():
    fig = viz.transfer_bars(_checks())
    per_class, overall = _panels(fig)
    _assert_no_empty_panel(fig)
    for ax in (per_class, overall):
        assert "recognised (%)" in ax.get_ylabel() and ax.get_xlabel() and ax.get_title()
    assert [t.get_text() for t in per_class.get_xticklabels()] == ["disc", "square", "triangle"]
    assert [t.get_text() for t in overall.get_xticklabels()] == ["LSE synthesis", "LSE synthesis, no BN term"]
    assert set(_checks()["models"]) <= _legend_texts(fig)
    assert "2/3" in {t.get_text() for t in overall.texts}  # bars say recognised/images
    assert "majority" in fig.get_suptitle()


def test_transfer_check_in_words_gives_the_counts_of_each_memory():
    from incseg_lib.experiment import describe_transfer

    text = describe_transfer(_checks()).splitlines()
    assert text[0].startswith("LSE synthesis: the independent model recognises 1 of 3 images (33%)")
    assert "the inverted model 2 (67%)" in text[0] and "mostly missed: square, triangle" in text[0]
    assert "0 of 3" in text[1]


# ---------------------------------------------------------------------- notebook 05's figures
def _seam_examples():
    truth = _scene()
    truth[truth == 7] = 4  # the new class: star
    found = np.where(truth == 4, 4, 0)
    moved = np.zeros_like(truth)
    moved[6:10, 6:10] = 4
    cam = np.zeros((10, 10))
    cam[1:3, 1:3] = 1.0
    out = []
    for pseudo, c in ((found, cam), (moved, np.zeros((10, 10)))):
        out.append(
            {
                "image": torch.randint(0, 255, (3, 10, 10), dtype=torch.uint8),
                "mask": truth,
                "cam": c,
                "pcm": np.clip(c + 0.3, 0, 1),
                "pseudo": pseudo,
                "classes": ["star"],
                "outcomes": [pseudo_label_outcome(pseudo, truth, 4, [0, 1, 2, 3])],
            }
        )
    return out


def test_seam_gallery_has_a_labelled_colour_bar_and_a_computed_verdict_per_row():
    fig = viz.seam_gallery(_seam_examples(), PALETTE, NAMES, threshold=0.26)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1
    assert "0-1" in bars[0].get_xlabel() and bars[0].get_xlim() == (0.0, 1.0)
    axes = np.asarray(_panels(fig)).reshape(2, 5)
    _assert_no_empty_panel(fig)
    assert all("star" in row[0].get_ylabel() for row in axes)
    assert "at least 0.5" in axes[0, 4].get_xlabel() and "mostly on square" in axes[1, 4].get_xlabel()
    assert "all 0" in axes[1, 2].get_xlabel() and "> 0.26" in axes[0, 3].get_xlabel()
    assert [ax.get_title() for ax in axes[0, 2:4]] == ["CAM", "CAM + PCM"]
    assert {"background", "square", "star"} <= _legend_texts(fig)


def test_threshold_sweep_names_what_it_compares():
    sweep = [{"source": s, "threshold": t, "miou": 40 + t} for s in ("cam", "pcm") for t in (0.1, 0.3)]
    fig = viz.threshold_sweep(sweep, chosen=0.26)
    (ax,) = fig.axes
    assert "background score" in ax.get_xlabel() and "mIoU" in ax.get_ylabel()
    assert {"CAM", "CAM + PCM", "used for training: 0.26"} == _legend_texts(fig)
    assert "PCM" in ax.get_title()


def test_verdicts_say_what_was_measured():
    from incseg_lib.viz import outcome_text, transfer_verdict

    base = {"class_id": 4, "old_class": None, "on_new": 1, "on_old": 0, "iou_min": 0.5}
    near = outcome_text({**base, "outcome": "missed", "iou": 0.49, "share": 0.2}, NAMES)
    assert near == "star:\nIoU 0.49, below 0.5"  # a correctly placed label just under the bar: no "missed"
    tiny = outcome_text({**base, "outcome": "missed", "iou": 0.05, "share": 0.008}, NAMES)
    assert "covers 0.8 % of the image" in tiny
    assert "IoU 0.62, at least 0.5" in outcome_text({**base, "outcome": "found", "iou": 0.62, "share": 0.1}, NAMES)
    pred = np.zeros((10, 10), np.int64)
    pred[:2, :] = 2  # cross on 20 %
    pred[5, 5] = 4  # star on 1 %
    assert transfer_verdict(pred, 4, NAMES, False) == "not recognised: star 1 %,\nsquare 20 %"
    assert transfer_verdict(np.zeros((10, 10)), 4, NAMES, False) == "not recognised:\nno object (star 0 %)"
    pred[2:5, :] = 4
    assert transfer_verdict(pred, 4, NAMES, True) == "recognised:\nstar on 31 % of the image"


def test_the_pictures_of_notebook_04_have_readings_from_their_data(tmp_path):
    memory = _fake_memory(tmp_path)
    text = viz.inversion_reading(memory)  # mean of batches 0 and 1: probability 0.045 (float: 0.04499...) to 0.805
    assert "goes from 0.04 to 0.81 over 20 iterations" in text
    assert "the total loss from 49.5 to 30.5" in text and "(iteration 10) the probability is 0.41" in text

    assert viz.synthetic_reading(_gallery_data()) == (
        "What this figure shows: the independent model recognises 2 of 3 targets; not square."
    )
    assert "the old model labels the target in 3 of 3" in viz.synthetic_reading(_gallery_data(checked=False))

    scales = {"asked": [0.05, 0.15, 0.4], "got": [0.07, 0.15, 0.34], "class_names": NAMES, "class_id": 1}
    text = viz.scale_reading(scales)
    assert "disc: asked 5 %, covers 7 %, asked 15 %, covers 15 %, asked 40 %, covers 34 %" in text
    assert "grows with the size asked for" in text
    scales["got"] = [0.2, 0.15, 0.34]
    assert "does not grow with every size" in viz.scale_reading(scales)
