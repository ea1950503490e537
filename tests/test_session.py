"""open_notebook: a notebook's parameters cell becomes its RunConfig, run folder, seed and one line."""

import pytest
import torch

from incseg_lib.experiment import notebook_overrides, open_notebook


def test_parameters_named_like_fields_override_the_profile_and_sentinels_keep_it(tmp_path, said):
    params = dict(
        profile="demo",
        smoke=False,
        dataset="",
        epochs=0,
        epochs_next=3,
        lr_next=0.0,
        seed=0,
        protocol="shared",
        run_dir=str(tmp_path),
        tasks="15-1",
        methods="mib",
        joint=True,
    )
    assert notebook_overrides(params) == dict(
        dataset=None, epochs=None, epochs_next=3, lr_next=None, seed=0, protocol="shared"
    )  # tasks, methods, joint: the notebook's own; seed 0 is a seed
    said.clear()
    cfg = open_notebook("02_x", params)
    assert cfg.profile == "demo" and cfg.epochs_next == 3 and cfg.epochs == 16 and cfg.run_dir == str(tmp_path)
    assert cfg.protocol == "shared" and cfg.lr_next == 0.03  # the profile's rate kept
    assert len(said) == 1 and said[0].startswith("02_x: demo profile, shapes") and str(tmp_path) in said[0]
    first = torch.rand(3)
    open_notebook("02_x", params)
    assert torch.equal(torch.rand(3), first)  # seeded


def test_smoke_flag_and_default_run_folder(isolated_home):
    cfg = open_notebook("03_y", dict(profile="demo", smoke=True, run_dir=""))
    assert cfg.profile == "smoke" and cfg.run_dir.endswith("runs/03_y")


def test_a_bad_value_names_the_option():
    with pytest.raises(ValueError, match="epochs"):
        open_notebook("02_x", dict(profile="demo", epochs="many"))
    with pytest.raises(ValueError, match="profile"):
        open_notebook("02_x", dict(profile="huge"))


def test_training_log_keeps_epoch_lines_in_its_file(tmp_path, capsys):
    from incseg_lib.config import RunConfig
    from incseg_lib.experiment import TrainingLog
    from incseg_lib.log import get_logger

    lib = get_logger("incseg_lib.experiment.step")
    with TrainingLog(RunConfig.from_profile("smoke", run_dir=str(tmp_path)), "02_x") as log:
        lib.info("[shapes 15-5 step 1 mib] resnet18, 40 training images")
        lib.info("epoch 1/2  loss 1.2345  lr 5.00e-03")
        lib.info("  eval (full, 4 images): mIoU 3.0")
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["[shapes 15-5 step 1 mib] resnet18, 40 training images", "  eval (full, 4 images): mIoU 3.0"]
    assert log.path.read_text().splitlines()[1] == "epoch 1/2  loss 1.2345  lr 5.00e-03"
    lib.info("epoch 2/2  loss 1.0")  # closed: printed again, the file untouched
    assert capsys.readouterr().out == "epoch 2/2  loss 1.0\n" and len(log.path.read_text().splitlines()) == 3


def test_a_training_log_opened_again_replaces_the_first(tmp_path, capsys):
    from incseg_lib.config import RunConfig
    from incseg_lib.experiment import TrainingLog
    from incseg_lib.log import get_logger

    cfg = RunConfig.from_profile("smoke", run_dir=str(tmp_path))
    TrainingLog(cfg, "02_x")
    with TrainingLog(cfg, "02_x") as log:  # a re-run notebook cell
        get_logger("incseg_lib.x").info("once")
    assert log.path.read_text() == "once\n" and capsys.readouterr().out == "once\n"


def test_training_log_prints_everything_when_its_folder_cannot_be_written(tmp_path, capsys):
    from incseg_lib.config import RunConfig
    from incseg_lib.experiment import TrainingLog
    from incseg_lib.log import get_logger

    (tmp_path / "logs").write_text("a file where the folder should be")
    with TrainingLog(RunConfig.from_profile("smoke", run_dir=str(tmp_path)), "02_x"):
        get_logger("incseg_lib.x").info("epoch 1/2  loss 1.0")
    printed = capsys.readouterr().out.splitlines()
    assert "cannot be written" in printed[0] and printed[1] == "epoch 1/2  loss 1.0"


def test_a_log_level_set_before_the_library_is_imported_stands():
    """The benchmarks quiet the library before importing it: its import must not reset the level."""
    import subprocess
    import sys

    code = (
        "import logging; logging.getLogger('incseg_lib').setLevel(logging.WARNING)\n"
        "from incseg_lib.log import get_logger\n"
        "get_logger('incseg_lib.x').info('INFO-LINE'); get_logger('incseg_lib.x').warning('WARNING-LINE')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "WARNING-LINE" in out and "INFO-LINE" not in out
    default = subprocess.run(
        [sys.executable, "-c", "from incseg_lib.log import get_logger; get_logger('incseg_lib.x').info('INFO-LINE')"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert default == "INFO-LINE\n"  # by default: the bare message, on stdout
