"""PLOP's and SDR's pieces against their formulas on small tensors (batches of 2), and as methods."""

import math

import pytest
import torch

from incseg_lib import plop, sdr


# ---------------------------------------------------------------------- PLOP
def test_pod_embedding_of_a_4x4_map_at_scales_1_and_2_by_hand():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    sq = x.pow(2)
    emb = plop.pod_embedding(x, scales=(1, 2))
    want = []
    for b in range(2):
        m = sq[b, 0]
        parts = [m.mean(1), m.mean(0)]  # scale 1: rows pooled over the width, columns over the height
        for i in range(2):
            for j in range(2):
                cell = m[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
                parts += [cell.mean(1), cell.mean(0)]
        want.append(torch.cat(parts))
    torch.testing.assert_close(emb, torch.stack(want))
    assert emb.shape == (2, 4 + 4 + 4 * (2 + 2))


def test_pod_embedding_covers_every_row_of_a_map_that_is_not_square():
    """PLOP cuts cells of W // s pixels both ways and drops the rest; every row counts here."""
    x = torch.zeros(1, 1, 6, 4)
    x[0, 0, 5] = 1.0  # only the last row is lit: a 4-wide cell grid cut by width would miss it
    emb = plop.pod_embedding(x, scales=(2,))
    assert emb.sum() > 0
    tiny = plop.pod_embedding(torch.ones(2, 3, 2, 2), scales=(1, 2, 4))  # a 1/32 map of a 64 px crop
    assert torch.isfinite(tiny).all()


def test_local_pod_is_zero_for_equal_maps_and_the_formula_otherwise():
    torch.manual_seed(0)
    maps = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)]
    logits_old = torch.randn(2, 3, 4, 4)
    logits_new = torch.cat([logits_old, torch.zeros(2, 1, 4, 4)], dim=1)  # PLOP sums logits: a 0 adds nothing
    same = plop.local_pod(maps + [logits_old], [m.clone() for m in maps] + [logits_new], 3, 4, 1)
    assert same == 0
    other = [m + 1 for m in maps] + [logits_new]
    got = plop.local_pod(maps + [logits_old], other, num_old=3, num_seen=4, num_new=1)
    w = math.sqrt(4 / 1)
    want = 0.0
    for a, b in zip(maps, other[:2]):
        want += 0.01 * w * torch.linalg.vector_norm(plop.pod_embedding(a) - plop.pod_embedding(b), dim=-1).mean()
    merged = plop.merge_new_into_background(logits_new, 3)
    want += (
        0.0005
        * w
        * torch.linalg.vector_norm(plop.pod_embedding(logits_old) - plop.pod_embedding(merged), dim=-1).mean()
    )
    torch.testing.assert_close(got, want / 3)


def test_new_classes_logits_are_summed_into_background():
    b = torch.arange(2 * 5 * 1 * 1, dtype=torch.float32).reshape(2, 5, 1, 1)
    m = plop.merge_new_into_background(b, num_old=3)
    assert m.shape == (2, 3, 1, 1)
    assert m[0, :, 0, 0].tolist() == [0 + 3 + 4, 1, 2] and m[1, :, 0, 0].tolist() == [5 + 8 + 9, 6, 7]


def test_thresholds_are_the_median_per_class_and_at_least_the_floor():
    torch.manual_seed(0)
    ent = torch.rand(1000) * 0.5
    cls = torch.randint(0, 3, (1000,))
    t = plop.entropy_thresholds(ent, cls, num_old=4, bins=1000)
    for c in range(3):
        assert abs(float(t[c]) - float(ent[cls == c].median())) < 2e-3  # one bin of 1000
    assert float(t[3]) == pytest.approx(plop.ENTROPY_THRESHOLD_FLOOR)  # a class no pixel is given
    # a 40/35/25 split over three bins: the median is in the second bin (PLOP's code returns inf here)
    split = torch.tensor([0.005] * 40 + [0.015] * 35 + [0.025] * 25)
    t = plop.entropy_thresholds(split, torch.zeros(100, dtype=torch.long), num_old=1, bins=100)
    assert 0.01 <= float(t[0]) < 0.02


