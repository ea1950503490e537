"""The incremental study: plan, shared step 0, Joint, and the tables notebooks 02/06 draw from records."""

import math

import pytest

from incseg_lib import results
from incseg_lib.config import RunConfig
from incseg_lib.experiment import checkpoint_file, joint_config, run_incremental, study_plan
from incseg_lib.methods import get_method
from incseg_lib.tasks import base_signature, first_new_class

from .helpers.records import make_record


def _rec(method, step, old, new, all_, task="15-5", setting="overlapped", iou=None, created=0, **kw):
    iou = iou or {"background": old, "cat": old, "sheep": new}
    return make_record(method, step, old, new, all_, task=task, setting=setting, created=created, iou=iou, **kw)


def test_incremental_table_is_mib_shaped():
    recs = [
        _rec("step0", 0, 0.6, None, 0.6),
        _rec("mib", 1, 0.5, 0.2, 0.4),
        _rec("ft", 1, 0.1, 0.3, 0.15),
        _rec("joint", 1, 0.62, 0.5, 0.6),
        _rec("ft", 1, 0.05, 0.3, 0.1, created=-1),  # older: superseded
        _rec("mib", 1, 0.3, 0.1, 0.25, setting="disjoint"),
    ]
    t = results.incremental_table(recs)
    assert list(t.index) == ["FT", "MiB", "Joint"]  # the field's order, step 0 left out, Joint last
    assert t.loc["FT", ("voc", "15-5", "overlapped", "old")] == 10.0
    assert t.loc["MiB", ("voc", "15-5", "overlapped", "all")] == 40.0
    assert t.loc["MiB", ("voc", "15-5", "disjoint", "new")] == 10.0
    assert math.isnan(t.loc["FT", ("voc", "15-5", "disjoint", "all")])  # not run: NaN, not 0


def test_replay_runs_get_a_row_per_memory():
    recs = [
        _rec("mib", 1, 0.5, 0.2, 0.4),
        _rec("smib", 1, 0.52, 0.2, 0.41, variant="1pc-class-balanced", replay={"budget": 1}),
        _rec("smib", 1, 0.55, 0.2, 0.43, variant="5pc-class-balanced", replay={"budget": 5}),
        _rec("mib+di", 1, 0.51, 0.2, 0.42, variant="di-2pc-60+30it-64px", synthetic={"images": 30}),
    ]
    t = results.incremental_table(recs)
    assert list(t.index) == ["MiB", "MiB+DI", "SMiB (1/class)", "SMiB (5/class)"]  # display labels, no run code
    assert t.loc["SMiB (5/class)", ("voc", "15-5", "overlapped", "old")] == 55.0


def test_step_curves_and_forgetting():
    recs = [_rec("step0", 0, 0.6, None, 0.6, task="15-1")]
    for s in range(1, 6):
        recs += [
            _rec("ft", s, 0.6 - 0.1 * s, 0.1, 0.5 - 0.1 * s, task="15-1"),
            _rec("mib", s, 0.6 - 0.02 * s, 0.1, 0.55 - 0.02 * s, task="15-1"),
        ]
    curves = results.miou_by_step(recs, "voc", "15-1", "overlapped")
    assert list(curves.columns) == [0, 1, 2, 3, 4, 5] and list(curves.index) == ["FT", "MiB"]
    assert curves.loc["FT", 0] == curves.loc["MiB", 0] == 60.0  # shared step 0
    assert curves.loc["FT", 5] == pytest.approx(0.0) and curves.loc["MiB", 5] == 45.0
    forgot = results.forgetting(recs, "voc", "15-1", "overlapped")
    assert forgot.loc["FT", "cat"] == pytest.approx(50.0)  # 60 after step 0 -> 10 after step 5
    assert forgot.loc["MiB", "cat"] == pytest.approx(10.0)
    # LwF-MC starts from its own BCE step 0: its curve and forgetting are measured from that one
    recs += [_rec("step0-bce", 0, 0.4, None, 0.4, task="15-1")]
    recs += [_rec("lwf-mc", s, 0.4 - 0.05 * s, 0.1, 0.3, task="15-1") for s in range(1, 6)]
    curves = results.miou_by_step(recs, "voc", "15-1", "overlapped")
    assert curves.loc["LwF-MC", 0] == 40.0 and curves.loc["MiB", 0] == 60.0
    forgot = results.forgetting(recs, "voc", "15-1", "overlapped")
    assert forgot.loc["LwF-MC", "cat"] == pytest.approx(25.0) and forgot.loc["FT", "cat"] == pytest.approx(50.0)


