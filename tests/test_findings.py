"""Expected findings: checks on hand-made records, reported with the numbers that decide them."""

import json

import pytest

from incseg_lib import findings
from incseg_lib.findings import NO_DATA, NOT_REPRODUCED, REPRODUCED, Finding, Metric

from .helpers.records import make_record


def rec(method, step, old, new=None, task="15-1", setting="overlapped", ns=0, **extra):
    return make_record(method, step, old, new, dataset="shapes", task=task, setting=setting, created=ns,
                       **{"_file": f"{method}{step}{ns}", **extra})  # fmt: skip


RECORDS = [
    rec("step0", 0, 0.60, ns=1),
    rec("ft", 5, 0.20, 0.40, ns=2),
    rec("mib", 5, 0.50, 0.35, ns=3),
    rec("joint", 5, 0.70, 0.60, ns=4),
]


def test_metric_takes_the_last_step_of_the_task_and_step0():
    assert Metric("step0", "old").value(RECORDS) == 60.0
    assert Metric("ft", "old").value(RECORDS) == 20.0
    assert Metric("mib", "new", task="15-1").value(RECORDS) == 35.0
    # an intermediate step is not the last step: no value
    assert Metric("ft", "old").value([rec("ft", 3, 0.3)]) is None
    # the newest of two records wins (a re-run supersedes)
    assert Metric("ft", "old").value(RECORDS + [rec("ft", 5, 0.1, ns=9)]) == 10.0


def test_the_numbers_shown_are_rounded_once():
    """0.80853 is 80.9 %, as the docs and the tables show it, not 80.85 rounded again to 80.8."""
    r = Finding("Joint high", Metric("joint", "all"), ">=", 70.0).check([rec("joint", 5, 0.80853)])
    assert r.left == 80.853 and "80.9 >= 70.0" in r.detail


def test_two_numbers_that_differ_never_read_as_equal():
    """A claim that holds by 0.04 points (MiB+EWF 42.737 against MiB 42.702, CamVid 8-1) shows the
    decimals that tell the numbers apart, in the detail and in the take-away."""
    recs = [rec("mib+ewf", 5, 0.427371, 0.16), rec("mib", 5, 0.427016, 0.17)]
    r = Finding("MiB+EWF keeps more", Metric("mib+ewf"), ">", Metric("mib")).check(recs)
    assert r.status == REPRODUCED and "42.74 > 42.70" in r.detail and "gap +0.04" in r.detail
    line = findings.takeaway_lines([r])[0]
    assert "(42.74) is above MiB's old-class mIoU (42.70) by 0.04 points" in line
    same = Finding("MiB keeps more", Metric("mib"), ">", Metric("mib")).check(recs)
    assert same.status == NOT_REPRODUCED and "42.7 > 42.7" in same.detail  # equal: one decimal, and it fails
    assert "equals" in findings.takeaway_lines([same])[0]


def test_a_finding_that_holds_is_reproduced_with_its_numbers():
    f = Finding("FT forgets", Metric("ft", "old"), "<=", Metric("step0", "old"), factor=0.5)
    r = f.check(RECORDS)
    assert r.status == REPRODUCED and (r.left, r.right) == (20.0, 60.0)
    assert "20.0 <= 0.5 x 60.0 = 30.0" in r.detail


def test_a_finding_that_fails_is_reported_not_reproduced():
    f = Finding("MiB keeps 90%", Metric("mib", "old"), ">=", Metric("step0", "old"), factor=0.9)
    r = f.check(RECORDS)
    assert r.status == NOT_REPRODUCED
    assert "50.0 >= 0.9 x 60.0 = 54.0" in r.detail
    f = Finding("MiB learns new", Metric("mib", "new"), ">=", 40.0)
    assert f.check(RECORDS).status == NOT_REPRODUCED


def test_missing_records_are_no_data_naming_the_metric():
    r = Finding("LwF between", Metric("lwf", "old"), ">", Metric("ft", "old")).check(RECORDS)
    assert r.status == NO_DATA and "LwF old" in r.detail


