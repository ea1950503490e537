"""The dataset registry: a dataset is one spec, and one registered from a test file alone trains a
step through the same path as VOC, CamVid and the shapes; a profile that cannot size a dataset is
refused up front."""

import numpy as np
import pytest
from PIL import Image

from incseg_lib.config import RunConfig
from incseg_lib.data import (
    DatasetInfo,
    DatasetSpec,
    dataset_info,
    dataset_names,
    dataset_spec,
    eval_split,
    load_dataset,
    register_dataset,
    train_split,
    unregister_dataset,
    voc_dataset,
)
from incseg_lib.experiment import train_step
from incseg_lib.tasks import get_task, one_class_steps

from .conftest import write_voc

TOY_INFO = DatasetInfo("toy", ("background", "disc", "bar", "cross"), np.eye(4, 3, dtype=np.uint8) * 200, True)


def _toy_open(root, split, incremental, transforms):
    ds = voc_dataset(root, split, transforms)
    ds.info = TOY_INFO
    return ds


def _scene(rng, classes):
    m = np.zeros((40, 40), np.uint8)
    for c in classes:
        y, x = rng.integers(0, 24, 2)
        m[y : y + 16, x : x + 16] = c
    return m


@pytest.fixture
def toy_dataset(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "toy"
    train = {f"t{i}": _scene(rng, [1 + i % 3, 1 + (i + 1) % 3]) for i in range(18)}
    val = {f"v{i}": _scene(rng, [1 + i % 3]) for i in range(6)}
    voc = write_voc(root, train, (40, 40))
    write_voc(root, val, (40, 40), split="val")
    colours = np.array([[90, 90, 90], [220, 40, 40], [40, 200, 40], [40, 40, 230]], np.uint8)
    for i, m in {**train, **val}.items():  # each class its colour, with noise: something to learn
        image = np.clip(colours[m].astype(int) + rng.integers(-30, 30, (*m.shape, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(voc / "JPEGImages" / f"{i}.jpg")
    spec = register_dataset(
        DatasetSpec(
            name="toy",
            label="toy squares",
            info=TOY_INFO,
            tasks={"offline": [[0, 1, 2, 3]], "joint": [[0, 1, 2, 3]], "2-1": [[0, 1, 2], [3]]},
            open=_toy_open,
            one_step_task="2-1",
            profile_values={
                "smoke": dict(
                    crop_size=32,
                    incremental={"tasks": ["2-1"], "settings": ["overlapped"], "methods": ["ft", "mib"]},
                    replay={"tasks": ["2-1"], "settings": ["overlapped"], "sizes": [1], "methods": ["mib"]},
                    probing={"tasks": ["2-1"], "settings": ["overlapped"], "methods": ["ft"], "probe": ["ft"]},
                )
            },
            source="this test",
        )
    )
    yield spec, root
    unregister_dataset("toy")
    assert "toy" not in dataset_names()


def test_shipped_datasets_are_specs():
    assert set(dataset_names()) >= {"shapes", "voc", "camvid"}
    assert train_split("camvid") == "trainval" and train_split("voc", "train_aug") == "train_aug"
    assert eval_split("camvid") == "test" and eval_split("voc") == "val"
    assert dataset_info("camvid").num_classes == 12 and dataset_info("camvid", incremental=False).num_classes == 11
    assert get_task("shapes", "15-1") == get_task("voc", "15-1") and dataset_spec("camvid").one_step_task == "8-3"
    with pytest.raises(ValueError, match="unknown dataset 'kitti'; choose one of"):
        load_dataset("kitti", "train")


def test_a_profile_that_cannot_size_a_dataset_is_refused_up_front():
    with pytest.raises(ValueError, match=r"profile demo has no plan for dataset camvid: .* 15-5, 15-1.*cpu"):
        RunConfig.from_profile("demo", dataset="camvid")
    with pytest.raises(ValueError, match="its task table has no"):
        DatasetSpec(name="x", label="x", info=TOY_INFO, tasks={"offline": [[0]]}, open=_toy_open, one_step_task="1-1")


def test_toy_dataset_trains_a_step_through_the_same_path(toy_dataset, tmp_path):
    _, root = toy_dataset
    cfg = RunConfig.from_profile(
        "smoke",
        dataset="toy",
        data_root=str(root),
        task="2-1",
        epochs=1,
        run_dir=str(tmp_path / "run"),
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    assert cfg.crop_size == 32 and cfg.incremental["tasks"] == ["2-1"] and cfg.weak["tasks"] == ["2-1"]
    assert one_class_steps("2-1")
    out = train_step(cfg, step=1, method="mib", notebook="test", progress=False)
    rec = out.record
    assert rec["dataset"] == "toy" and rec["step"] == 1 and set(rec["iou"]) == set(TOY_INFO.class_names)
    assert out.model.classes_per_step == [3, 1]
