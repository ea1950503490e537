"""Results registry: required fields, never overwritten, read back in order; config profiles."""

import json

import pytest

from incseg_lib import results
from incseg_lib.config import RunConfig

from .helpers.records import make_record

BASE = dict(
    notebook="01",
    dataset="shapes",
    task="offline",
    setting="offline",
    method="offline",
    step=0,
    backbone="resnet18",
    iou={"background": 0.9, "disc": 0.5},
    miou_all=0.7,
    miou_old=0.7,
    miou_new=None,
    pixel_acc=0.95,
)


def test_a_loaded_record_is_typed_and_still_reads_as_its_json_fields(tmp_path):
    iou = {"background": 0.9, "diamond": 0.6, "triangle": 0.5}
    path = results.record(tmp_path / "run-a", **{**BASE, "iou": iou, "miou_new": 0.3, "pseudo_new": 0.25})
    (rec,) = results.load(tmp_path / "run-a")
    assert isinstance(rec, results.Record)
    assert (rec.method, rec.step, rec.miou_old, rec.miou_new) == ("offline", 0, 0.7, 0.3)
    assert rec.hiou == pytest.approx(2 * 0.7 * 0.3 / (0.7 + 0.3))
    # fields the file does not hold read as their defaults; fields Record does not type, with get
    assert rec.eval_protocol == "full" and rec.variant is None and rec.loss_terms is None
    assert rec.get("pseudo_new") == 0.25 and rec.get("replay") is None
    # per-class IoU in class-id order; the JSON file (and the mapping view) sorts it by name
    assert list(rec.iou) == ["background", "triangle", "diamond"] and list(rec["iou"])[1] == "diamond"
    assert (rec.file, rec.run) == (str(path), "run-a")
    # the mapping view is the JSON object as written, plus where it was read from
    assert rec["miou_old"] == 0.7 and rec["_file"] == str(path) and rec["_run"] == "run-a"
    assert "eval_protocol" not in rec and dict(rec) == {
        **json.loads(path.read_text()),
        "_file": str(path),
        "_run": "run-a",
    }
    assert json.loads(json.dumps(rec.to_dict()))["pseudo_new"] == 0.25


def test_readers_take_records_or_their_dictionaries_and_name_a_bad_one():
    made = make_record("mib", 1, 0.5, 0.2)
    (typed,) = results.as_records([made])
    assert typed.hiou == pytest.approx(2 * 0.5 * 0.2 / 0.7) and results.as_records([typed])[0] is typed
    assert results.Record.from_dict(make_record("mib", 0, 0.5)).hiou is None  # no new classes at step 0
    with pytest.raises(ValueError, match="missing \\['notebook'\\]"):
        results.as_records([{k: v for k, v in made.items() if k != "notebook"}])
    with pytest.raises(ValueError, match="field step is '1'"):
        results.Record.from_dict({**made, "step": "1"})
    with pytest.raises(ValueError, match="not a record"):
        results.Record.from_dict([made])


def test_records_are_appended_never_overwritten(tmp_path):
    a = results.record(tmp_path, **BASE)
    b = results.record(tmp_path, **{**BASE, "miou_all": 0.1})
    assert a != b and a.exists() and b.exists()
    recs = results.load(tmp_path)
    assert [r["miou_all"] for r in recs] == [0.7, 0.1]
    rec = json.loads(a.read_text())
    assert rec["version"] and rec["device"] and rec["iou"]["disc"] == 0.5
    assert not list((tmp_path / "results").glob(".*tmp"))
    df = results.records_table(recs)
    assert df["all (%)"].tolist() == [70.0, 10.0]


def test_records_table_names_methods_for_a_reader_and_refuses_unknown_columns(tmp_path):
    replay = {"budget": 5, "mode": "per-class", "strategy": "class-balanced", "share": 0.5}
    results.record(tmp_path, **{**BASE, "method": "smib", "replay": replay, "variant": "5pc-class-balanced"})
    results.record(tmp_path, **BASE)
    df = results.records_table(results.load(tmp_path))
    assert df["method"].tolist()[0] == "SMiB (5/class)" and "variant" not in df.columns
    assert "5pc-class-balanced" not in df.to_string() and df["new (%)"].isna().all()
    with pytest.raises(ValueError, match="variant"):
        results.records_table(results.load(tmp_path), columns=("method", "variant"))


def test_missing_fields_are_refused(tmp_path):
    bad = dict(BASE)
    del bad["miou_old"]
    with pytest.raises(ValueError, match="miou_old"):
        results.record(tmp_path, **bad)


