"""Task protocols against MiB's definitions (Cermelli et al. CVPR 2020, Sec. 4.1)."""

import numpy as np
import pytest

from incseg_lib.tasks import IncrementalSplit, get_task, one_class_steps, task_names


def presence(rows, C=21):
    P = np.zeros((len(rows), C), bool)
    for i, classes in enumerate(rows):
        P[i, [0] + list(classes)] = True
    return P


# image 0: old only; 1: new 16; 2: new 16 + old 3; 3: new 16 + future 18; 4: future 18 only;
# 5: class 20 (last); 6: background only
ROWS = [[3], [16], [16, 3], [16, 18], [18], [20], []]


def test_task_tables_follow_mib():
    assert get_task("voc", "15-5") == [list(range(16)), [16, 17, 18, 19, 20]]
    assert get_task("voc", "19-1") == [list(range(20)), [20]]
    assert get_task("voc", "15-5s") == get_task("voc", "15-1") == [list(range(16))] + [[c] for c in range(16, 21)]
    assert len(get_task("voc", "10-1")) == 11
    for t in ("offline", "19-1", "15-5", "15-1", "10-1"):
        assert sorted(c for s in get_task("voc", t) for c in s) == list(range(21))
    assert sorted(c for s in get_task("camvid", "8-1") for c in s) == list(range(12))


def test_one_class_steps_reads_the_tables_and_aliases():
    assert [one_class_steps(t) for t in ("15-1", "15-5s", "10-1", "19-1", "8-1")] == [True] * 5
    assert [one_class_steps(t) for t in ("15-5", "8-3", "offline", "joint", "nope")] == [False] * 5


def test_overlapped_keeps_every_image_with_a_new_class():
    P = presence(ROWS)
    s = IncrementalSplit("voc", "15-1", 1, "overlapped")  # step 1 learns class 16
    assert s.select(P).tolist() == [1, 2, 3]


def test_disjoint_excludes_future_classes():
    P = presence(ROWS)
    s = IncrementalSplit("voc", "15-1", 1, "disjoint")
    assert s.select(P).tolist() == [1, 2]  # image 3 holds future class 18


def test_step0_selection():
    P = presence(ROWS)
    # overlapped step 0 of 15-5: any image with a class 1..15 (future classes allowed)
    assert IncrementalSplit("voc", "15-5", 0, "overlapped").select(P).tolist() == [0, 2]
    # disjoint step 0: only classes 1..15 -> image 2 holds 16 (future), out
    assert IncrementalSplit("voc", "15-5", 0, "disjoint").select(P).tolist() == [0]
    # offline: every image
    assert IncrementalSplit("voc", "offline", 0).select(P).tolist() == list(range(len(ROWS)))


def test_last_step_disjoint_equals_overlapped():
    P = presence(ROWS)
    a = IncrementalSplit("voc", "15-1", 5, "disjoint").select(P)
    b = IncrementalSplit("voc", "15-1", 5, "overlapped").select(P)
    assert a.tolist() == b.tolist() == [5]


def test_train_labels_keep_only_current_classes():
    s = IncrementalSplit("voc", "15-5", 1, "overlapped")
    lut = s.train_lut()
    mask = np.array([0, 3, 15, 16, 20, 255], np.uint8)
    assert lut[mask].tolist() == [0, 0, 0, 16, 20, 255]  # old -> background, 255 stays
    s0 = IncrementalSplit("voc", "15-5", 0, "overlapped")
    assert s0.train_lut()[mask].tolist() == [0, 3, 15, 0, 0, 255]  # future -> background


def test_eval_labels_keep_seen_classes():
    s = IncrementalSplit("voc", "15-1", 2, "disjoint")  # seen: 0..17
    mask = np.array([5, 16, 17, 18, 20, 255], np.uint8)
    assert s.eval_lut()[mask].tolist() == [5, 16, 17, 0, 0, 255]
    assert s.old_classes == list(range(17)) and s.new_classes == [17]
    assert s.classes_per_step == [16, 1, 1] and s.num_seen == 18
    assert s.base_classes == list(range(16)) and s.added_classes == [16, 17]


def test_offline_labels_keep_everything():
    s = IncrementalSplit("voc", "offline", 0)
    assert s.train_lut()[np.arange(21)].tolist() == list(range(21))