def test_pseudo_labels_only_on_background_and_ignored_where_unsure():
    target = torch.tensor([[[0, 0], [5, 255]], [[0, 0], [0, 0]]])  # (2, 2, 2)
    logits = torch.full((2, 4, 2, 2), -10.0)
    logits[:, 2] = 10.0  # confident: old class 2 everywhere
    logits[1, :, 0, 1] = 0.0  # unsure: uniform at one background pixel of image 1
    labels, weights = plop.pseudo_label(target, logits, torch.full((4,), 0.01), num_seen=6)
    assert labels[0].tolist() == [[2, 2], [5, 255]]  # labelled and ignored pixels keep their labels
    assert labels[1].tolist() == [[2, 255], [2, 2]]
    assert weights.tolist() == pytest.approx([1.0, 0.75], abs=1e-5)
    weighted = plop.weighted_cross_entropy(torch.randn(2, 6, 2, 2), labels, weights)
    assert torch.isfinite(weighted)


# ---------------------------------------------------------------------- SDR
def _features():
    torch.manual_seed(1)
    f = torch.rand(2, 3, 2, 2)  # batch of 2: a channel-mixing gather would fail these
    labels = torch.tensor([[[0, 1], [1, 2]], [[2, 2], [0, 255]]])
    return f, labels


def _pixels(f, labels, c):
    return torch.stack([f[b, :, i, j] for b in range(2) for i in range(2) for j in range(2) if labels[b, i, j] == c])


def test_class_features_are_whole_pixels_across_images():
    f, labels = _features()
    torch.testing.assert_close(sdr.class_features(f, labels == 2), _pixels(f, labels, 2))


def test_sparsification_against_its_formula():
    f, labels = _features()
    norm = torch.zeros_like(f)
    for c in (0, 1, 2):
        mx = _pixels(f, labels, c).max()
        for b in range(2):
            for i in range(2):
                for j in range(2):
                    if labels[b, i, j] == c:
                        norm[b, :, i, j] = f[b, :, i, j] / mx
    ratio = norm.exp().sum(1) / norm.sum(1)
    want = ratio[labels != 255].mean()
    torch.testing.assert_close(sdr.sparsification(f, labels), want)


def test_attraction_repulsion_and_prototype_matching_against_their_formulas():
    f, labels = _features()
    protos = torch.rand(4, 3)
    want_att = torch.stack([((_pixels(f, labels, c) - protos[c]) ** 2).mean() for c in (0, 1, 2)]).mean()
    torch.testing.assert_close(sdr.attraction(f, labels, protos), want_att)
    means = torch.stack([_pixels(f, labels, c).mean(0) for c in (0, 1, 2)])
    inv = [1 / torch.dist(means[i], means[j]) for i in range(3) for j in range(3) if i != j]
    torch.testing.assert_close(sdr.repulsion(f, labels), torch.stack(inv).mean())
    old_pred = torch.tensor([[[3, 1], [1, 2]], [[2, 2], [3, 0]]])  # background pixels: the old model says 3 / 0
    hidden = _pixels(f, torch.where(labels == 0, old_pred, torch.zeros_like(old_pred)), 3)
    want_pm = ((hidden.mean(0) - protos[3]) ** 2).mean()
    torch.testing.assert_close(sdr.prototype_matching(f, labels, old_pred, protos), want_pm)


def test_prototypes_are_running_means_and_survive_a_checkpoint_round_trip(tmp_path):
    f, labels = _features()
    mem = sdr.PrototypeMemory(4, 3, tmp_path / "step-1.prototypes.pt")
    mem.update(f, labels)
    g = torch.rand(2, 3, 2, 2)
    mem.update(g, labels)
    both = torch.cat([_pixels(f, labels, 2), _pixels(g, labels, 2)])
    torch.testing.assert_close(mem.prototypes[2], both.mean(0))
    assert mem.counts.tolist() == [0, 4, 6, 0]  # background and 255 skipped
    assert mem.prototypes[0].abs().sum() == 0
    mem.save(epoch=3, final=False)
    back = sdr.PrototypeMemory(4, 3, tmp_path / "step-1.prototypes.pt")
    assert not back.resume(2) and back.resume(3)  # the state saved after epoch 3 only
    torch.testing.assert_close(back.prototypes, mem.prototypes.cpu())
    assert sdr.load_prototypes(tmp_path / "step-1.pt") is None  # not final: not a finished step's
    mem.save(epoch=4, final=True)
    nxt = sdr.PrototypeMemory(6, 3, previous=sdr.load_prototypes(tmp_path / "step-1.pt"))
    torch.testing.assert_close(nxt.prototypes[:4], mem.prototypes.cpu())
    assert nxt.prototypes[4:].abs().sum() == 0 and nxt.counts[4:].sum() == 0


