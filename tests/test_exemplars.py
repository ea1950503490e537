"""Exemplar memory: budgets, selection rules, labels of exemplars vs new images, replay share."""

import numpy as np
import pytest
import torch

from incseg_lib.data import load_dataset
from incseg_lib.exemplars import ExemplarMemory, ReplayBatchSampler, ReplayConfig, herding_order
from incseg_lib.losses import known_background
from incseg_lib.tasks import IncrementalSplit
from tests.conftest import write_voc


def _voc(tmp_path):
    """30 tiny images: 0-9 hold class 1 (+2 in 5-9), 10-19 class 2 (+17 in 15-19), 20-29 class 17 (+3)."""
    masks = {}
    for i in range(30):
        m = np.zeros((8, 8), np.uint8)
        first = 1 if i < 10 else (2 if i < 20 else 17)
        m[:4, :4] = first
        if 5 <= i < 10:
            m[4:, 4:] = 2
        if 15 <= i < 20:
            m[4:, :4] = 17
        if i >= 25:
            m[4:, 4:] = 3
        masks[f"im{i:02d}"] = m
    write_voc(tmp_path, masks)
    return load_dataset("voc", "train", root=tmp_path)


def _all_selected(mem):
    return [e.index for e in mem.items]


@pytest.mark.parametrize("strategy", ["random", "class-balanced"])
@pytest.mark.parametrize("setting", ["disjoint", "overlapped"])
def test_budget_uniqueness_and_availability(tmp_path, strategy, setting):
    ds = _voc(tmp_path)
    split = IncrementalSplit("voc", "15-5", 0, setting)
    mem = ExemplarMemory(ReplayConfig(budget=3, strategy=strategy), seed=1)
    mem.update(split, ds, cache_dir=tmp_path / "c")
    picked = _all_selected(mem)
    assert len(picked) == len(set(picked))  # never an image twice
    available = set(split.train_indices(ds).tolist())
    assert set(picked) <= available
    if setting == "disjoint":  # no image holding a future class (17, sheep)
        assert not set(picked) & set(range(15, 30))
    if strategy == "class-balanced":
        per = {c: len(v) for c, v in mem.per_class().items()}
        assert all(n <= 3 for n in per.values()) and per[1] == 3
        for e in mem.items:  # each class gets images that contain it
            assert ds.class_presence()[e.index, e.cls]
    else:
        assert len(picked) <= 3 * len([c for c in split.new_classes if c])


def test_total_budget_is_shared_and_shrinks(tmp_path):
    ds = _voc(tmp_path)
    mem = ExemplarMemory(ReplayConfig(budget=40, mode="total", strategy="class-balanced"))
    assert mem.quota(list(range(1, 16)))[1] == 3 and mem.quota(list(range(1, 21)))[1] == 2  # 40 // 15, 40 // 20
    mem.update(IncrementalSplit("voc", "15-5", 0, "overlapped"), ds)
    before = {c: [e.index for e in v] for c, v in mem.per_class().items()}
    assert len(before[1]) == 3
    mem.update(IncrementalSplit("voc", "15-5", 1, "overlapped"), ds)
    per = mem.per_class()
    assert len(mem) <= 40 and len(per[17]) == 2 and all(len(v) <= 2 for v in per.values())
    for c, v in mem.per_class().items():  # old classes keep their first-chosen images
        if c in before:
            assert [e.index for e in v] == before[c][: len(v)]
    assert len(set(_all_selected(mem))) == len(mem)