def test_profiles_and_overrides():
    smoke = RunConfig.from_profile("smoke")
    cpu = RunConfig.from_profile("cpu", dataset="camvid", epochs=3)
    assert smoke.dataset == "shapes" and cpu.dataset == "camvid" and cpu.epochs == 3
    assert RunConfig.from_profile("paper").voc_split == "train_aug"
    assert RunConfig.from_profile("cpu", dataset="").dataset == "voc"  # "" keeps the profile's value
    assert RunConfig.from_profile("cpu", pretrained="").pretrained == "imagenet"
    assert RunConfig.from_profile("cpu", pretrained="none").pretrained == ""
    with pytest.raises(ValueError, match="unknown profile 'gpu'"):
        RunConfig.from_profile("gpu")
    with pytest.raises(ValueError, match="unknown RunConfig option.*'epoch'"):
        RunConfig.from_profile("smoke", epoch=3)
    with pytest.raises(ValueError, match="backbone='vgg'"):
        RunConfig.from_profile("smoke", backbone="vgg")


def test_step0_key_is_shared_by_methods():
    cfg = RunConfig.from_profile("smoke", task="15-5")
    assert cfg.training_key(step=0, method="mib") == cfg.training_key(step=0, method="ft")
    assert cfg.training_key(step=1, method="mib") != cfg.training_key(step=1, method="ft")


def test_later_steps_are_keyed_by_their_lineage():
    """Step t starts from step t-1: changing step 0's training changes every later checkpoint."""
    from incseg_lib.experiment import checkpoint_file

    a = RunConfig.from_profile("smoke", task="15-1", epochs=3, epochs_next=2)
    b = a.replace(epochs=4)  # step 0 differs, steps >= 1 are trained the same way
    assert a.training_key(step=3, method="mib")["epochs"] == b.training_key(step=3, method="mib")["epochs"]
    for step in range(6):
        assert checkpoint_file(a, step, "mib") != checkpoint_file(b, step, "mib"), step
    c = a.replace(lr_factor=0.2)  # only steps >= 1 differ: step 0 is still shared
    assert checkpoint_file(a, 0, "mib") == checkpoint_file(c, 0, "mib")
    assert checkpoint_file(a, 2, "mib") != checkpoint_file(c, 2, "mib")


def test_find_record_matches_fields_and_ignores_older_records(tmp_path):
    import time

    assert results.find_record(results.load(tmp_path / "none"), method="offline") is None  # no results folder yet
    results.record(tmp_path, **BASE, config={"lrs": (0.1, 0.2)}, checkpoint="a.pt")
    cut = time.time_ns()
    newer = results.record(tmp_path, **{**BASE, "miou_all": 0.1}, config={"lrs": (0.1, 0.2)}, checkpoint="a.pt")
    found = results.find_record(results.load(tmp_path), config={"lrs": (0.1, 0.2)}, checkpoint="a.pt", step=0)
    assert found["_file"] == str(newer)  # the newest match; tuples match their stored lists
    assert results.find_record(results.load(tmp_path), config={"lrs": (0.1, 0.3)}) is None
    assert results.find_record(results.load(tmp_path), checkpoint="b.pt") is None
    assert results.find_record(results.load(tmp_path), newer_than_ns=time.time_ns(), checkpoint="a.pt") is None
    assert (
        results.find_record(results.load(tmp_path), newer_than_ns=cut, miou_all=0.7) is None
    )  # only the older one has 0.7


def test_class_iou_columns_follow_class_ids_not_the_json_key_order():
    from incseg_lib.results import class_iou, class_order

    # records store iou by name with JSON-sorted keys: alphabetical, not class-id order
    iou = {"aeroplane": 0.5, "background": 0.9, "bicycle": 0.2, "tvmonitor": 0.1, "person": 0.3}
    recs = [make_record(m, 1, 0.5, 0.1, 0.4, iou=iou, created=i) for i, m in enumerate(["mib", "ft", "joint"])]
    df = class_iou(recs, "voc", "15-5", "overlapped")
    assert list(df.columns) == ["background", "aeroplane", "bicycle", "person", "tvmonitor"]
    assert list(df.index) == ["FT", "MiB", "Joint"]
    assert class_order("shapes", ["dark-disc", "disc", "background"]) == ["background", "disc", "dark-disc"]


def test_checkpoint_key_follows_the_data_content_not_its_path(tmp_path):
    import shutil

    from incseg_lib.config import _FINGERPRINTS
    from incseg_lib.data import ensure_shapes

    a = ensure_shapes(tmp_path / "a" / "shapes", n_train=6, n_val=2, size=32)
    b = tmp_path / "moved" / "copy"
    shutil.copytree(a, b)
    ka = RunConfig.from_profile("smoke", data_root=str(a)).training_key(step=0, method="offline")
    kb = RunConfig.from_profile("smoke", data_root=str(b)).training_key(step=0, method="offline")
    assert ka == kb  # same files elsewhere: same checkpoint
    mask = next((b / "VOCdevkit" / "VOC2012" / "SegmentationClass").glob("train_*.png"))
    mask.write_bytes(mask.read_bytes() + b"\0")  # different content
    _FINGERPRINTS.clear()
    assert RunConfig.from_profile("smoke", data_root=str(b)).training_key(step=0, method="offline") != ka


