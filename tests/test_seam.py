"""SEAM: losses against their formulas, PCM, pseudo-labels, fusion, the threshold sweep, the step."""

import math

import numpy as np
import pytest
import torch

from incseg_lib.config import seam_config
from incseg_lib.seam import (
    PseudoLabels,
    SeamConfig,
    SeamNet,
    adaptive_min_pooling_loss,
    best_threshold,
    classification_loss,
    equivariant_cross_regularization,
    equivariant_regularization,
    fuse_old,
    max_norm,
    pcm,
    scores_to_labels,
    seam_loss,
)


def test_classification_loss_is_the_multilabel_soft_margin_of_pooled_cams():
    torch.manual_seed(0)
    cam = torch.randn(2, 4, 5, 6)  # background + 3 classes
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    z = cam[:, 1:].mean((2, 3))
    direct = -(y * torch.log(torch.sigmoid(z)) + (1 - y) * torch.log(torch.sigmoid(-z))).mean()
    assert torch.allclose(classification_loss(cam, y), direct, atol=1e-6)


def test_er_is_zero_for_an_equivariant_map_and_l1_otherwise():
    """A pixel-wise model commutes with bilinear rescaling (align_corners) on a linear ramp: ER = 0."""

    class PixelWise(torch.nn.Module):
        def forward(self, x):
            c = x[:, :1]
            return {"cam": torch.cat([-c, c], 1), "cam_rv": torch.cat([-c, c], 1)}

    ramp = torch.linspace(-1, 1, 40)[None, None, None, :].expand(1, 3, 30, 40).contiguous()
    x = torch.cat([ramp, ramp.flip(-1)])
    model = PixelWise()
    terms = seam_loss(model, x, torch.ones(2, 1), model(x), SeamConfig(view_scale=0.3))
    assert terms["er"].item() < 1e-5
    a = torch.rand(2, 3, 4, 4)
    b = a.clone()
    b[:, 1:] += 0.25
    b[:, 0] += 9.0  # the background channel is not compared
    assert math.isclose(equivariant_regularization(a, b).item(), 0.25, rel_tol=1e-5)


def test_ecr_matches_a_direct_computation():
    torch.manual_seed(1)
    other, rv = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5)
    got = equivariant_cross_regularization(other, rv, topk=0.2)
    o, r = other.numpy(), rv.numpy()
    total = []
    for b in range(2):
        fg = o[b, 1:]
        target = np.concatenate([1 - fg.max(0, keepdims=True), np.where(fg == fg.max(0, keepdims=True), fg, 0)])
        err = np.sort(np.abs(target - r[b]).ravel())[::-1]
        total.append(err[: int(err.size * 0.2)])
    assert math.isclose(got.item(), float(np.mean(total)), rel_tol=1e-5)


def test_max_norm_and_min_pooling():
    p = torch.tensor([[[[-1.0, 0.0], [2.0, 4.0]]]])
    n = max_norm(p)
    assert torch.allclose(n, torch.tensor([[[[0.0, 0.0], [0.5, 1.0]]]]), atol=1e-4)
    x = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]], [[0.0, 0.5], [0.0, 0.0]]]])  # (1, 2, 2, 2)
    # per-pixel max over channels: 0.1 0.5 0.3 0.4; the lowest quarter (1 pixel) is 0.1
    assert math.isclose(adaptive_min_pooling_loss(x).item(), 0.1, rel_tol=1e-5)


def test_pcm_shape_and_normalisation():
    torch.manual_seed(2)
    features = torch.randn(2, 8, 6, 7)
    const = torch.full((2, 3, 3, 3), 0.7)  # resized to the features' 6x7
    out = pcm(const, features)
    assert out.shape == (2, 3, 6, 7)
    assert torch.allclose(out, torch.full_like(out, 0.7), atol=1e-4)  # affinities sum to 1 over sources
    # identical features everywhere: every pixel gets the mean of the map
    cam = torch.rand(1, 2, 6, 7)
    out = pcm(cam, torch.ones(1, 4, 6, 7))
    assert torch.allclose(out, cam.mean((2, 3), keepdim=True).expand_as(out), atol=1e-5)


