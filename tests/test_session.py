"""open_notebook: a notebook's parameters cell becomes its RunConfig, run folder, seed and one line."""

import pytest
import torch

from incseg_lib.experiment import notebook_overrides, open_notebook


def test_parameters_named_like_fields_override_the_profile_and_sentinels_keep_it(tmp_path):
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
    said = []
    cfg = open_notebook("02_x", params, print_fn=said.append)
    assert cfg.profile == "demo" and cfg.epochs_next == 3 and cfg.epochs == 16 and cfg.run_dir == str(tmp_path)
    assert cfg.protocol == "shared" and cfg.lr_next == 0.03  # the profile's rate kept
    assert len(said) == 1 and said[0].startswith("02_x: demo profile, shapes") and str(tmp_path) in said[0]
    first = torch.rand(3)
    open_notebook("02_x", params, print_fn=said.append)
    assert torch.equal(torch.rand(3), first)  # seeded


def test_smoke_flag_and_default_run_folder(isolated_home):
    cfg = open_notebook("03_y", dict(profile="demo", smoke=True, run_dir=""), print_fn=lambda *a: None)
    assert cfg.profile == "smoke" and cfg.run_dir.endswith("runs/03_y")


def test_a_bad_value_names_the_option():
    with pytest.raises(ValueError, match="epochs"):
        open_notebook("02_x", dict(profile="demo", epochs="many"), print_fn=lambda *a: None)
    with pytest.raises(ValueError, match="profile"):
        open_notebook("02_x", dict(profile="huge"), print_fn=lambda *a: None)


def test_training_log_keeps_epoch_lines_in_its_file(tmp_path):
    from incseg_lib.config import RunConfig
    from incseg_lib.experiment import TrainingLog

    cfg = RunConfig.from_profile("smoke", run_dir=str(tmp_path))
    said = []
    log = TrainingLog(cfg, "02_x", print_fn=said.append)
    log("[shapes 15-5 step 1 mib] resnet18, 40 training images")
    log("epoch 1/2  loss 1.2345  lr 5.00e-03")
    log("  eval (full, 4 images): mIoU 3.0")
    assert said == ["[shapes 15-5 step 1 mib] resnet18, 40 training images", "  eval (full, 4 images): mIoU 3.0"]
    assert log.path.read_text().splitlines()[1] == "epoch 1/2  loss 1.2345  lr 5.00e-03"


def test_training_log_prints_everything_when_its_folder_cannot_be_written(tmp_path):
    from incseg_lib.config import RunConfig
    from incseg_lib.experiment import TrainingLog

    (tmp_path / "logs").write_text("a file where the folder should be")
    said = []
    log = TrainingLog(RunConfig.from_profile("smoke", run_dir=str(tmp_path)), "02_x", print_fn=said.append)
    log("epoch 1/2  loss 1.0")
    assert "cannot be written" in said[0] and said[1] == "epoch 1/2  loss 1.0"