def test_a_corrupt_record_is_skipped_with_a_warning_naming_it(tmp_path):
    from incseg_lib import results

    good = dict(
        notebook="02",
        dataset="shapes",
        task="15-5",
        setting="overlapped",
        method="mib",
        step=1,
        backbone="resnet18",
        iou={"background": 0.9},
        miou_all=0.5,
        miou_old=0.5,
        miou_new=0.1,
        pixel_acc=0.9,
    )
    results.record(tmp_path, **good)
    (tmp_path / "results" / "zz_truncated.json").write_text('{"notebook": "02", "miou')
    with pytest.warns(UserWarning, match="zz_truncated.json is unreadable"):
        recs = results.load(tmp_path)
    assert len(recs) == 1 and recs[0]["method"] == "mib"


def test_provenance_table_has_one_row_per_run_and_software():
    prov = {
        "incseg": "0.1.0",
        "commit": "abcdef123",
        "dirty": True,
        "python": "3.11.7",
        "torch": "2.14.1",
        "torchvision": "0.29.1",
        "numpy": "2.4.6",
        "device": "cpu: X, 2 cores",
        "threads": 1,
    }
    nchw = {
        "train": {"channels_last": False, "autocast": "float32"},
        "eval": {"channels_last": False, "autocast": "float32"},
    }
    recs = [
        make_record("mib", 0, 0.5, _run="a", provenance=prov, decisions=nchw),
        make_record("mib", 1, 0.5, _run="a", provenance=prov, decisions=nchw),
        make_record("mib", 0, 0.5, _run="b", provenance={**prov, "torch": "2.9.1"}, decisions=nchw),
        make_record("mib", 0, 0.5, _run="c", version="0.0.9"),
    ]  # a record made before provenance was recorded
    t = results.provenance_table(recs)
    assert list(t.index) == ["a", "b", "c"] and list(t["records"]) == [2, 1, 1]
    assert t.loc["a", "commit"] == "abcdef1 (modified)" and t.loc["b", "torch"] == "2.9.1"
    assert t.loc["a", "layout"] == "NCHW" and t.loc["a", "precision"] == "float32"
    assert t.loc["c", "incseg"] == "0.0.9" and t.loc["c", "torch"] == ""


@pytest.mark.parametrize(
    "bad",
    [None, [1], {"checkpoint": 7}, {"config": None}, {"miou_all": "0.5"}, {"step": "1"}, {"method": None}],
    ids=["null", "list", "checkpoint-number", "config-null", "miou-string", "step-string", "method-null"],
)
def test_one_bad_record_is_named_and_skipped_by_every_reader(tmp_path, bad):
    """notebook 06, the report and the findings read records through results.load: a record of the
    wrong shape is skipped with its file and field named; the good ones are all still there."""
    from incseg_lib import findings
    from incseg_lib.report import write_report

    run = tmp_path / "run"
    good = dict(
        notebook="02", dataset="shapes", task="15-1", setting="overlapped", method="mib", step=5, backbone="r18",
        iou={}, miou_all=0.5, miou_old=0.6, miou_new=0.3, pixel_acc=0.9, checkpoint="/c.pt", config={"lr": 0.1},
    )  # fmt: skip
    results.record(run, **good)
    rec = bad if not isinstance(bad, dict) else {**good, **bad}
    (run / "results" / "bad.json").write_text(json.dumps(rec))
    with pytest.warns(UserWarning, match=r"bad.json is unreadable"):
        recs = results.load(run)
    assert len(recs) == 1 and recs[0]["method"] == "mib"
    with pytest.warns(UserWarning):
        assert findings.Metric("mib", "old").value(results.load(run)) == 60.0
    with pytest.warns(UserWarning):
        assert "MiB" in write_report(run).read_text()
    with pytest.warns(UserWarning, match="run folder .*nowhere does not exist"):
        assert results.load([tmp_path / "nowhere", run]) == recs


def test_tables_show_empty_cells_not_nan():
    import numpy as np
    import pandas as pd

    html = results.shown(pd.DataFrame({"old": [71.234, np.nan]}, index=["MiB", "PLOP"])).to_html()
    assert "NaN" not in html and "nan" not in html and "71.2" in html and "71.23" not in html