def test_exemplar_labels_vs_new_image_labels(tmp_path):
    ds = _voc(tmp_path)
    s0, s1 = (IncrementalSplit("voc", "15-5", t, "overlapped") for t in (0, 1))
    mem = ExemplarMemory(ReplayConfig(budget=10, strategy="class-balanced"))
    mem.update(s0, ds)
    replay = mem.dataset(s1, ds)
    bg = known_background(16)  # annotated for the 16 outputs of step 0
    for k in range(len(replay)):  # exemplars keep old-class labels, later classes become background
        y = np.asarray(replay[k][1])
        idx = [e.index for e in mem.items if tuple(e.classes) == tuple(s0.seen_classes)]
        raw = ds.read_mask(ds.ids.index(replay.ids[k]))
        assert set(np.unique(y)) <= {bg, 1, 2, 3, 255}
        assert ((raw == 17) <= (y == bg)).all() and ((raw == 0) <= (y == bg)).all()
        assert ((raw == 1) == (y == 1)).all() and ((raw == 255) == (y == 255)).all()
    new = s1.train_dataset(ds)
    for k in range(len(new)):  # new images: old classes are background (MiB)
        assert set(np.unique(np.asarray(new[k][1]))) <= {0, s1.class_order.index(17)}
    assert mem.summary(ds)["bytes"] > 0 and len(idx) == len(mem)


def test_herding_picks_the_running_mean_closest():
    f = torch.tensor([[0.0, 0.0], [10.0, 0.0], [1.0, 1.0], [-1.0, -1.0], [0.9, 1.1]])
    mu = f.mean(0)  # (2.18, 0.22)
    order = herding_order(f, 3)
    # step 1: the single closest to mu; step 2: the one making the mean of two closest, ...
    first = int(((f - mu) ** 2).sum(1).argmin())
    assert order[0] == first
    best2 = min((i for i in range(5) if i != first), key=lambda i: float(((mu - (f[first] + f[i]) / 2) ** 2).sum()))
    assert order[1] == best2 and len(set(order)) == 3


def test_replay_share_per_batch():
    s = ReplayBatchSampler(n_new=40, n_memory=5, batch_size=8, share=0.25, generator=torch.Generator().manual_seed(0))
    batches = list(s)
    assert len(batches) == len(s) == 40 // 6
    for b in batches:
        assert len(b) == 8 and sum(i >= 40 for i in b) == 2  # a quarter from memory, every batch
    new = [i for b in batches for i in b if i < 40]
    assert len(new) == len(set(new))  # one pass over the new images
    with pytest.raises(ValueError, match="replay share must be in"):
        ReplayConfig(share=1.0)
    with pytest.raises(ValueError, match="selection strategy 'kmeans'"):
        ReplayConfig(strategy="kmeans")


def test_smib_step_records_memory_and_reuses_it(tiny_cfg, tmp_path, said):
    from incseg_lib.experiment import checkpoint_file, train_step

    cfg = tiny_cfg(task="15-1", max_train_images=60, run_dir=str(tmp_path / "run"))
    replay = ReplayConfig(budget=1, strategy="herding")
    said.clear()
    out = train_step(cfg, step=2, method="mib", replay=replay, progress=False)
    rec = out.record
    assert rec["method"] == "smib" and rec["variant"] == "1pc-herding" and rec["memory"]["images"] == 16
    assert (checkpoint_file(cfg, 2, "mib+mem-1pc-herding").parent / "memory.json").is_file()
    assert any("memory: 16 images" in str(x) for x in said)
    plain = train_step(cfg, step=2, method="mib", progress=False, record=False)
    assert plain.checkpoint != out.checkpoint  # SMiB and MiB never share a checkpoint after step 0
    said.clear()
    train_step(cfg, step=2, method="mib", replay=replay, progress=False, record=False)
    assert not any("epoch 1/1" in str(x) for x in said)  # reused


def test_a_bad_replay_share_is_refused_before_step_0_trains(tmp_path):
    from incseg_lib.config import RunConfig
    from incseg_lib.experiment import run_replay_study

    cfg = RunConfig.from_profile("smoke", run_dir=str(tmp_path / "run"), checkpoint_dir=str(tmp_path / "ck"))
    plan = {"tasks": ["15-5"], "settings": ["overlapped"], "sizes": [1], "methods": ["mib"]}
    with pytest.raises(ValueError, match=r"replay share must be in \(0, 1\).*1.5"):
        run_replay_study(cfg, plan, share=1.5, progress=False)
    assert not (tmp_path / "ck").exists()  # nothing trained
