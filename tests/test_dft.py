"""DFT* (fine-tuning on frozen features, RevisitingCSS): the backbone and old heads stay bit-identical
with their BatchNorm statistics, future heads exist from step 0 and are never predicted early."""

from __future__ import annotations

import pytest
import torch

from incseg_lib import results
from incseg_lib.config import RunConfig
from incseg_lib.engine.fit import keep_frozen_statistics
from incseg_lib.experiment import keys, load_step_model, train_step
from incseg_lib.methods import get_method, method_spec, preallocates
from incseg_lib.methods.dft import freeze_all_but_heads_from
from incseg_lib.models import BiSeNet, IncrementalClassifier, limit_to_seen

QUIET = dict(notebook="test", progress=False)


def test_dft_declares_its_protocol_and_pre_allocated_step0():
    spec = method_spec("dft")
    assert spec.label == "DFT*" and spec.family == "frozen features"
    assert spec.step0 == "step0-prealloc" and preallocates("step0-prealloc") and not preallocates("step0")
    assert spec.protocol.lr_factor == pytest.approx(0.0005 / 0.02) and spec.protocol.ce_normalisation == "all"
    nopre = method_spec("dft-nopre")
    assert nopre.step0 == "step0" and not nopre.preallocate and nopre.ablation_of == "dft"
    assert not get_method("dft").uses_old_model  # no distillation: no frozen copy of the old model


def test_unseen_heads_train_but_are_not_predicted():
    clf = IncrementalClassifier(4, [3, 2, 2])
    x = torch.randn(2, 4, 5, 5)
    clf.seen_steps = 1
    assert clf.train()(x).shape[1] == 7  # trained against every head (future ones as negatives)
    assert clf.eval()(x).shape[1] == 3  # predicted over the classes seen so far
    model = BiSeNet([3, 2, 2], "resnet18", "")
    limit_to_seen(model, 2)
    assert all(c.seen_steps == 2 for c in model.classifiers())
    limit_to_seen(model, 3)
    assert all(c.seen_steps is None for c in model.classifiers())


def test_freezing_leaves_only_current_and_future_heads_and_keeps_bn_statistics():
    model = BiSeNet([3, 2, 2], "resnet18", "")
    freeze_all_but_heads_from(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".classifier.heads.1." in n or ".classifier.heads.2." in n for n in trainable)
    model.train()
    keep_frozen_statistics(model)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    with pytest.raises(ValueError, match="from step 1"):
        freeze_all_but_heads_from(model, 0)


def test_a_step_of_dft_keeps_backbone_and_old_heads_bit_identical(tiny_cfg):
    cfg: RunConfig = tiny_cfg(max_train_images=24)
    out = train_step(cfg, step=1, method="dft", **QUIET)
    step0 = load_step_model(cfg, 0, "step0-prealloc")
    # future heads exist from step 0: 15-5's step 0 holds both steps' heads
    assert [c.classes_per_step for c in step0.classifiers()][0] == [16, 5]
    assert step0(torch.zeros(1, 3, 32, 32))["out"].shape[1] == 16  # not predicted before their step
    old, new = step0.state_dict(), out.model.state_dict()
    moved = [n for n in old if not torch.equal(old[n], new[n])]
    assert moved and all(".classifier.heads.1." in n for n in moved)  # BN statistics included
    assert out.model(torch.zeros(1, 3, 32, 32))["out"].shape[1] == 21
    assert out.record["method"] == "dft" and results.display_name("dft") == "DFT*"
    assert out.record["step_protocol"]["lr"] == pytest.approx(cfg.lr * 0.0005 / 0.02)
    # a pre-allocated step 0 depends on the whole task: 15-5's is not 15-1's
    assert keys.checkpoint_file(cfg, 0, "step0-prealloc") != keys.checkpoint_file(
        cfg.replace(task="15-1"), 0, "step0-prealloc"
    )
    assert keys.checkpoint_file(cfg, 0, "step0") == keys.checkpoint_file(cfg.replace(task="15-1"), 0, "step0")


def test_dft_without_preallocation_grows_a_head_on_the_shared_step0(tiny_cfg):
    cfg = tiny_cfg(max_train_images=24)
    out = train_step(cfg, step=1, method="dft-nopre", **QUIET)
    step0 = load_step_model(cfg, 0, "step0")
    assert step0.classifiers()[0].classes_per_step == [16]
    old, new = step0.state_dict(), out.model.state_dict()
    assert all(torch.equal(old[n], new[n]) for n in old)  # every step-0 tensor untouched
    assert out.model.classifiers()[0].classes_per_step == [16, 5]