def test_replay_records_are_told_apart_by_memory_size():
    recs = RECORDS + [
        rec("smib", 5, 0.52, replay={"budget": 1}, variant="mem1", ns=5),
        rec("smib", 5, 0.56, replay={"budget": 5}, variant="mem5", ns=6),
    ]
    f = Finding("more memory keeps more", Metric("smib", "old", exemplars=5), ">", Metric("smib", "old", exemplars=1))
    r = f.check(recs)
    assert r.status == REPRODUCED and (r.left, r.right) == (56.0, 52.0)


def test_check_saves_and_load_reads_back_and_skips_a_corrupt_file(tmp_path, recwarn, said):
    fs = [
        Finding("FT forgets", Metric("ft", "old"), "<=", Metric("step0", "old"), factor=0.5),
        Finding("MiB above FT", Metric("mib", "old"), ">", Metric("ft", "old")),
    ]
    said.clear()
    out = findings.check(fs, RECORDS, notebook="02_mib_incremental", run_dir=tmp_path)
    assert [r.status for r in out] == [REPRODUCED, REPRODUCED] and len(said) == 2
    saved = json.loads((tmp_path / "findings" / "02_mib_incremental.json").read_text())
    assert saved["findings"][1]["text"] == "MiB above FT" and saved["findings"][1]["notebook"] == "02_mib_incremental"
    assert saved["provenance"]["torch"] and "threads" in saved["provenance"]  # what produced them
    (tmp_path / "findings" / "03_exemplars_smib.json").write_text("{truncated")
    back = findings.load(tmp_path)
    assert [r.text for r in back] == ["FT forgets", "MiB above FT"]
    assert any("03_exemplars_smib.json" in str(w.message) for w in recwarn)
    df = findings.findings_table(back)
    assert list(df["status"]) == [REPRODUCED, REPRODUCED]


def test_each_labs_findings_follow_its_plan_and_decide_on_records():
    plan = {"tasks": ["15-1"], "settings": ["overlapped"], "methods": ["ft", "lwf", "mib"]}
    found = findings.check(findings.incremental_findings(plan), RECORDS)
    status = {r.text.split(": ", 1)[1]: r.status for r in found}
    assert status == {
        "FT forgets at least half of step 0's old-class mIoU": REPRODUCED,  # 20 <= 30
        "MiB keeps more old-class mIoU than FT": REPRODUCED,  # 50 > 20
        "MiB learns more of the new classes than FT (new)": NOT_REPRODUCED,  # 35 < 40
        "Joint is above MiB (all)": REPRODUCED,  # 70 > 50
        "LwF keeps more than FT": NO_DATA,
        "LwF keeps less than MiB": NO_DATA,
    }  # one class per step: no share of step 0 claimed for MiB (its papers' 15-1 rows forget too)
    # a task whose steps add several classes: MiB keeps 70% of step 0, and learns more than FT
    five = [
        rec(m, int(m != "step0"), o, n, task="15-5", ns=i)
        for i, (m, o, n) in enumerate([("step0", 0.6, None), ("ft", 0.1, 0.5), ("mib", 0.5, 0.25)])
    ]
    several = {
        f.text.split(": ", 1)[1]: f.check(five).status
        for f in findings.incremental_findings({**plan, "tasks": ["15-5"]})
    }
    assert several["MiB keeps at least 70% of step 0's old-class mIoU"] == REPRODUCED  # 50 >= 42
    assert several["MiB learns more of the new classes than FT (new)"] == NOT_REPRODUCED  # 25 < 50
    # without FT, a step of several classes has an absolute bar on the new classes
    alone5 = [
        f for f in findings.incremental_findings({**plan, "tasks": ["15-5"], "methods": ["mib"]}) if "new" in f.text
    ]
    assert [(f.text.split(": ", 1)[1], f.check(five).status) for f in alone5] == [
        ("MiB learns the new classes (new mIoU >= 30)", NOT_REPRODUCED)
    ]  # 25 < 30
    # the alias 15-5s is 15-1: the same one-class-step findings
    alias = [f.text for f in findings.incremental_findings({**plan, "tasks": ["15-5s"]})]
    assert "15-5s overlapped: MiB learns more of the new classes than FT (new)" in alias
    assert any(
        "steps' new classes" in f.text for f in findings.replay_findings({**plan, "tasks": ["15-5s"], "sizes": [1]})
    )
    assert findings.incremental_findings.__doc__.startswith("Notebook 02's story")
    # one-class steps without FT in the plan: no bar on the new classes (the papers' rows are low)
    alone = findings.incremental_findings({**plan, "methods": ["mib"]})
    assert not any("new" in f.text for f in alone)
    replay = findings.replay_findings({**plan, "sizes": [1, 5]})
    assert [(f.left.exemplars, f.left.part) for f in replay] == [(1, "old"), (1, "new"), (5, "old")]
    assert replay[1].right == Metric("mib", "new", "15-1", "overlapped") and replay[2].right.exemplars == 1
    assert len(findings.replay_findings({**plan, "tasks": ["15-5"], "sizes": [1, 5]})) == 2  # no one-class steps
    # a profile whose data shows no size effect (the demo's shapes) does not claim one
    assert [f.left.part for f in findings.replay_findings({**plan, "sizes": [1, 5], "size_effect": False})] == [
        "old",
        "new",
    ]
    assert findings.replay_findings({**plan, "methods": ["ft"], "sizes": [1]}) == []
    di = findings.inversion_findings({**plan, "methods": ["mib", "ft"]})
    recs = RECORDS + [rec("mib+di", 5, 0.45, ns=5), rec("ft+di", 5, 0.30, ns=6)]
    assert [f.check(recs).status for f in di] == [NOT_REPRODUCED, REPRODUCED]  # 45 < 50; 30 > 20