@pytest.mark.parametrize("backbone,stride", [("resnet18", 8), ("resnet18", 16)])
def test_seam_net_outputs_at_input_size_and_trains_new_layers_faster(backbone, stride):
    model = SeamNet(3, backbone, stride)
    out = model(torch.randn(2, 3, 64, 48))
    assert out["cam"].shape == out["cam_rv"].shape == (2, 4, 64, 48)
    assert model.stages(torch.randn(1, 3, 64, 64))[2].shape[-1] == 64 // stride
    groups = {g["lr_mult"]: g for g in model.parameter_groups(5e-4)}
    assert set(groups) == {1, 2, 10}  # the new layers have no bias: SEAM's fc8 and PCM convs
    assert model.classifier.weight in groups[10]["params"] and groups[2]["weight_decay"] == 0.0


def test_seam_loss_backpropagates_to_backbone_but_pcm_features_are_detached():
    torch.manual_seed(0)
    model = SeamNet(2, "resnet18", 8)
    x = torch.randn(2, 3, 64, 64)
    terms = seam_loss(model, x, torch.tensor([[1.0, 0.0], [1.0, 1.0]]), model(x), SeamConfig())
    assert set(terms) >= {"loss", "cls", "er", "ecr"} and torch.isfinite(terms["loss"])
    terms["ecr"].backward()
    assert model.proj_f.weight.grad is not None and model.proj_f.weight.grad.abs().sum() > 0
    # ECR reaches the backbone only through the CAM branch, which PCM sees without gradient
    assert (
        model.backbone.layer2[0].conv1.weight.grad is None
        or model.backbone.layer2[0].conv1.weight.grad.abs().sum() == 0
    )


def test_pseudo_labels_use_only_labelled_classes_and_background():
    scores = torch.zeros(3, 4, 4)
    scores[0, :2] = 0.9  # class 16, labelled
    scores[1] = 1.0  # class 17, NOT in the image-level label: must never appear
    scores[2, 3, 3] = 0.2  # class 18, labelled but below the background score
    labels = torch.tensor([1, 0, 1])
    out = scores_to_labels(scores, labels, [16, 17, 18], threshold=0.26)
    assert set(out.unique().tolist()) == {0, 16}
    assert (out[:2] == 16).all() and (out[2:] == 0).all()
    assert (scores_to_labels(scores, torch.tensor([0, 0, 0]), [16, 17, 18], 0.26) == 0).all()


def test_fusion_fills_background_with_old_classes_and_keeps_new_ones():
    pseudo = torch.tensor([[0, 0, 16], [0, 16, 16]])
    old = torch.tensor([[3, 0, 3], [5, 0, 255]])  # the old model: classes 3 and 5 (old), background
    fused = fuse_old(pseudo, old, [0, 3, 5])
    assert fused.tolist() == [[3, 0, 16], [5, 16, 16]]
    assert fuse_old(pseudo, old, [0]).equal(pseudo)


def test_config_checks_name_the_option():
    with pytest.raises(ValueError, match="bg_threshold=1.5"):
        SeamConfig(bg_threshold=1.5)
    with pytest.raises(ValueError, match="unknown SEAM option"):
        seam_config("demo", threshold=0.3)
    assert seam_config("colab").backbone == "resnet50"
    assert SeamConfig().tag == "seam-r18-os8-step0-8ep-t0.26"


def _toy_dataset(tmp_path, n=4, size=16):
    """Images whose red channel is a left-to-right ramp; class 16 where the ramp exceeds 0.6."""
    from PIL import Image

    from incseg_lib.data.common import SegmentationDataset
    from incseg_lib.data.shapes import SHAPES_INFO as info

    ramp = np.tile(np.linspace(0, 1, size), (size, 1))
    ids, imgs, masks = [], [], []
    for i in range(n):
        rgb = np.zeros((size, size, 3), np.uint8)
        rgb[..., 0] = (ramp * 255).astype(np.uint8)
        mask = np.where(ramp > 0.6, 16, 0).astype(np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"{i}.png")
        Image.fromarray(mask).save(tmp_path / f"{i}_m.png")
        ids.append(str(i)), imgs.append(tmp_path / f"{i}.png"), masks.append(tmp_path / f"{i}_m.png")
    lut = np.full(256, -1, np.int16)
    lut[: info.num_classes] = np.arange(info.num_classes)
    lut[255] = 255
    return SegmentationDataset(info, ids, imgs, masks, lut)


