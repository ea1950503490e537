"""DeepInversion: its loss terms against their definitions, hook hygiene, synthesis, the memory."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from incseg_lib import inversion as inv
from incseg_lib.config import inversion_config
from incseg_lib.data import load_dataset
from incseg_lib.exemplars import ReplayBatchSampler
from incseg_lib.inversion import BNStatistics, InversionConfig, SyntheticMemory
from incseg_lib.losses import known_background
from incseg_lib.tasks import IncrementalSplit


class TinySeg(nn.Module):
    """conv-BN-ReLU x2 + 1x1 classifier; returns ``{"out": logits}`` like BiSeNet."""

    def __init__(self, classes=4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        )
        self.cls = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        return {"out": self.cls(self.body(x))}


def _set_running_to(model, x):
    """Running statistics of every BN = the biased batch statistics of its input for ``x``."""
    stats = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o, k=k: stats.__setitem__(k, i[0].detach()))
        for k, m in enumerate(mm for mm in model.modules() if isinstance(mm, nn.BatchNorm2d))
    ]
    model.eval()
    with torch.no_grad():
        for _ in range(3):  # each layer's input depends on the layers before it
            model(x)
            for k, m in enumerate(mm for mm in model.modules() if isinstance(mm, nn.BatchNorm2d)):
                m.running_mean.copy_(stats[k].mean((0, 2, 3)))
                m.running_var.copy_(stats[k].transpose(0, 1).flatten(1).var(1, unbiased=False))
    for h in hooks:
        h.remove()


def test_bn_term_is_zero_at_the_running_statistics_and_grows_with_distance():
    torch.manual_seed(0)
    model = TinySeg()
    x = torch.randn(4, 3, 12, 12)
    _set_running_to(model, x)
    with BNStatistics(model) as bn:
        model(x)
        assert bn.loss(10.0).item() == pytest.approx(0.0, abs=1e-4)
        values = []
        for shift in (0.5, 1.0, 2.0):
            model(x + shift)
            values.append(bn.loss(10.0).item())
    assert 0 < values[0] < values[1] < values[2]


def test_bn_term_matches_its_formula_with_the_first_layer_weighted():
    torch.manual_seed(1)
    model = TinySeg().eval()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.running_mean.uniform_(-1, 1)
        m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8)
    with BNStatistics(model) as bn:
        model(x)
        got = bn.loss(10.0)
    inp1 = model.body[0](x).detach()
    inp2 = model.body[3](model.body[2](model.body[1](model.body[0](x)))).detach()

    def r(m, a):
        return torch.linalg.vector_norm(
            m.running_var - a.transpose(0, 1).flatten(1).var(1, unbiased=False)
        ) + torch.linalg.vector_norm(m.running_mean - a.mean((0, 2, 3)))

    assert got.item() == pytest.approx((10 * r(bns[0], inp1) + r(bns[1], inp2)).item(), rel=1e-5)


def test_hooks_are_removed_after_the_block_and_after_an_exception():
    model = TinySeg()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with BNStatistics(model):
        assert all(len(m._forward_hooks) == 1 for m in bns)
    assert all(len(m._forward_hooks) == 0 for m in bns)
    with pytest.raises(RuntimeError, match="boom"), BNStatistics(model):
        raise RuntimeError("boom")
    assert all(len(m._forward_hooks) == 0 for m in bns)


def test_synthesis_leaves_no_hooks_even_when_it_fails(monkeypatch):
    model = TinySeg()
    cfg = InversionConfig(batch_size=2, resolution=32, iterations_low=1, iterations_full=2)
    calls = {"n": 0}
    real = inv.image_priors

    def failing_priors(x):
        calls["n"] += 1
        if calls["n"] == 2:
            raise FloatingPointError("nan in the image")
        return real(x)

    monkeypatch.setattr(inv.synthesis, "image_priors", failing_priors)
    with pytest.raises(FloatingPointError):
        inv.synthesize(model, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), [1, 2, 3], cfg)
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())


def test_total_variation_of_a_constant_image_is_zero_and_matches_its_formula():
    tv1, tv2 = inv.image_priors(torch.full((2, 3, 5, 5), 0.7))
    assert tv1.item() == 0 and tv2.item() == 0
    x = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])  # one channel, a vertical edge
    tv1, tv2 = inv.image_priors(x)
    # horizontal diffs: two of -1 -> norm sqrt(2), mean 1; vertical: 0; diagonals: one of -1 each
    assert tv2.item() == pytest.approx(2**0.5 + 0 + 1 + 1)
    assert tv1.item() == pytest.approx(1 + 0 + 1 + 1)


def test_lse_pooling_lies_between_mean_and_max():
    z = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    for r in (0.01, 5.0, 200.0):
        s = inv.lse_pool(z, r)
        assert torch.all(s >= z.flatten(2).mean(2) - 1e-3) and torch.all(s <= z.flatten(2).amax(2) + 1e-3)
    assert torch.allclose(inv.lse_pool(z, 1e-4), z.flatten(2).mean(2), atol=1e-3)
    assert torch.allclose(inv.lse_pool(z, 1e4), z.flatten(2).amax(2), atol=1e-2)
    hand = torch.log(torch.exp(5 * z[0, 1]).mean()) / 5
    assert inv.lse_pool(z, 5.0)[0, 1].item() == pytest.approx(hand.item(), rel=1e-5)


def test_class_loss_is_cross_entropy_for_one_target_and_bce_for_several():
    pooled = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    one = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])
    assert inv.class_loss(pooled, one).item() == pytest.approx(
        nn.functional.cross_entropy(pooled, torch.tensor([0, 2])).item()
    )
    two = torch.tensor([[1.0, 1, 0], [0, 1.0, 1]])
    assert inv.class_loss(pooled, two).item() == pytest.approx(
        nn.functional.binary_cross_entropy_with_logits(pooled, two).item()
    )


def test_competition_term_is_one_when_the_models_agree_and_lower_when_they_disagree():
    a = torch.randn(1, 3, 4, 4)
    same = inv.competition(a, a).item()
    assert same == pytest.approx(1.0, abs=1e-5)
    b = torch.zeros(1, 4, 4, 4)
    b[:, 3] = 50.0  # the student puts everything in a new class; its old outputs are compared
    b[:, 0] = -20 * a[:, 0]
    assert inv.competition(10 * a, b).item() < same


def test_synthesis_raises_the_target_class_score_and_respects_the_input_range():
    torch.manual_seed(0)
    model = TinySeg(classes=4)
    _set_running_to(model, torch.randn(8, 3, 16, 16))
    targets = torch.tensor([[0.0, 1.0, 0.0]] * 4)  # class output 2 of foreground outputs [1, 2, 3]
    cfg = InversionConfig(batch_size=4, resolution=32, iterations_low=10, iterations_full=30, seed=3)
    res = inv.synthesize(model, targets, [1, 2, 3], cfg, snapshot_at=(1, 40))

    def target_prob(x):
        with torch.no_grad():
            return torch.softmax(inv.lse_pool(model(x)["out"][:, 1:], cfg.lse_r), 1)[:, 1].mean().item()

    noise = target_prob(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(3)))
    assert target_prob(res.images) > noise + 0.2
    assert res.history[-1]["target_prob"] > res.history[0]["target_prob"]
    low, high = inv.input_range()
    assert torch.all(res.images >= low - 1e-6) and torch.all(res.images <= high + 1e-6)
    assert sorted(res.snapshots) == [1, 40] and res.snapshots[40].shape == (4, 3, 32, 32)
    assert [h["phase"] for h in res.history].count("low") == 10 and len(res.history) == 40


def test_pseudo_labels_hold_only_old_classes_and_ignore():
    torch.manual_seed(0)
    model = TinySeg(classes=4)
    labels, prob = inv.pseudo_labels(model, torch.randn(2, 3, 16, 16), confidence=0.3)
    assert set(labels.unique().tolist()) <= {0, 1, 2, 3, 255}
    assert torch.all((labels == 255) == (prob <= 0.3))


def test_config_refuses_bad_values_by_name():
    with pytest.raises(ValueError, match="batch_size"):
        InversionConfig(batch_size=1)
    with pytest.raises(ValueError, match="share"):
        InversionConfig(share=1.0)
    with pytest.raises(ValueError, match="r_feature"):
        InversionConfig(r_feature=-1)
    with pytest.raises(ValueError, match="unknown DeepInversion option"):
        inversion_config("demo", images=3)
    assert inversion_config("smoke", adi=0.2).adi == 0.2


def _shapes(tmp_path):
    return load_dataset("shapes", "train", root=tmp_path / "shapes", incremental=True, max_images=8)


def _build(tmp_path, model, classes, cfg, key=None):
    split = IncrementalSplit("shapes", "15-5", 0, "overlapped")
    out_index = {c: i for i, c in enumerate(split.class_order[: split.num_seen])}
    mem = SyntheticMemory(tmp_path / "mem", key or {"k": 1})
    return mem.build(model, classes, out_index, split.class_order[: split.num_seen], cfg, progress=False)


def test_memory_masks_hold_only_old_class_ids_and_train_as_annotated_background(tmp_path):
    torch.manual_seed(0)
    model = TinySeg(classes=16)  # the 15-5 step-0 model: background + 15 classes
    cfg = InversionConfig(
        images_per_class=2, batch_size=4, resolution=32, iterations_low=1, iterations_full=2, confidence=0.05
    )
    mem = _build(tmp_path, model, [3, 7], cfg)
    assert len(mem) == 4 and mem.targets == [[3], [3], [7], [7]]
    info = _shapes(tmp_path).info
    ds = mem.as_dataset(info)
    step0_ids = set(IncrementalSplit("shapes", "15-5", 0, "overlapped").class_order)
    for i in range(len(ds)):
        assert set(np.unique(ds.read_mask(i)).tolist()) <= step0_ids | {255}
    split1 = IncrementalSplit("shapes", "15-5", 1, "overlapped")
    _, y = mem.dataset(split1, info)[0]
    values = set(y.unique().tolist())
    assert values <= set(range(16)) | {known_background(16), 255}  # old outputs, annotated bg, ignore
    _, y = mem.dataset(split1, info, labels="none")[0]
    assert set(y.unique().tolist()) == {255}  # distillation only: the loss sees no label
    manifest = json.loads((tmp_path / "mem" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["seconds"] > 0 and len(manifest["batches"]) == 1
    assert (tmp_path / "mem" / manifest["snapshots"][-1]["file"]).is_file()


def test_a_killed_synthesis_resumes_without_redoing_finished_batches(tmp_path, monkeypatch):
    model = TinySeg(classes=16)
    cfg = InversionConfig(images_per_class=2, batch_size=2, resolution=32, iterations_low=0, iterations_full=2)
    real = inv.synthesize
    calls = []

    def dies_on_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(inv.memory, "synthesize", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path, model, [1, 2, 3], cfg)  # 6 images in 3 batches; dies in the third
    first = (tmp_path / "mem" / "images" / "00000.png").stat().st_mtime_ns
    assert not SyntheticMemory(tmp_path / "mem", {"k": 1}).complete
    calls.clear()
    monkeypatch.setattr(inv.memory, "synthesize", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    mem = _build(tmp_path, model, [1, 2, 3], cfg)
    assert len(calls) == 1 and mem.complete and len(mem) == 6
    assert (tmp_path / "mem" / "images" / "00000.png").stat().st_mtime_ns == first
    calls.clear()
    _build(tmp_path, model, [1, 2, 3], cfg)  # finished: nothing is redone
    assert calls == []
    with pytest.raises(FileExistsError, match="another synthesis"):
        SyntheticMemory(tmp_path / "mem", {"k": 2})


def test_replay_share_of_synthetic_images_is_as_asked():
    for share, batch in ((0.5, 8), (0.25, 8), (0.75, 4)):
        sampler = ReplayBatchSampler(40, 6, batch, share, torch.Generator().manual_seed(0))
        for b in sampler:
            assert sum(i >= 40 for i in b) == round(share * batch) and len(b) == batch


# ---------------------------------------------------------------------- scale-aware aggregation
def test_topk_count_follows_the_scale_and_the_size():
    from incseg_lib.inversion import topk_pixels

    assert topk_pixels(torch.tensor([0.1, 0.25, 0.001, 0.99]), 100).tolist() == [10, 25, 1, 99]
    assert topk_pixels(torch.tensor([0.1]), 64 * 64).tolist() == [410]  # ceil(409.6)


def test_scale_aware_score_is_highest_when_the_class_covers_its_scale():
    from incseg_lib.inversion import scale_aware_score

    def logits_with(n_high: int) -> torch.Tensor:  # class 1 high on n_high of 100 pixels, background elsewhere
        z = torch.zeros(3, 10, 10)
        z[0] = 5.0
        flat = z.view(3, -1)
        flat[1, :n_high], flat[0, :n_high] = 8.0, -5.0
        return z

    exact, fewer, more = (scale_aware_score(logits_with(n), 1, 0.2) for n in (20, 10, 40))
    assert exact > fewer and exact > more


def test_the_outside_term_is_zero_when_the_outside_pixels_are_other_classes():
    from incseg_lib.inversion import outside_term, scale_aware_pool

    z = torch.full((2, 3, 4, 4), -20.0)
    z[:, 0] = 20.0  # every pixel background ...
    z[:, 1, :2, :2] = 40.0  # ... but 4 of 16 (a quarter) class 1
    s = torch.tensor([0.25, 0.25])
    assert float(outside_term(z, torch.tensor([1, 1]), s)) < 1e-6
    pooled = scale_aware_pool(z[:, 1:2], s)
    assert pooled[:, 0].tolist() == [40.0, 40.0]  # the top quarter
    flood = z.clone()
    flood[:, 1] = 40.0  # the class everywhere: the outside term grows
    assert float(outside_term(flood, torch.tensor([1, 1]), s)) > 10


def test_the_inside_term_asks_the_top_k_pixels_to_be_the_class():
    """-log p_c over the k best pixels of the class, softmax over every output (background included):
    near zero when those pixels are the class, log(2) where the class only ties background there."""
    from incseg_lib.inversion import inside_term

    z = torch.full((2, 3, 4, 4), -20.0)
    z[:, 0] = 20.0
    z[:, 1, :2, :2] = 40.0  # a quarter of the pixels are class 1 for the old model
    s = torch.tensor([0.25, 0.25])
    assert float(inside_term(z, torch.tensor([1, 1]), s)) < 1e-6
    tie = z.clone()
    tie[:, 1, :2, :2] = 20.0  # the class's best pixels only tie background: not yet the class
    assert float(inside_term(tie, torch.tensor([1, 1]), s)) == pytest.approx(math.log(2), abs=1e-5)
    half = z.clone()
    half[1, 1, :2, :2] = 20.0  # one image right, one tied: the mean over images
    assert float(inside_term(half, torch.tensor([1, 1]), s)) == pytest.approx(math.log(2) / 2, abs=1e-5)
    # asked for half the image, only a quarter is the class: the other quarter of the top k is background
    assert float(inside_term(z, torch.tensor([1, 1]), torch.tensor([0.5, 0.5]))) == pytest.approx(20.0, abs=1e-3)


def test_object_sizes_and_measured_scales():
    from incseg_lib.inversion import measured_scales, object_sizes

    a = np.zeros((10, 10), np.uint8)
    a[:5, :2] = 3  # 10 %
    a[9, 9] = 255
    b = np.zeros((10, 10), np.uint8)
    b[:, :5] = 4  # 50 %
    b[0, 9] = 7  # 1 %
    assert sorted(object_sizes([a, b]).tolist()) == [0.01, 0.1, 0.5]
    assert measured_scales(np.array([0.1, 0.2, 0.3, 0.4, 0.5])) == (0.2, 0.3, 0.4)
    with pytest.raises(ValueError, match="no object"):
        measured_scales(np.array([]))


def test_object_size_table_gives_quartiles_in_percent_and_the_share_of_tiny_objects():
    from incseg_lib.experiment import object_size_table

    table = object_size_table({"real": [0.005, 0.02, 0.1, 0.3, 0.5], "none": []})
    real = table.loc["real"]
    assert real["objects"] == 5 and real["median (%)"] == 10.0
    assert (real["25% (%)"], real["75% (%)"]) == (2.0, 30.0)  # numpy's linear quantiles of 0.5/2/10/30/50
    assert real["under 1% (%)"] == 20.0  # one object of five
    assert table.loc["none"]["objects"] == 0 and np.isnan(table.loc["none"]["median (%)"])


def test_scale_aware_synthesis_makes_objects_whose_size_follows_the_scale():
    """A tiny model that segments by colour: scale-aware synthesis asked for small objects paints fewer
    pixels of the class than when asked for large ones (measured on the old model's pseudo-labels)."""
    from incseg_lib.inversion import InversionConfig, object_sizes, pseudo_labels, synthesize

    torch.manual_seed(0)

    class Colour(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm2d(3)
            self.head = torch.nn.Conv2d(3, 3, 1)
            with torch.no_grad():
                self.head.weight.copy_(torch.tensor([[-2.0, 0, 0], [4.0, -2, -2], [-2.0, 4, -2]])[:, :, None, None])
                self.head.bias.zero_()

        def forward(self, x):
            return {"out": self.head(self.bn(x))}

    model = Colour().eval()
    cfg = InversionConfig(
        images_per_class=1,
        batch_size=4,
        resolution=32,
        iterations_low=0,
        iterations_full=60,
        r_feature=0.0,
        aggregation="scale-aware",
        jitter=0.0,
        flip=False,
    )
    targets = torch.tensor([[1.0, 0.0]] * 4)
    res = synthesize(
        model, targets, [1, 2], cfg, scales=[0.05, 0.05, 0.6, 0.6], generator=torch.Generator().manual_seed(0)
    )
    labels, _ = pseudo_labels(model, res.images, 0.0)
    share = (labels == 1).float().flatten(1).mean(1)  # the target class's fraction of each image
    assert share[:2].mean() < share[2:].mean()
    assert object_sizes([(labels[i] == 1).numpy() * 1 for i in range(4)]).tolist() == share.tolist()
    with pytest.raises(ValueError, match="one target scale per image"):
        synthesize(model, targets, [1, 2], cfg)


def test_the_memory_key_and_the_records_name_the_aggregation(tmp_path, shapes_root):
    from incseg_lib.config import RunConfig, inversion_config
    from incseg_lib.experiment import find_synthetic_memory, synthetic_run_name

    cfg = RunConfig.from_profile("smoke", task="15-5", data_root=str(shapes_root), checkpoint_dir=str(tmp_path))
    lse = inversion_config("smoke")
    scale = inversion_config("smoke", aggregation="scale-aware")
    assert "aggregation" not in lse.to_dict() and scale.to_dict()["aggregation"] == "scale-aware"
    assert synthetic_run_name("mib", lse) != synthetic_run_name("mib", scale)
    assert find_synthetic_memory(cfg, 1, "step0", lse).folder != find_synthetic_memory(cfg, 1, "step0", scale).folder
    assert scale.tag.endswith("-scale") and not lse.tag.endswith("-scale")