def test_a_threshold_a_finding_sets_itself_decides_and_no_data():
    """MiB 50 old against FT 20: a gap of 30 points. A finding with its own threshold of 25 is
    reproduced; with 35 it is not (MiB still above FT, by less than asked); without FT's record, no data."""
    mib_over_ft = lambda margin: Finding("MiB above FT", Metric("mib"), ">", Metric("ft"), margin=margin)  # noqa: E731
    held = mib_over_ft(25).check(RECORDS)
    assert held.status == REPRODUCED and held.gap == 30.0 and held.claim == "MiB above FT (by more than 25 points)"
    short = mib_over_ft(35).check(RECORDS)
    assert short.status == NOT_REPRODUCED and short.gap == 30.0 and "gap +30.0 (needs more than 35)" in short.detail
    none = mib_over_ft(25).check([r for r in RECORDS if r["method"] != "ft"])
    assert none.status == NO_DATA and none.gap is None
    # "<=" with a factor: FT 20 <= 0.5 x 60 = 30 holds by 10 points
    forgets = Finding("FT forgets", Metric("ft"), "<=", Metric("step0"), factor=0.5).check(RECORDS)
    assert forgets.status == REPRODUCED and forgets.gap == 10.0
    with pytest.raises(ValueError, match="margin"):
        Finding("x", Metric("ft"), ">", 1.0, margin=-1)


HOLDS = {"gaps": [33.5, 37.0, 35.0], "spread": 3.5, "margin": 30.0, "verdict": "holds"}


def test_semantics_holds_inside_the_calibrated_range_is_reproduced_unflagged():
    r = Finding("MiB above FT", Metric("mib"), ">", Metric("ft")).check(
        [rec("mib", 5, 0.55), rec("ft", 5, 0.20)], HOLDS
    )  # gap 35
    assert r.status == REPRODUCED and not r.outside
    assert "gap +35.0; calibrated +33.5 to +37.0" in r.detail and findings.OUTSIDE not in r.detail