class RedChannel(torch.nn.Module):
    """A stand-in for a trained SEAM: the CAM of its one class is the image's red channel (in [0, 1])."""

    num_foreground = 1

    def forward(self, x):
        r = x[:, :1] * 0.229 + 0.485  # undo the ImageNet normalisation
        return {"cam": torch.cat([-r, r], 1), "cam_rv": torch.cat([-r, r], 1)}


def test_pseudo_label_store_sweep_finds_the_toy_threshold(tmp_path):
    data = _toy_dataset(tmp_path)
    cfg = SeamConfig(scales=(1.0,), flip=False, bg_threshold=0.26)
    store = PseudoLabels(tmp_path / "pseudo", {"k": 1})
    store.build(RedChannel(), data, np.ones((len(data), 1), bool), [16], cfg, progress=False)
    threshold, miou = store.best_threshold("pcm")
    assert abs(threshold - 0.6) <= 0.05 and miou > 95
    q = store.quality()
    assert q["pcm"]["miou"] < miou  # 0.26 marks too much as class 16
    assert q["chance"]["miou_new"] < q["pcm"]["miou_new"]
    masks = store.as_dataset(data)
    assert set(np.unique(masks.read_mask(0)).tolist()) == {0, 16}
    again = PseudoLabels(tmp_path / "pseudo", {"k": 1})
    assert again.complete and again.manifest["ids"] == ["0", "1", "2", "3"]
    with pytest.raises(FileExistsError, match="belongs to other pseudo-labels"):
        PseudoLabels(tmp_path / "pseudo", {"k": 2})
    with pytest.raises(ValueError, match="no threshold-sweep row"):
        best_threshold(store.sweep(), "crf")


def test_weak_step_records_mib_s_with_fusion(shapes_root, tmp_path):
    from incseg_lib.config import RunConfig
    from incseg_lib.experiment import base_datasets, find_pseudo_labels, train_step, weak_config

    cfg = RunConfig.from_profile(
        "smoke",
        data_root=str(shapes_root),
        run_dir=str(tmp_path / "run"),
        checkpoint_dir=str(tmp_path / "ckpt"),
        task="15-5",
        epochs=1,
        epochs_next=1,
        max_train_images=32,
        max_val_images=8,
    )
    seam = weak_config(cfg)
    assert seam.init == "step0"  # no ImageNet weights in the smoke profile
    out = train_step(cfg, step=1, method="mib", weak=seam, progress=False)
    rec = out.record
    assert rec["method"] == "mib-s" and rec["variant"] == seam.tag and rec["weak"]["used"] == "pcm+fuse"
    labels = find_pseudo_labels(cfg, 1, "mib", seam)
    train_base, _ = base_datasets(cfg, out.split)
    masks = labels.as_dataset(out.split.train_dataset(train_base, cfg.checkpoint_path / "splits"))
    seen = set(out.split.seen_classes)
    for i in range(len(masks)):
        assert set(np.unique(masks.read_mask(i)).tolist()) <= seen  # background, old and new classes only
    with pytest.raises(ValueError, match="at most one of"):
        train_step(cfg, step=1, method="mib", weak=seam, synthetic=object(), progress=False)


def test_frozen_batchnorm_keeps_its_statistics_and_parameters_as_seams_code():
    """SEAM network/resnet38d.py Net.train: BatchNorm in eval mode, weight and bias not trained."""
    torch.manual_seed(0)
    frozen, free = SeamNet(2, "resnet18", 8, freeze_bn=True).train(), SeamNet(2, "resnet18", 8).train()
    bn = lambda m: m.backbone.layer1[0].bn1  # noqa: E731
    before = bn(frozen).running_mean.clone()
    x = torch.randn(2, 3, 64, 64) * 3 + 1
    frozen(x), free(x)
    assert not bn(frozen).training and torch.equal(bn(frozen).running_mean, before)
    assert bn(free).training and not torch.equal(bn(free).running_mean, before)
    assert not bn(frozen).weight.requires_grad and not bn(frozen).bias.requires_grad
    assert frozen.classifier.training  # only the backbone's BatchNorm is held
    trained = {id(p) for g in frozen.parameter_groups(5e-4) for p in g["params"]}
    assert id(bn(frozen).weight) not in trained and id(bn(free).weight) in {
        id(p) for g in free.parameter_groups(5e-4) for p in g["params"]
    }
    assert SeamConfig().freeze_bn and "freeze_bn" in SeamConfig().training_part()
    assert SeamConfig().bn_frozen and not SeamConfig(init="none").bn_frozen