def test_base_signature_shares_step0_between_tasks(tmp_path):
    assert base_signature("voc", "15-5") == base_signature("voc", "15-1") == "0-15of21"
    assert base_signature("voc", "19-1") == "0-19of21" and base_signature("camvid", "8-1") == "0-8of12"
    cfg = RunConfig.from_profile("smoke", checkpoint_dir=str(tmp_path))
    a, b = cfg.replace(task="15-5"), cfg.replace(task="15-1")
    assert checkpoint_file(a, 0, "ft") == checkpoint_file(b, 0, "mib")
    assert a.training_key(step=0, method="ft") == b.training_key(step=0, method="mib")
    assert checkpoint_file(a, 1, "ft") != checkpoint_file(b, 1, "ft")
    assert checkpoint_file(a.replace(setting="disjoint"), 0, "ft") != checkpoint_file(a, 0, "ft")
    assert first_new_class("voc", "15-5") == "pottedplant" and first_new_class("camvid", "8-1") == "car"


def test_epochs_and_lr_per_step():
    cfg = RunConfig.from_profile("cpu")
    assert (cfg.lr_at(0), cfg.lr_at(1)) == (0.01, 0.001)  # MiB's learning rates
    assert (cfg.epochs_at(0), cfg.epochs_at(2)) == (30, 10)
    assert RunConfig.from_profile("paper").epochs_at(3) == 30  # epochs_next 0 = same as step 0
    with pytest.raises(ValueError, match="epochs_next must be >= 0"):
        RunConfig.from_profile("smoke", epochs_next=-1)
    with pytest.raises(ValueError, match="epochs_next_single must be >= 0"):
        RunConfig.from_profile("smoke", epochs_next_single=-1)