def test_semantics_a_claim_that_holds_outside_its_range_is_reproduced_and_flagged():
    """The AMD case: MiB new 56.5 >= 30 holds by 26.5, under the calibrated +33.6 to +35.5: a 32-point
    effect is not 'not reproduced' because another machine moved it; it is reproduced, flagged."""
    cal = {"gaps": [35.5, 33.8, 33.6], "spread": 1.9, "margin": 31.5, "verdict": "holds"}
    r = Finding("MiB learns the new classes", Metric("mib", "new"), ">=", 30.0).check([rec("mib", 5, 0.5, 0.565)], cal)
    assert r.status == REPRODUCED and r.outside and r.gap == 26.5
    assert f"calibrated +33.6 to +35.5 ({findings.OUTSIDE})" in r.detail
    line = findings.takeaway_lines([r])[0]
    assert line.startswith("**Reproduced**") and findings.OUTSIDE in line and "needed" not in line
    assert line.count("by ") <= 1  # the measured difference is said once


def test_semantics_a_claim_that_does_not_hold_is_not_reproduced_whatever_its_calibration():
    r = Finding("MiB above FT", Metric("mib"), ">", Metric("ft")).check(
        [rec("mib", 5, 0.20), rec("ft", 5, 0.25)], HOLDS
    )
    assert r.status == NOT_REPRODUCED and r.outside and r.gap == -5.0
    line = findings.takeaway_lines([r])[0]
    assert line.startswith("**Not reproduced**") and "below" in line and "holds" not in line


def test_semantics_inside_the_noise_varies_and_says_so_and_no_data_is_no_data():
    noisy = {"gaps": [2.0, -3.1, 1.1], "spread": 5.1, "margin": 0.0, "verdict": findings.VARIES}
    recs = [rec("mib", 5, 0.50), rec("sdr", 5, 0.52)]
    r = Finding("SDR above MiB", Metric("sdr"), ">", Metric("mib")).check(recs, noisy)
    assert r.status == findings.VARIES and not r.outside
    line = findings.takeaway_lines([r])[0]
    assert "inside the run-to-run noise" in line and "flipped" not in line and "holds in this run" in line
    # failed in every calibration run, holds here: not stable either
    fails = {"gaps": [-12.3, -12.7, -10.0], "spread": 2.7, "margin": 0.0, "verdict": "fails"}
    r = Finding("SDR above MiB", Metric("sdr"), ">", Metric("mib")).check(recs, fails)
    assert r.status == findings.VARIES and r.outside
    # failed in every calibration run and fails here: not reproduced
    r = Finding("MiB above SDR", Metric("mib"), ">", Metric("sdr")).check(recs, fails)
    assert r.status == NOT_REPRODUCED
    gone = Finding("SDR above MiB", Metric("sdr"), ">", Metric("ft")).check(recs, HOLDS)
    assert gone.status == NO_DATA and not gone.outside


def test_sentences_never_show_raw_record_keys():
    recs = [rec("mib-s", 1, 0.5, task="15-5", pseudo_new=0.4, pseudo_chance_new=0.1)]
    r = Finding(
        "pseudo-labels beat chance", Metric("mib-s", "pseudo_new"), ">=", Metric("mib-s", "pseudo_chance_new"), 2.0
    ).check(recs)
    assert "pseudo_new" not in r.detail and "pseudo_chance_new" not in r.detail
    assert "pseudo_" not in findings.takeaway_lines([r])[0]


def test_calibration_line_names_machine_commit_threads_and_seeds():
    cal = {
        "runs": [
            {
                "run": "seed-0",
                "seed": 0,
                "threads": 1,
                "torch": "2.14.1",
                "device": "cpu: Intel Xeon",
                "commit": "cfba6e57e",
            },
            {
                "run": "seed-1",
                "seed": 1,
                "threads": 2,
                "torch": "2.14.1",
                "device": "cpu: AMD EPYC",
                "commit": "cfba6e57e",
            },
        ]
    }
    line = findings.calibration_line(cal)
    assert "2 runs" in line and "seeds 0, 1" in line and "threads 1, 2" in line
    assert "Intel Xeon, cpu: AMD EPYC" in line and "commit cfba6e5" in line
    assert "No calibration" in findings.calibration_line(None)


