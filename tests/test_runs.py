"""Run names: built and read in one module (incseg_lib.runs); recorded names and their labels."""

import pytest

from incseg_lib import runs


@pytest.mark.parametrize(
    "method, variant, tag, full, recorded, shown",
    [
        ("mib", "", "", "mib", "mib", "MiB"),
        ("mib", runs.REPLAY, "5pc-class-balanced", "mib+mem-5pc-class-balanced", "smib", "SMiB"),
        ("ft", runs.REPLAY, "20tot-herding", "ft+mem-20tot-herding", "ft+mem", "FT + memory"),
        ("mib", runs.SYNTHETIC, "0a1b2c3d4e", "mib+di-0a1b2c3d4e", "mib+di", "MiB+DI"),
        ("ft", runs.WEAK, "0a1b2c3d4e", "ft+seam-0a1b2c3d4e", "ft-s", "FT-S"),
        ("sdr-only", runs.SYNTHETIC, "ab", "sdr-only+di-ab", "sdr-only+di", "SDR without MiB+DI"),
    ],
)
def test_names_round_trip(method, variant, tag, full, recorded, shown):
    assert runs.run_name(method, variant, tag) == full
    assert runs.parse_run_name(full) == (method, variant)
    assert runs.recorded_name(full) == recorded
    assert runs.base_method(recorded) == (method, variant)
    assert runs.display_name(recorded) == shown
    assert runs.display_name(recorded + "|5pc") == f"{shown} (5pc)"


def test_runs_that_are_not_step_methods():
    assert runs.display_name("step0-bce") == "step 0 (BCE)" and runs.display_name("joint-s") == "Joint-S"
    assert runs.base_method("joint-s") == ("joint-s", "")  # not MiB-S of a method "joint"
    assert runs.display_name("unknown+thing") == "unknown+thing"
    assert runs.is_replay("smib|1pc") and runs.is_replay("ft+mem") and not runs.is_replay("mib+di")
    order = ["joint", "smib", "mib-s", "mib+di", "mib", "ft+mem", "ft", "step0-bce", "step0", "plop"]
    assert sorted(order, key=runs.run_rank) == [
        "step0",
        "step0-bce",
        "ft",
        "ft+mem",
        "mib",
        "mib+di",
        "mib-s",
        "plop",
        "smib",
        "joint",
    ]
    with pytest.raises(ValueError, match="run variant"):
        runs.run_name("mib", "+x-", "tag")
    with pytest.raises(ValueError, match="give its tag"):
        runs.run_name("mib", runs.REPLAY, "")