def test_protocols_official_per_method_and_shared_for_every_method(shapes_root):
    """official: each method at its scripts' protocol (MiB, PLOP, SDR: a tenth of step 0's lr, the
    loss averaged over every pixel, SDR's KD 100); shared: the profile's lr_next for every method,
    labelled-pixel averaging, SDR's KD 10; an explicit lr_next asks for shared."""
    official = RunConfig.from_profile("cpu", dataset="shapes", data_root=str(shapes_root))
    assert official.protocol == "official"
    for m in ("ft", "mib", "plop", "sdr"):
        assert official.lr_at(1, m) == 0.001 and official.ce_normalisation_at(m) == "all"
        assert "L" in get_method(m).protocol.source  # a file and line to check it against
    assert official.step_protocol(2, "sdr")["weights"]["ukd"] == 100.0
    assert official.replace(ce_normalisation="labelled").ce_normalisation_at("plop") == "labelled"
    assert official.replace(lr_factor=0.5).lr_at(3, "mib") == 0.005
    shared = official.replace(protocol="shared", lr_next=0.003)
    assert shared.lr_at(1, "plop") == 0.003 and shared.ce_normalisation_at("plop") == "labelled"
    assert shared.step_protocol(1, "sdr")["weights"]["ukd"] == 10.0
    assert RunConfig.from_profile("cpu", lr_next=0.002).protocol == "shared"
    # the key follows the protocol; the shared setting's keys carry no protocol entry
    assert official.training_key(step=1, method="plop")["ce_normalisation"] == "all"
    assert "protocol" not in shared.training_key(step=1, method="plop")
    assert official.training_key(step=0, method="plop") == shared.training_key(step=0, method="plop")
    for bad, match in ((dict(protocol="mine"), "protocol"), (dict(lr=float("nan")), "lr must be"),
                       (dict(lr_next=float("inf")), "lr_next must be"), (dict(lr_factor=-1), "lr_factor")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            RunConfig.from_profile("cpu", **bad)


def test_demo_trains_step_0_to_its_plateau_and_later_steps_at_each_methods_protocol():
    """demo: step 0 16 epochs (from scratch, to its plateau), every later step 8, each method at its
    official protocol (a tenth of step 0's rate); a config's epochs_next_single gives one-class
    steps their own length, followed by the checkpoint key; an explicit epochs_next holds for
    every later step."""
    d = RunConfig.from_profile("demo")
    assert (d.protocol, d.epochs, d.epochs_next) == ("official", 16, 8)
    assert [d.replace(task="15-1").epochs_at(s) for s in range(6)] == [16] + [8] * 5
    assert d.replace(task="15-5").epochs_at(1) == 8
    assert d.lr_at(1, "mib") == d.lr_at(1, "plop") == d.lr_at(1, "ft") == 0.005 and d.lr_at(0, "mib") == 0.05
    assert RunConfig.from_profile("demo", protocol="shared").lr_at(1, "mib") == 0.03  # the course's shared rate
    single = d.replace(epochs=8, epochs_next=4, epochs_next_single=8)
    one, five = single.replace(task="15-1"), single.replace(task="15-5")
    assert [one.epochs_at(s) for s in range(6)] == [8, 8, 8, 8, 8, 8]
    assert [five.epochs_at(s) for s in range(2)] == [8, 4]
    assert single.replace(task="19-1").epochs_at(1) == 8
    assert one.replace(epochs=6).epochs_at(3) == 8 and one.replace(epochs=6).epochs_at(0) == 6
    assert one.training_key(step=2, method="mib")["epochs"] == 8
    assert five.training_key(step=1, method="mib")["epochs"] == 4
    mine = RunConfig.from_profile("demo", task="15-1", epochs_next=2)
    assert mine.epochs_next_single == 0 and mine.epochs_at(3) == 2
    both = RunConfig.from_profile("demo", task="15-1", epochs_next=2, epochs_next_single=5)
    assert (both.epochs_at(1), both.replace(task="15-5").epochs_at(1)) == (5, 2)
    assert RunConfig.from_profile("cpu", task="15-1").epochs_at(2) == 10  # other profiles: epochs_next


def test_demo_replays_on_15_1_and_claims_no_memory_size_effect():
    """The demo's notebook 03 replays on 15-1 and does not claim that 5 exemplars per class keep
    more than 1 (on the shapes one per class restores the old classes); other profiles do."""
    from incseg_lib import findings
    from incseg_lib.experiment import replay_plan

    demo = replay_plan(RunConfig.from_profile("demo"))
    assert (demo["tasks"], demo["sizes"], demo["size_effect"]) == (["15-1"], [1, 5], False)
    assert not any("more memory" in f.text for f in findings.replay_findings(demo))
    cpu = replay_plan(RunConfig.from_profile("cpu"), sizes=[1, 15])
    assert cpu["size_effect"] and any("more memory" in f.text for f in findings.replay_findings(cpu))


def test_study_plan_defaults_and_errors():
    cfg = RunConfig.from_profile("smoke")
    assert study_plan(cfg)["tasks"] == ["15-5", "15-1"]
    assert study_plan(cfg, ["19-1"], ["disjoint"], ["pi"]) == {
        "tasks": ["19-1"],
        "settings": ["disjoint"],
        "methods": ["pi"],
    }
    with pytest.raises(ValueError, match="task 'offline' is not an incremental task"):
        study_plan(cfg, ["offline"])
    with pytest.raises(ValueError, match="unknown method\\(s\\) \\['joint'\\]"):
        study_plan(cfg, methods=["joint"])
    with pytest.raises(ValueError, match="setting 'mixed'"):
        study_plan(cfg, settings=["mixed"])


def test_joint_is_offline_for_voc_and_incremental_ids_for_camvid():
    voc = RunConfig.from_profile("smoke", task="15-1")
    assert joint_config(voc).task == "offline"  # shares notebook 01's checkpoint
    assert joint_config(RunConfig.from_profile("smoke", dataset="camvid", task="8-1")).task == "joint"


def test_run_incremental_records_every_step_and_retrains_nothing(tmp_path, shapes_root, said):
    cfg = RunConfig.from_profile(
        "smoke",
        task="15-1",
        crop_size=32,
        epochs=1,
        max_train_images=60,
        max_val_images=8,
        run_dir=str(tmp_path / "run"),
        data_root=str(shapes_root),
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    said.clear()
    recs = run_incremental(cfg, ["ft", "mib"], notebook="t", progress=False)
    assert [(r["method"], r["step"]) for r in recs] == (
        [("step0", 0)] + [("ft", s) for s in range(1, 6)] + [("mib", s) for s in range(1, 6)] + [("joint", 5)]
    )
    assert all(r["task"] == "15-1" and r["setting"] == "overlapped" for r in recs)
    # each step records the protocol it trained with, and it is the method's declared one
    assert recs[0]["step_protocol"] == {"protocol": "step0", "lr": cfg.lr}
    for r in recs[1:-1]:
        declared = get_method(r["method"]).protocol
        got = r["step_protocol"]
        assert got["protocol"] == "official" and got["ce_normalisation"] == declared.ce_normalisation == "all"
        assert got["lr"] == r["lr"] == pytest.approx(cfg.lr * declared.lr_factor)
    assert any("step 1 MiB]" in str(x) and f"lr {cfg.lr * 0.1:g}," in str(x) for x in said)  # what fit got
    assert recs[-1]["miou_new"] is not None and len(recs[-1]["iou"]) == 21
    assert all(len(r["iou"]) == 16 + r["step"] for r in recs[:-1])  # every seen class, none more
    trained = sum("epoch 1/1" in str(x) for x in said)
    assert trained == 1 + 10 + 1
    said.clear()
    again = run_incremental(cfg, ["ft", "mib"], notebook="t", progress=False)
    assert not any("epoch 1/1" in str(x) for x in said)  # checkpoints reused: nothing retrained
    assert not any("eval (full" in str(x) for x in said)  # ... and nothing re-evaluated
    assert [r["_file"] for r in again] == [r["_file"] for r in recs]  # the same records, none added
    assert len(results.load(cfg.run_dir)) == len(recs)
    said.clear()  # another evaluation setting (more validation images) is evaluated anew
    more = run_incremental(cfg.replace(max_val_images=9), ["ft"], joint=False, notebook="t", progress=False)
    assert sum("eval (full" in str(x) for x in said) == 6 and len(results.load(cfg.run_dir)) == len(recs) + 6
    assert not any("epoch 1/1" in str(x) for x in said)  # training does not depend on validation images
    assert more[-1]["_file"] != recs[5]["_file"]
    with pytest.raises(ValueError, match="unknown method"):
        run_incremental(cfg, ["icarl"])


def test_joint_ratio():
    recs = [_rec("mib", 1, 0.5, 0.2, 0.4), _rec("joint", 1, 0.62, 0.5, 0.5)]
    assert results.joint_ratio(results.incremental_table(recs)) == {"voc 15-5 overlapped": 0.8}


def test_comparison_lines_name_the_best_run_per_task_and_its_share_of_joint():
    recs = [
        _rec("step0", 0, 0.6, None, 0.6),
        _rec("mib", 1, 0.5, 0.2, 0.4),
        _rec("ft", 1, 0.1, 0.3, 0.15),
        _rec("lwf", 1, 0.55, 0.1, 0.38),
        _rec("joint", 1, 0.62, 0.5, 0.8),
    ]
    (line,) = results.comparison_lines(results.incremental_table(recs))
    assert line.startswith("voc 15-5 overlapped: highest on all classes MiB (40.0), on old LwF (55.0)")
    assert "on hIoU MiB" in line and "Joint 80.0" in line and "reaches 50% of it" in line
    assert results.comparison_lines(results.incremental_table([])) == []


def test_training_curves_run_the_epochs_through_the_steps_with_every_logged_term():
    recs = [
        _rec("mib", 1, 0.5, 0.2, 0.4, task="15-1", loss_history=[3.0, 2.0], loss_terms={"principal": [1.0, 0.5]}),
        _rec("mib", 2, 0.4, 0.1, 0.3, task="15-1", loss_history=[2.5, 1.5], loss_terms={"ukd": [0.2, 0.3]}),
        _rec("ft", 1, 0.1, 0.3, 0.15, task="15-1", loss_history=[4.0]),
        _rec("joint", 1, 0.62, 0.5, 0.6, task="15-1", loss_history=[1.0]),
    ]
    curves = results.training_curves(recs, "voc", "15-1", "overlapped")
    assert list(curves) == ["FT", "MiB"]  # the field's order; Joint is not an incremental run
    mib = curves["MiB"]
    assert mib["epochs"] == [1, 2, 3, 4] and mib["steps"] == [1, 1, 2, 2] and mib["step_ids"] == [1, 2]
    assert mib["terms"]["loss"] == [3.0, 2.0, 2.5, 1.5]
    assert mib["terms"]["principal"][:2] == [1.0, 0.5] and all(math.isnan(v) for v in mib["terms"]["principal"][2:])
    assert all(math.isnan(v) for v in mib["terms"]["ukd"][:2]) and mib["terms"]["ukd"][2:] == [0.2, 0.3]
    assert mib["miou"]["all"] == [40.0, 30.0]


def test_notebook_02_shows_steps_on_the_shortest_one_class_task_and_features_where_plop_ran():
    from incseg_lib.experiment import feature_task, step_figure_task, study_plan

    demo = study_plan(RunConfig.from_profile("demo"))
    assert step_figure_task(demo) == ("15-1", ["ft", "mib"])  # 6 steps fit the page; 10-1 has 11
    assert feature_task(demo) == ("10-1", ["plop", "sdr"])
    five = {"tasks": ["15-5"], "settings": ["overlapped"], "methods": ["lwf", "ilt"]}
    assert step_figure_task(five) == ("15-5", ["lwf", "ilt"])  # no one-class task, no FT or MiB
    assert feature_task(five) == (None, [])