def _suite_run(folder, seed, gaps_by_text):
    """A hand-made suite run folder with one findings file: ``{text: (left, right)}``."""
    folder.mkdir(parents=True)
    (folder / "suite.json").write_text(json.dumps({"profile": "demo", "parameters": {"seed": seed}}))
    results = [
        findings.FindingResult(
            text, REPRODUCED if a > b else NOT_REPRODUCED, a, b, gap=a - b, notebook="02_mib_incremental", key=text
        )
        for text, (a, b) in gaps_by_text.items()
    ]
    findings.save(
        results, folder / "findings" / "02_mib_incremental.json", meta={"profile": "demo", "dataset": "shapes"}
    )
    return folder


def test_calibration_ships_a_margin_only_above_the_spread_and_marks_the_rest_varies(tmp_path, monkeypatch):
    runs = [
        _suite_run(tmp_path / f"seed-{k}", k, {"robust": (50 + d, 20), "noisy": (50 + d, 48), "wrong": (10, 20)})
        for k, d in enumerate((0.0, 4.0, -3.0))
    ]
    cal = findings.calibrate(runs)
    robust, noisy, wrong = (cal["findings"][f"02_mib_incremental|{t}"] for t in ("robust", "noisy", "wrong"))
    # robust: gaps 30, 34, 27 -> spread 7, smallest gap 27 > 7: margin 27 - 7 = 20
    assert robust["gaps"] == [30.0, 34.0, 27.0] and robust["verdict"] == "holds" and robust["margin"] == 20.0
    # noisy: gaps 2, 6, -1 -> once below zero: varies, no margin
    assert noisy["verdict"] == findings.VARIES and noisy["margin"] == 0.0
    assert wrong["verdict"] == "fails"
    assert [r["seed"] for r in cal["runs"]] == [0, 1, 2] and cal["profile"] == "demo" and cal["dataset"] == "shapes"
    assert "| 02 | robust | +30.0 | +34.0 | +27.0 | 7.0 | holds | 20 |" in findings.calibration_table(cal)
    # a notebook checking against this calibration: margins applied, the noisy finding reported as varying
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(cal))
    monkeypatch.setenv("INCSEG_CALIBRATION", str(path))
    recs = [rec("mib", 5, 0.45), rec("ft", 5, 0.30), rec("step0", 0, 0.6)]
    fs = [Finding("robust", Metric("mib"), ">", Metric("ft")), Finding("noisy", Metric("mib"), ">", Metric("ft"))]
    out = findings.check(fs, recs, notebook="02_mib_incremental", profile="demo", dataset="shapes")
    # the robust one holds here (gap 15 > 0), under its calibrated range: reproduced, flagged
    assert [r.status for r in out] == [REPRODUCED, findings.VARIES] and [r.outside for r in out] == [True, True]
    assert out[0].calibrated_range() == "gap +27.0 to +34.0 over 3 runs (spread 7.0)"
    assert "inside the run-to-run noise: gap -1.0 to +6.0" in findings.format_lines(out)[1]
    # another profile's calibration is not applied
    other = findings.check(fs, recs, notebook="02_mib_incremental", profile="cpu", dataset="voc")
    assert [(r.status, r.margin) for r in other] == [(REPRODUCED, 0.0), (REPRODUCED, 0.0)]


