"""EWF (Endpoints Weight Fusion): the fusion formula, its weight, the variant on top of any method,
and the engine hook that fuses once, before the step's checkpoint."""

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from incseg_lib import results
from incseg_lib.engine import Hooks, Saving, Schedule, fit
from incseg_lib.experiment import load_step_model, train_step
from incseg_lib.methods import get_method, is_method, method_names, method_spec
from incseg_lib.methods.ewf import MOST_CHANGED_SHARE, fuse_endpoints, fusion_weight
from incseg_lib.models.classifier import IncrementalClassifier


class Tiny(nn.Module):
    def __init__(self, classes=(3,)):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.norm = nn.BatchNorm2d(4)
        self.head = IncrementalClassifier(4, list(classes))

    def classifiers(self):
        return [self.head]

    def forward(self, x, aux=None):
        return {"out": self.head(self.norm(self.conv(x)))}


def _pair(seed=0):
    torch.manual_seed(seed)
    old = Tiny()
    old.norm.running_mean.uniform_(-1, 1)
    new = Tiny()
    new.load_state_dict(old.state_dict())
    new.head.add_step(2)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(torch.randn_like(p))
        new.norm.running_var.add_(0.5)
        new.norm.num_batches_tracked.fill_(7)
    return old, new


def test_fusion_weight_is_the_square_root_of_the_new_share_of_classes():
    assert fusion_weight(1, 16) == pytest.approx(math.sqrt(1 / 17))  # VOC 15-1 step 1: 0.243
    assert fusion_weight(5, 16) == pytest.approx(math.sqrt(5 / 21))
    with pytest.raises(ValueError, match="at least 1"):
        fusion_weight(0, 16)


def test_fused_parameters_equal_the_formula_and_new_heads_are_kept():
    old, new = _pair()
    before = {k: v.clone() for k, v in new.state_dict().items()}
    w = 0.3
    fuse_endpoints(new, old, w)
    after, o = new.state_dict(), old.state_dict()
    for name in (
        "conv.weight",
        "conv.bias",
        "norm.weight",
        "norm.running_mean",
        "norm.running_var",
        "head.heads.0.weight",
    ):
        assert torch.allclose(after[name], (1 - w) * o[name] + w * before[name]), name
    assert torch.equal(after["head.heads.1.weight"], before["head.heads.1.weight"])  # absent from the old model
    assert after["norm.num_batches_tracked"].item() == 7  # an integer counter keeps the new value
    for w, want in ((0.0, o), (1.0, before)):  # the end points
        old, new = _pair()
        fuse_endpoints(new, old, w)
        assert torch.allclose(new.state_dict()["conv.weight"], want["conv.weight"])


def test_most_changed_fuses_only_the_entries_that_moved_most():
    old, new = _pair(1)
    before = {k: v.clone() for k, v in new.state_dict().items()}
    fuse_endpoints(new, old, 0.5, most_changed=MOST_CHANGED_SHARE)
    names = [n for n, t in old.state_dict().items() if t.is_floating_point()]
    delta = torch.cat([(before[n] - old.state_dict()[n]).abs().flatten() for n in names])
    fused = torch.cat([(new.state_dict()[n] != before[n]).flatten() for n in names])
    assert fused.sum().item() == int(delta.numel() * MOST_CHANGED_SHARE)  # the top 45 % by |new - old|
    assert delta[fused].min() >= delta[~fused].max()
    with pytest.raises(ValueError, match="most_changed"):
        fuse_endpoints(new, old, 0.5, most_changed=1.5)


def test_ewf_is_a_variant_of_any_method_not_a_method_of_the_list():
    assert is_method("mib+ewf") and is_method("plop+ewf") and not is_method("nothing+ewf")
    spec = method_spec("mib+ewf")
    assert spec.label == "MiB+EWF" and spec.protocol == method_spec("mib").protocol and spec.ablation_of == "mib"
    assert "mib+ewf" not in method_names() and results.display_name("mib+ewf") == "MiB+EWF"
    method = get_method("mib+ewf")
    assert method.finish is not None and method.uses_old_model and get_method("mib").finish is None
    with pytest.raises(ValueError, match=r"\+ewf"):
        method_spec("nothing")