def test_bad_names_list_valid_ones():
    with pytest.raises(ValueError, match="valid tasks: offline, 19-1, 15-5"):
        IncrementalSplit("voc", "16-4", 0)
    with pytest.raises(ValueError, match="steps 0..1"):
        IncrementalSplit("voc", "15-5", 2)
    with pytest.raises(ValueError, match="setting"):
        IncrementalSplit("voc", "15-5", 0, "mixed")
    assert "15-5s" in task_names("voc")


def test_split_from_real_masks_is_cached_and_deterministic(tmp_path):
    from incseg_lib.data import voc_dataset
    from tests.conftest import write_voc

    z = np.zeros((8, 8), np.uint8)
    masks = {
        "a": z + 3,
        "b": np.where(np.eye(8) > 0, 16, 0),
        "c": np.where(np.eye(8) > 0, 18, 16),
        "d": np.full((8, 8), 255),
    }
    write_voc(tmp_path / "voc", {k: np.asarray(v, np.uint8) for k, v in masks.items()})
    ds = voc_dataset(tmp_path / "voc", "train")
    s = IncrementalSplit("voc", "15-1", 1, "disjoint")
    cache = tmp_path / "cache"
    assert s.train_indices(ds, cache).tolist() == [1]
    assert len(list(cache.glob("split-*.json"))) == 1 and len(list(cache.glob("presence-*.npy"))) == 1
    assert s.train_indices(ds, cache).tolist() == [1]  # from the cache
    over = IncrementalSplit("voc", "15-1", 1, "overlapped").train_dataset(ds, cache)
    assert over.ids == ["b", "c"]
    _, m = over[1]
    assert set(np.unique(np.asarray(m)).tolist()) == {0, 16}  # 18 (future) is background at step 1


def test_no_training_image_is_a_clear_error(tmp_path):
    from incseg_lib.data import voc_dataset
    from tests.conftest import write_voc

    write_voc(tmp_path / "voc", {"a": np.full((8, 8), 3, np.uint8), "b": np.full((8, 8), 4, np.uint8)})
    ds = voc_dataset(tmp_path / "voc", "train")
    with pytest.raises(ValueError, match="no training image .* 15-5 .*step 1"):
        IncrementalSplit("voc", "15-5", 1, "disjoint").train_dataset(ds)


def test_void_as_background_is_mibs_training_label():
    """MiB's dataset maps 255 to 0 in training (dataset/voc.py: inverted_order[255] = masking_value = 0)."""
    s = IncrementalSplit("voc", "15-5", 1, "overlapped")
    mask = np.array([0, 3, 16, 255], np.uint8)
    assert s.train_lut("background")[mask].tolist() == [0, 0, 16, 0]
    assert s.train_lut()[mask].tolist() == [0, 0, 16, 255]
    with pytest.raises(ValueError, match="void_label 'zero'"):
        s.train_lut("zero")


def test_mib_test_protocol_keeps_images_with_a_seen_class_and_ignores_unseen(tmp_path):
    """MiB's test split at step t: images holding a seen class; unseen classes -> 255."""
    from incseg_lib.data import voc_dataset
    from tests.conftest import write_voc

    z = np.zeros((8, 8), np.uint8)
    masks = {"a": z + 3, "b": np.where(np.eye(8) > 0, 18, 0), "c": np.where(np.eye(8) > 0, 18, 16), "d": z}
    write_voc(tmp_path / "voc", {k: np.asarray(v, np.uint8) for k, v in masks.items()})
    ds = voc_dataset(tmp_path / "voc", "train")
    s = IncrementalSplit("voc", "15-1", 1, "overlapped")  # seen 0..16
    full = s.eval_dataset(ds)
    assert full.ids == ["a", "b", "c", "d"]
    assert set(np.unique(np.asarray(full[2][1])).tolist()) == {0, 16}  # future 18 -> background
    mib = s.eval_dataset(ds, unseen="ignore", cache_dir=tmp_path / "cache")
    assert mib.ids == ["a", "c"]  # "b" holds only an unseen class, "d" only background
    assert set(np.unique(np.asarray(mib[1][1])).tolist()) == {16, 255}  # future 18 ignored
    last = IncrementalSplit("voc", "15-1", 5, "overlapped")
    assert last.eval_dataset(ds, unseen="ignore").ids == ["a", "b", "c"]
    with pytest.raises(ValueError, match="unseen='drop'"):
        s.eval_dataset(ds, unseen="drop")