def test_updating_a_calibration_replaces_only_the_findings_the_new_runs_calibrate(tmp_path):
    """One notebook re-calibrated: its finding takes the new runs' gaps; the untouched finding keeps
    its gaps and runs; new runs named like old ones of other software get their commit appended."""
    old = findings.calibrate(
        [_suite_run(tmp_path / "a" / f"seed-{k}", k, {"kept": (50, 20), "changed": (50 + k, 48)}) for k in (0, 1)]
    )
    new_runs = [_suite_run(tmp_path / "b" / f"seed-{k}", k, {"changed": (60 + k, 40)}) for k in (0, 1)]
    for folder in new_runs:  # the new runs come from another commit
        meta, results = findings.load_file(folder / "findings" / "02_mib_incremental.json")
        meta["provenance"] = {"commit": "abcdef0123"}
        findings.save(results, folder / "findings" / "02_mib_incremental.json", meta=meta)
    merged = findings.update_calibration(old, findings.calibrate(new_runs))
    kept, changed = (merged["findings"][f"02_mib_incremental|{t}"] for t in ("kept", "changed"))
    assert kept == old["findings"]["02_mib_incremental|kept"] and kept["runs"] == ["seed-0", "seed-1"]
    assert changed["gaps"] == [20.0, 21.0] and changed["verdict"] == "holds" and changed["margin"] == 19.0
    assert changed["runs"] == ["seed-0@abcdef0", "seed-1@abcdef0"]
    assert [r["run"] for r in merged["runs"]] == ["seed-0", "seed-1", "seed-0@abcdef0", "seed-1@abcdef0"]
    assert findings.update_calibration(merged, findings.calibrate(new_runs)) == merged  # given twice: no change
    with pytest.raises(ValueError, match="one profile and dataset"):
        findings.update_calibration(old, {**findings.calibrate(new_runs), "dataset": "voc"})


def test_takeaways_follow_the_numbers_a_method_that_loses_is_described_as_losing():
    """The generated take-away states the direction the numbers point, whatever the claim said."""
    claim = Finding("MiB keeps more than Joint", Metric("mib"), ">", Metric("joint"))
    lost = claim.check(RECORDS)  # MiB 50 old against Joint 70
    line = findings.takeaway_lines([lost])[0]
    assert (
        line.startswith("**Not reproduced**")
        and "MiB's old-class mIoU (50.0) is below Joint's old-class mIoU (70.0)" in line
    )
    assert "by 20.0 points" in line and "above" not in line
    won = Finding("MiB keeps more than FT", Metric("mib"), ">", Metric("ft"), margin=25).check(RECORDS)
    line = findings.takeaway_lines([won])[0]
    assert line.startswith("**Reproduced**") and "(50.0) is above FT's old-class mIoU (20.0) by 30.0 points" in line
    assert line.count("30.0") == 1  # said once
    kept = Finding("FT forgets half", Metric("ft"), "<=", Metric("step0"), factor=0.5).check(RECORDS)
    assert "FT's old-class mIoU (20.0) is 33% of step 0's old-class mIoU (60.0)" in findings.takeaway_lines([kept])[0]
    floor = Finding("MiB learns new", Metric("mib", "new"), ">=", 40.0).check(RECORDS)  # 35 < 40
    assert "MiB's new-class mIoU (35.0) stays below 40.0" in findings.takeaway_lines([floor])[0]


def test_takeaways_say_what_the_run_did_not_train_and_what_varies():
    absent = Finding("EWC keeps more than FT", Metric("ewc"), ">", Metric("ft")).check(RECORDS)
    line = findings.takeaway_lines([absent])[0]
    assert line.startswith("**Not in this run**") and "no record of EWC old" in line and "did not train" in line
    cal = {"gaps": [-2.0, 4.0, 1.0], "spread": 6.0, "margin": 0.0, "verdict": findings.VARIES}
    varies = Finding("MiB keeps more than FT", Metric("mib"), ">", Metric("ft")).check(RECORDS, cal)
    line = findings.takeaway_lines([varies])[0]
    assert line.startswith("**Varies between runs**") and "gap -2.0 to +4.0 over 3 runs" in line
    text = findings.takeaways([absent, varies])
    assert str(getattr(text, "data", text)).count("\n* ") == 1  # one Markdown bullet per finding


def test_grid_takeaways_do_not_rank_a_grid_of_one_and_name_the_knob_that_moves_most():
    one = [rec("offline", 0, 0.81, lr=0.05, batch_size=8, backbone="resnet18")]
    lines = findings.grid_takeaway_lines(one)
    assert "81.0 mIoU" in lines[0] and "learning rate 0.05" in lines[0] and "cannot say" in lines[1]
    grid = [
        rec("offline", 0, 0.80, lr=0.01, batch_size=8, backbone="resnet18", ns=1),
        rec("offline", 0, 0.40, lr=0.1, batch_size=8, backbone="resnet18", ns=2),
        rec("offline", 0, 0.78, lr=0.01, batch_size=16, backbone="resnet18", ns=3),
    ]
    for r in grid:
        r["_file"] += str(r["lr"]) + str(r["batch_size"])
    lines = findings.grid_takeaway_lines(grid)
    assert "best mIoU 80.0 at 0.01, 40.0 at 0.1 (a spread of 40.0 points)" in lines[1]
    assert "batch size" in lines[2].lower() and lines[-1] == "In this grid the learning rate moves mIoU the most."