def test_fit_finishes_once_before_the_final_checkpoint(tmp_path):
    data = [(torch.randn(3, 8, 8), torch.randint(0, 3, (8, 8))) for _ in range(4)]
    calls = []

    def finish(model):
        calls.append(1)
        with torch.no_grad():
            model.conv.bias.fill_(42.0)

    model, ckpt = Tiny(), tmp_path / "step.pt"
    schedule = Schedule(epochs=2, batch_size=2, lr=0.01)
    fit(model, data, schedule, saving=Saving(checkpoint=ckpt, key={"k": 1}), hooks=Hooks(finish=finish), progress=False)
    assert calls == [1] and torch.all(model.conv.bias == 42.0)
    again = Tiny()
    fit(again, data, schedule, saving=Saving(checkpoint=ckpt, key={"k": 1}), hooks=Hooks(finish=finish), progress=False)
    assert calls == [1] and torch.all(again.conv.bias == 42.0)  # the finished checkpoint, loaded, not re-finished


def test_a_step_of_mib_ewf_keeps_the_old_heads_and_fuses_the_rest(tiny_cfg):
    cfg = tiny_cfg(max_train_images=24)
    quiet = dict(notebook="test", progress=False)
    out = train_step(cfg, step=1, method="mib+ewf", **quiet)
    step0 = load_step_model(cfg, 0, "step0")
    mib = train_step(cfg, step=1, method="mib", **quiet).model
    fused, old = out.model.state_dict(), step0.state_dict()
    w = fusion_weight(5, 16)  # 15-5 step 1: 5 new classes, 16 old (background included)
    head_w, head_b = "head.classifier.heads.0.weight", "head.classifier.heads.0.bias"
    assert torch.allclose(fused[head_w], old[head_w], rtol=0, atol=1e-7)  # frozen while training: fused = old
    assert torch.allclose(fused[head_b][1:], old[head_b][1:], rtol=0, atol=1e-7)
    # background's bias: MiB's init set it to b - log(N + 1) before training (frozen since), fused with b
    assert fused[head_b][0].item() == pytest.approx(old[head_b][0].item() - w * math.log(6), abs=1e-5)
    name = next(k for k in old if k.startswith("ffm.") and k.endswith("weight"))
    assert not torch.equal(fused[name], old[name]) and not torch.equal(fused[name], mib.state_dict()[name])
    assert out.record["method"] == "mib+ewf" and results.display_name(out.record["method"]) == "MiB+EWF"


def test_refusing_moves_along_the_line_from_the_old_model_to_the_end_point():
    from incseg_lib.experiment.fusion import refuse

    old, new = _pair(3)
    end = {k: v.clone() for k, v in new.state_dict().items()}
    w0 = fusion_weight(2, 3)
    fuse_endpoints(new, old, w0)
    back = refuse(new, old, 1.0, w0).state_dict()  # w = 1: the trained end point again
    start = refuse(new, old, 0.0, w0).state_dict()  # w = 0: the old model's tensors, new heads kept
    half = refuse(new, old, 0.5, w0).state_dict()
    for k, t in old.state_dict().items():
        if t.is_floating_point():
            assert torch.allclose(back[k], end[k], atol=1e-5) and torch.equal(start[k], t)
            assert torch.allclose(half[k], 0.5 * t + 0.5 * end[k], atol=1e-5)
    assert torch.equal(start["head.heads.1.weight"], end["head.heads.1.weight"])
    with pytest.raises(ValueError, match="w must lie"):
        refuse(new, old, 1.5, w0)


def test_ewf_sweep_records_one_evaluation_per_weight_with_ewfs_own(tiny_cfg):
    from incseg_lib.experiment.fusion import ewf_sweep

    cfg = tiny_cfg(max_train_images=24)
    recs = ewf_sweep(cfg, "mib", (0.0, 1.0), notebook="test", progress=False)
    w0 = fusion_weight(5, 16)
    assert [r["ewf_w"] for r in recs] == sorted([0.0, w0, 1.0]) and [r["ewf_default"] for r in recs] == [0, 1, 0]
    assert recs[1]["method"] == "mib+ewf|w=0.49" and results.display_name(recs[1]["method"]) == "MiB+EWF (w=0.49)"
    names = [p.name for p in Path(cfg.run_dir, "results").glob("*.json")]
    assert names and not [n for n in names if "|" in n]  # a name Windows and Drive take
    own = train_step(cfg, step=1, method="mib+ewf", notebook="test", progress=False)
    assert recs[1]["miou_all"] == pytest.approx(own.record["miou_all"], abs=1e-6)  # w0 is the run itself
