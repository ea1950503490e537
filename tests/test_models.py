"""BiSeNet shapes, incremental heads, and weight loading."""

import pytest
import torch

from incseg_lib.models import BiSeNet, IncrementalClassifier, SpatialPath, build_resnet


@pytest.mark.parametrize("backbone,c32", [("resnet18", 512), ("resnet50", 2048), ("resnet101", 2048)])
def test_output_shapes(backbone, c32):
    torch.manual_seed(0)
    model = BiSeNet([16, 5], backbone)
    x = torch.randn(2, 3, 96, 128)
    out = model.train()(x)
    assert out["out"].shape == (2, 21, 96, 128)
    assert [a.shape for a in out["aux"]] == [(2, 21, 96, 128)] * 2
    assert out["features"].shape == (2, c32, 3, 4)
    model.eval()
    with torch.no_grad():
        ev = model(torch.randn(1, 3, 75, 101))  # sizes not divisible by 32 work too
    assert ev["out"].shape == (1, 21, 75, 101) and "aux" not in ev


def test_incremental_heads_grow_per_step():
    model = BiSeNet([16], "resnet18")
    model.add_step(1)
    model.add_step(1)
    assert model.classes_per_step == [16, 1, 1] and model.num_classes == 18
    for clf in model.classifiers():
        assert [h.out_channels for h in clf.heads] == [16, 1, 1]
    out = model.train()(torch.randn(2, 3, 64, 64))
    assert out["out"].shape[1] == 18 and all(a.shape[1] == 18 for a in out["aux"])


def test_classifier_concatenates_heads_in_step_order():
    clf = IncrementalClassifier(4, [2, 3])
    x = torch.randn(1, 4, 5, 5)
    y = clf(x)
    assert torch.allclose(y[:, :2], clf.heads[0](x)) and torch.allclose(y[:, 2:], clf.heads[1](x))
    with pytest.raises(ValueError):
        IncrementalClassifier(4, [0])


def test_local_state_dict_is_loaded(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    net = build_resnet("resnet18", str(path))
    assert torch.equal(net.conv1.weight, ref.conv1.weight)
    assert torch.equal(net.layer4[1].bn2.running_var, ref.layer4[1].bn2.running_var)


def test_bad_weights_and_backbone_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_resnet("resnet18", str(tmp_path / "nope.pth"))
    import torchvision

    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit torchvision resnet18"):
        build_resnet("resnet18", str(path))
    garbage = tmp_path / "notes.pth"
    garbage.write_text("not weights")  # what an unreadable file used to turn into an IndexError
    with pytest.raises(ValueError, match=r"pretrained weights file .*notes.pth cannot be read as a state dict"):
        build_resnet("resnet18", str(garbage))
    listed = tmp_path / "list.pth"
    torch.save([1, 2], listed)
    with pytest.raises(ValueError, match="holds no state dict"):
        build_resnet("resnet18", str(listed))
    with pytest.raises(ValueError, match="resnet34"):
        BiSeNet([21], "resnet34")


def test_non_backbone_layers_get_kaiming_init_and_classifiers_keep_default():
    """TorchSeg's init: Kaiming normal (fan_in, ReLU gain) outside the ResNet; 1x1 classifiers untouched."""
    torch.manual_seed(0)
    model = BiSeNet([21], "resnet18")
    w = model.ffm.conv[0].weight  # 1x1 conv over 256 + 128 channels: std sqrt(2 / 384)
    assert abs(w.std().item() - (2 / 384) ** 0.5) < 0.05 * (2 / 384) ** 0.5
    w = model.context_path.refine16[0].weight  # 3x3 over 128: std sqrt(2 / 1152)
    assert abs(w.std().item() - (2 / 1152) ** 0.5) < 0.05 * (2 / 1152) ** 0.5
    # PyTorch's default (kaiming_uniform, a=sqrt(5)) for the classifier: bound 1/sqrt(fan_in)
    clf = model.head.classifier.heads[0].weight
    assert clf.abs().max().item() <= 1 / 256**0.5 + 1e-6 and clf.std().item() < 0.6 * (2 / 256) ** 0.5
    # the ResNet keeps torchvision's init (Kaiming fan_out): conv1 std sqrt(2 / (64*7*7)), not sqrt(2 / (3*7*7))
    w = model.context_path.backbone.conv1.weight
    assert abs(w.std().item() - (2 / 3136) ** 0.5) < 0.05 * (2 / 3136) ** 0.5


def test_spatial_path_is_the_papers_three_stride_2_layers():
    """Yu et al. 2018, Sec. 3.1: three conv (stride 2) + BN + ReLU layers; 1/8 resolution, 256 channels."""
    sp = BiSeNet([21], "resnet18").spatial_path
    convs = [m for m in sp.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 64, (3, 3), (2, 2)),
        (64, 128, (3, 3), (2, 2)),
        (128, 256, (3, 3), (2, 2)),
    ]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in sp.modules()) == 3
    assert sp(torch.randn(1, 3, 96, 64)).shape == (1, 256, 12, 8)
    with pytest.raises(ValueError, match="three layers"):
        SpatialPath((64, 128))


def test_auxiliary_heads_are_1x1_classifiers_on_the_resnet_stages():
    """Aux heads read the raw ResNet 1/16 and 1/32 outputs (the seed project's supervision heads)."""
    model = BiSeNet([11], "resnet18").train()
    seen = []
    hooks = [h.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[1:]))) for h in model.aux_heads]
    model(torch.randn(2, 3, 128, 128))
    for h in hooks:
        h.remove()
    assert seen == [(256, 8, 8), (512, 4, 4)]
    assert [h.classifier.in_channels for h in model.aux_heads] == [256, 512]
    assert model.head.conv[0].out_channels == 256
    assert [h.classifier.in_channels for h in BiSeNet([21], "resnet50").aux_heads] == [1024, 2048]


def test_deeplabv3_grows_takes_mib_init_and_runs_a_step(tiny_cfg, tmp_path):
    """DeepLabV3 (the papers' model) offers what the methods read from BiSeNet: a step of MiB trains on it."""
    from incseg_lib.experiment import train_step
    from incseg_lib.methods import mib_init
    from incseg_lib.models import DeepLabV3

    torch.manual_seed(0)
    m = DeepLabV3([16], "resnet50").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = torch.softmax(m(x)["out"], 1)
        m.add_step(2)
        mib_init(m, 2)
        after = torch.softmax(m(x)["out"], 1)
    assert m.classes_per_step == [16, 2] and after.shape == (2, 18, 64, 64)
    torch.testing.assert_close(after[:, 1:16], before[:, 1:16], atol=1e-5, rtol=1e-4)  # old classes unchanged
    torch.testing.assert_close(after[:, [0, 16, 17]].sum(1), before[:, 0], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="resnet50 or resnet101"):
        DeepLabV3([16], "resnet18")
    cfg = tiny_cfg(model="deeplabv3", backbone="resnet50", run_dir=str(tmp_path / "run"))
    out = train_step(cfg, step=1, method="mib", progress=False)
    assert isinstance(out.model, DeepLabV3) and out.record["step"] == 1
    assert cfg.training_key(step=0, method="mib")["model"] == "deeplabv3"
    assert "model" not in cfg.replace(model="bisenet", backbone="resnet18").training_key(step=0, method="mib")