def test_trained_line_names_the_methods_a_run_did_not_train():
    recs = [dict(r, notebook="02") for r in RECORDS]
    line = findings.trained_line(recs, "02", ["ft", "ewc", "pi", "mib", "joint"])
    assert line.startswith("This run trained FT, MiB and Joint.") and "EWC and PI are described above but not" in line
    assert findings.trained_line(recs, "03", ["mib"]) == "This run trained none of MiB."


def test_calibration_inputs_are_checked_before_anything_runs(tmp_path, monkeypatch, capsys):
    from incseg_lib.cli import main
    from incseg_lib.suite import SuiteError, run_calibration

    run = _suite_run(tmp_path / "seed-0", 0, {"a": (50, 20)})
    with pytest.raises(ValueError, match="given twice"):
        findings.calibrate([run, tmp_path / "seed-0"])
    for seeds, match in (([0, 0], "seed 0 twice"), ([0], "at least two runs")):
        with pytest.raises(SuiteError, match=match):
            run_calibration("smoke", seeds, out=tmp_path / "cal")
    with pytest.raises(SuiteError, match="no selected notebook declares a parameter 'epochz'"):
        run_calibration("smoke", [0, 1], out=tmp_path / "cal", extra={"epochz": 3})
    assert not (tmp_path / "cal").exists()  # refused before any folder
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    assert main(["calibrate", str(run), "--update", str(listed)]) == 2
    assert "is not a calibration (a JSON object), it holds a list" in capsys.readouterr().err
    monkeypatch.setenv("INCSEG_CALIBRATION", str(listed))
    with pytest.warns(UserWarning, match="holds a list"):
        assert findings.load_calibration("demo", "shapes") is None
    monkeypatch.setenv("INCSEG_CALIBRATION", str(tmp_path / "missing.json"))
    with pytest.warns(UserWarning, match="missing.json is not a file"):
        assert findings.load_calibration("demo", "shapes") is None


def test_per_task_methods_and_the_longer_sequence_claim():
    """A plan's ``task_methods`` choose each task's claims (PLOP and SDR against MiB only where they
    run); two one-class sequences with MiB add "MiB keeps less after the longer one"."""
    plan = {
        "tasks": ["15-5", "15-1", "10-1"],
        "settings": ["overlapped"],
        "methods": ["ft", "lwf", "mib"],
        "task_methods": {"10-1": ["ft", "mib", "plop"]},
    }
    texts = [f.text for f in findings.incremental_findings(plan)]
    assert "10-1 overlapped: PLOP keeps more old-class mIoU than MiB" in texts
    assert not any(t.startswith("10-1") and "LwF" in t for t in texts) and not any(
        "PLOP" in t and "15-1" in t[:5] for t in texts
    )
    longer = [f for f in findings.incremental_findings(plan) if "one-class steps" in f.text]
    assert [f.text for f in longer] == [
        "overlapped: MiB keeps less old-class mIoU after 10-1's 10 one-class steps than after 15-1's 5"
    ]
    recs = [rec("mib", 10, 0.58, 0.1, task="10-1", ns=1), rec("mib", 5, 0.76, 0.2, task="15-1", ns=2)]
    r = longer[0].check(recs)
    assert r.status == REPRODUCED and (r.left, r.right) == (58.0, 76.0)
    assert longer[0].check([rec("mib", 10, 0.80, 0.1, task="10-1", ns=1), *recs[1:]]).status == NOT_REPRODUCED
    assert not [
        f for f in findings.incremental_findings({**plan, "tasks": ["15-5", "15-1"]}) if "one-class steps" in f.text
    ]