# ---------------------------------------------------------------------- as methods
def test_plop_and_sdr_train_steps_and_sdr_keeps_prototypes_beside_its_checkpoints(tiny_cfg, tmp_path):
    from incseg_lib.experiment import checkpoint_file, train_step

    cfg = tiny_cfg(task="15-1", max_train_images=200, run_dir=str(tmp_path / "run"))
    quiet = dict(progress=False)
    out = train_step(cfg, step=2, method="plop", **quiet)
    assert "loss_pod" in out.history and all(math.isfinite(v) for v in out.history["loss_pod"])
    assert out.record["method"] == "plop" and out.record["step"] == 2
    out = train_step(cfg, step=2, method="sdr", **quiet)
    for term in ("loss_ukd", "loss_prototypes", "loss_sparsity", "loss_attraction", "loss_repulsion"):
        assert term in out.history
    step0 = checkpoint_file(cfg, 0, "step0")
    assert sdr.load_prototypes(step0) is not None  # made once from the shared step 0
    for step in (1, 2):
        protos = sdr.load_prototypes(checkpoint_file(cfg, step, "sdr"))
        assert protos is not None and protos["prototypes"].shape == (16 + step, 256)
        assert protos["counts"][16 + step - 1] > 0  # the step's class was seen
    assert not out.model.return_maps  # maps are for the training losses only


def _plop_with(weights):
    """PLOP's method with its pseudo-labelling replaced by fixed labels and per-image weights, and no
    Local POD: what is left is its classification loss, under either normalisation."""
    import dataclasses

    from incseg_lib.methods import get_method

    spec = dataclasses.replace(
        get_method("plop"), relabel=lambda y, old, state: (y, weights), extra_terms=None, prepare=None
    )
    old_model = lambda x, aux=False: {"out": torch.zeros(x.shape[0], 3, *x.shape[-2:])}  # noqa: E731
    return spec, old_model


@pytest.mark.parametrize("normalisation", ["all", "labelled"])
def test_plop_cross_entropy_under_both_normalisations_against_a_direct_computation(normalisation):
    """PLOP's ``train.py`` (L339, L351-352): per-pixel CE (ignored pixels 0) times the image's factor,
    then ``.mean()`` over B x H x W; ``labelled`` divides by the labelled pixels instead."""
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3, 5)
    target = torch.tensor([[[0, 1, 255, 3, 2]] * 3, [[255, 255, 2, 0, 255], [1, 255, 255, 255, 3], [255] * 5]])
    weights = torch.tensor([0.7, 0.3])
    spec, old_model = _plop_with(weights)
    fn = spec.loss_fn(old_model, 3, aux="off", ce_normalisation=normalisation)
    got = fn(None, torch.zeros(2, 3, 3, 5), target, {"out": logits, "aux": []})["principal"]
    per_pixel = torch.nn.functional.cross_entropy(logits, target, ignore_index=255, reduction="none")  # 0 on 255
    weighted = (per_pixel * weights[:, None, None]).sum()
    labelled = (target != 255).sum()
    want = weighted / target.numel() if normalisation == "all" else weighted / labelled
    assert labelled == 16 and got.item() == pytest.approx(want.item(), rel=1e-6)
    # the two differ by the labelled fraction, the balance against Local POD that PLOP's code has
    assert (weighted / target.numel()).item() == pytest.approx((weighted / labelled).item() * 16 / 30, rel=1e-6)
