"""A few training iterations on the real data in ../shared/data (skipped when absent)."""

import numpy as np
import pytest

from incseg_lib.config import RunConfig
from incseg_lib.data import load_dataset
from incseg_lib.experiment import train_step
from incseg_lib.tasks import IncrementalSplit
from tests.conftest import shared


def test_voc_mini_masks_and_split():
    root = shared("voc2012-mini")
    train = load_dataset("voc", "train", root=root)
    val = load_dataset("voc", "val", root=root)
    assert (len(train), len(val)) == (437, 445)
    P = train.class_presence()
    assert P[:, 8].sum() == 131 and P[:, 12].sum() == 121  # cat, dog (data README)
    s = IncrementalSplit("voc", "15-5", 1, "disjoint").select(P)
    assert len(s) > 0 and P[s][:, 16:21].any(1).all()  # every image holds a class of step 1


@pytest.mark.parametrize("dataset,name,task", [("voc", "voc2012-mini", "offline"), ("camvid", "camvid", "8-3")])
def test_short_real_training_run(dataset, name, task, tmp_path):
    root = shared(name)
    cfg = RunConfig.from_profile(
        "smoke",
        dataset=dataset,
        data_root=str(root),
        task=task,
        epochs=1,
        crop_size=96,
        max_train_images=16,
        max_val_images=4,
        run_dir=str(tmp_path),
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    out = train_step(cfg, step=0, method="offline", notebook="test", progress=False)
    assert out.history["epochs_done"] == 1 and np.isfinite(out.history["loss"][0])
    rec = out.record
    assert rec.dataset == dataset and 0 <= rec.pixel_acc <= 1
    if dataset == "camvid":  # incremental form: background + 8 classes at step 0, in class-id order
        assert list(rec.iou)[:2] == ["background", "sky"] and len(rec.iou) == 9


@pytest.mark.parametrize(
    "dataset,name,task,method", [("voc", "voc2012-mini", "15-5", "mib"), ("camvid", "camvid", "8-1", "rw")]
)
def test_short_real_incremental_step(dataset, name, task, method, tmp_path):
    """Step 1 on real masks: old classes are background in training, every seen class is evaluated."""
    root = shared(name)
    cfg = RunConfig.from_profile(
        "smoke",
        dataset=dataset,
        data_root=str(root),
        task=task,
        setting="overlapped",
        epochs=1,
        crop_size=64,
        max_train_images=80,
        max_val_images=4,
        run_dir=str(tmp_path),
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    out = train_step(cfg, step=1, method=method, notebook="test", progress=False)
    split = out.split
    assert split.new_classes == ([16, 17, 18, 19, 20] if dataset == "voc" else [9])
    base = load_dataset(dataset, "trainval" if dataset == "camvid" else "train", root=root, max_images=80)
    train = split.train_dataset(base)
    first_new = split.num_seen - len(split.new_classes)
    for i in range(min(len(train), 5)):  # old classes are background here (background shift)
        values = set(np.unique(np.asarray(train[i][1])).tolist())
        assert values <= {0, 255} | set(range(first_new, split.num_seen)) and values & set(range(first_new, 99))
    rec = out.record
    assert rec["method"] == method and rec["step"] == 1 and len(rec["iou"]) == split.num_seen
    assert rec["miou_new"] is not None or all(
        rec["iou"][n] is None for n in list(rec["iou"])[-len(split.new_classes) :]
    )
