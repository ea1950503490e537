"""Methods: MiB's classifier initialisation, loss composition, and a step-1 run per method."""

import pytest
import torch

from incseg_lib import losses
from incseg_lib.experiment import train_step
from incseg_lib.methods import get_method, method_names, method_spec, mib_init
from incseg_lib.models import BiSeNet


def test_mib_init_keeps_old_probabilities_and_splits_background():
    torch.manual_seed(0)
    model = BiSeNet([4], "resnet18").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        p_old = model(x)["out"].softmax(1)
        model.add_step(3)
        mib_init(model, 3)
        p_new = model(x)["out"].softmax(1)
    # old classes unchanged; background + new classes together = old background (MiB Sec. 3.4)
    torch.testing.assert_close(p_new[:, 1:4], p_old[:, 1:4], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(p_new[:, [0, 4, 5, 6]].sum(1), p_old[:, 0], rtol=1e-4, atol=1e-6)
    head = model.head.classifier
    assert torch.equal(head.heads[1].weight[2], head.heads[0].weight[0])


def test_defaults_and_errors():
    assert get_method("mib").weights == {"ukd": 10.0}
    assert get_method("mib", protocol="shared").weights == {"ukd": 10.0}  # MiB's code: 10 for every task
    assert get_method("mib", kd_weight=100).weights == {"ukd": 100.0}
    assert get_method("lwf").weights == {"kd": 100.0}
    assert get_method("ilt").weights == {"kd": 100.0, "feature": 100.0}
    assert get_method("lwf-mc").weights == {"bce_kd": 10.0} and get_method("lwf-mc").step0 == "step0-bce"
    assert get_method("mib").step0 == "step0"
    assert not get_method("ft").uses_old_model and get_method("lwf-mc").uses_old_model
    with pytest.raises(ValueError, match="unknown method 'icarl'"):
        get_method("icarl")
    with pytest.raises(ValueError, match="needs the previous step"):
        get_method("mib").loss_fn(None, 16)


def _old_and_new():
    """A frozen step-0 BiSeNet with 3 outputs and its step-1 copy with 2 more."""
    torch.manual_seed(0)
    old = BiSeNet([3], "resnet18").eval()
    new = BiSeNet([3], "resnet18")
    new.load_state_dict(old.state_dict())
    new.add_step(2)
    return old, new


def test_loss_terms_compose():
    """Distillation terms use the final output only; aux heads get the classification loss."""
    old, new = _old_and_new()
    fn = get_method("mib").loss_fn(old, 3)
    x, y = torch.randn(2, 3, 64, 64), torch.randint(0, 2, (2, 64, 64)) * 3
    terms = fn(new.train(), x, y, new(x))
    assert set(terms) == {"principal", "aux", "ukd", "loss"}
    assert torch.isclose(terms["loss"], terms["principal"] + terms["aux"] + terms["ukd"])
    # auxiliary heads: off, or distilled against the old model's auxiliary outputs
    off = get_method("mib").loss_fn(old, 3, aux="off")(new, x, y, new(x))
    assert off["aux"].item() == 0 and torch.isclose(off["loss"], off["principal"] + off["ukd"])
    dist = get_method("mib").loss_fn(old, 3, aux="distill")(new, x, y, new(x))
    assert dist["aux_ukd"].item() > 0
    assert torch.isclose(dist["loss"], dist["principal"] + dist["aux"] + dist["ukd"] + dist["aux_ukd"])
    with pytest.raises(ValueError, match="auxiliary-head mode 'both'"):
        get_method("mib").loss_fn(old, 3, aux="both")


def test_distillation_ignores_padding_by_default():
    """Padding (255) pixels are distilled only with distill_pixels='all' (MiB's code)."""
    old, new = _old_and_new()
    x, y = torch.randn(2, 3, 64, 64), torch.zeros(2, 64, 64, dtype=torch.long)
    y[:, 32:] = 255
    out = new.eval()(x)
    masked = get_method("lwf").loss_fn(old, 3)(new, x, y, out)["kd"]
    every = get_method("lwf").loss_fn(old, 3, distill_pixels="all")(new, x, y, out)["kd"]
    want = 100 * losses.knowledge_distillation(out["out"][:, :, :32], old(x)["out"][:, :, :32])
    assert torch.isclose(masked, want, rtol=1e-5) and not torch.isclose(masked, every, rtol=1e-3)


def test_lwf_mc_trains_its_own_bce_step0(tiny_cfg):
    """MiB trains LwF-MC's step 0 with BCE (train.py: self.bce = opts.bce or opts.icarl)."""
    cfg = tiny_cfg(max_train_images=24)
    quiet = dict(progress=False, record=False)
    bce = train_step(cfg, step=0, method="step0-bce", **quiet)
    ce = train_step(cfg, step=0, method="step0", **quiet)
    assert bce.checkpoint != ce.checkpoint and bce.checkpoint.parent.parent.name == "step0-bce"
    assert bce.history["loss"][0] != pytest.approx(ce.history["loss"][0], rel=1e-3)
    assert cfg.training_key(step=1, method="lwf-mc")["previous"] != cfg.training_key(step=1, method="lwf")["previous"]


@pytest.mark.parametrize("method", method_names())
def test_step1_trains_and_records(method, tiny_cfg, tmp_path):
    cfg = tiny_cfg(max_val_images=8)
    out = train_step(cfg, step=1, method=method, notebook="test", progress=False)
    r = out.record
    assert r["method"] == method and r["step"] == 1 and len(r["iou"]) == 21
    assert r["miou_new"] is not None and out.model.classes_per_step == [16, 5]
    # step 0 is shared: exactly one step-0 checkpoint whatever the method; LwF-MC's is its BCE step 0
    (step0,) = list((tmp_path / "ckpt").rglob("step-0.pt"))
    assert step0.parent.parent.name == method_spec(method).step0  # step0, LwF-MC's step0-bce, DFT*'s step0-prealloc
