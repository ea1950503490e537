"""Each loss against a direct computation of its paper's equation on small tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from incseg_lib import losses

g = torch.Generator().manual_seed(0)


def rnd(*shape):
    return torch.randn(*shape, generator=g)


def test_cross_entropy_normalises_over_labelled_pixels():
    x = rnd(2, 4, 3, 3)
    y = torch.randint(0, 4, (2, 3, 3), generator=g)
    y[0, 0] = 255
    manual = -torch.stack(
        [
            F.log_softmax(x[b, :, i, j], 0)[y[b, i, j]]
            for b in range(2)
            for i in range(3)
            for j in range(3)
            if y[b, i, j] != 255
        ]
    ).mean()
    assert losses.cross_entropy(x, y).item() == pytest.approx(manual.item(), rel=1e-5)
    z = losses.cross_entropy(x.requires_grad_(), torch.full((2, 3, 3), 255))
    assert z.item() == 0 and z.requires_grad


def test_unbiased_ce_is_ce_with_logsumexp_background():
    n_old, C = 3, 5
    x = rnd(2, C, 4, 4)
    y = torch.randint(0, 3, (2, 4, 4), generator=g)
    y[y > 0] += n_old - 1  # labels: 0 (background) or new classes 3, 4
    y[1, 0, 0] = 255
    # MiB Eq. 4-5: background column replaced by log-sum-exp over background + old columns
    merged = torch.cat([torch.logsumexp(x[:, :n_old], 1, keepdim=True), x[:, n_old:]], 1)
    y_merged = torch.where(y == 0, 0, torch.where(y == 255, 255, y - n_old + 1))
    expected = F.cross_entropy(merged, y_merged, ignore_index=255)
    assert losses.unbiased_cross_entropy(x, y, n_old).item() == pytest.approx(expected.item(), rel=1e-5)
    # exemplar pixels labelled with an old class (SMiB) use that class's own probability
    ones = torch.ones(2, 4, 4, dtype=torch.long)
    plain = F.cross_entropy(x, ones)
    assert losses.unbiased_cross_entropy(x, ones, n_old).item() == pytest.approx(plain.item(), rel=1e-5)


def test_unbiased_ce_at_step0_is_plain_ce():
    x = rnd(1, 3, 2, 2)
    y = torch.tensor([[[0, 1], [2, 255]]])
    assert losses.unbiased_cross_entropy(x, y, 1).item() == pytest.approx(losses.cross_entropy(x, y).item(), rel=1e-6)


def test_unbiased_distillation_formula():
    n_old, C = 3, 5
    x, xo = rnd(1, C, 2, 2), rnd(1, n_old, 2, 2)
    total = 0.0
    for i in range(2):
        for j in range(2):
            q = F.softmax(x[0, :, i, j], 0)
            p = F.softmax(xo[0, :, i, j], 0)
            q_hat = torch.cat([(q[0] + q[n_old:].sum())[None], q[1:n_old]])  # MiB Eq. 6
            total += -(p * q_hat.log()).sum().item() / n_old  # Eq. 7, averaged over old classes
    assert losses.unbiased_distillation(x, xo).item() == pytest.approx(total / 4, rel=1e-5)


def test_kd_restricts_softmax_to_old_classes():
    x, xo = rnd(1, 5, 2, 1), rnd(1, 3, 2, 1)
    total = 0.0
    for i in range(2):
        q = F.log_softmax(x[0, :3, i, 0] / 2.0, 0)
        p = F.softmax(xo[0, :, i, 0] / 2.0, 0)
        total += -(p * q).sum().item() / 3
    assert losses.knowledge_distillation(x, xo, temperature=2.0).item() == pytest.approx(total / 2, rel=1e-5)
    # identical old outputs and no new classes: the loss is the old model's entropy / n_old
    same = losses.knowledge_distillation(xo, xo)
    p = F.softmax(xo, 1)
    assert same.item() == pytest.approx((-(p * p.log()).sum(1) / 3).mean().item(), rel=1e-5)


def _bce(x, t):
    return -(t * torch.sigmoid(x).log() + (1 - t) * (1 - torch.sigmoid(x)).log())


def test_bce_one_hot_is_mibs_summed_bce_over_labelled_pixels():
    """MiB's BCEWithLogitsLossWithIgnoreIndex: one-hot targets, BCE summed over classes."""
    x = rnd(1, 4, 1, 3)
    y = torch.tensor([[[3, 0, 255]]])
    per_pixel = []
    for j, label in enumerate([3, 0]):
        t = F.one_hot(torch.tensor(label), 4).float()
        per_pixel.append(_bce(x[0, :, 0, j], t).sum())  # summed over classes, not averaged
    expected = torch.stack(per_pixel).mean()  # the ignored pixel does not count
    assert losses.bce_one_hot(x, y).item() == pytest.approx(expected.item(), rel=1e-5)


def test_lwf_mc_is_mibs_objective():
    """MiB's --method LWF-MC at step >= 1: BCE on one-hot labels + 10 * n_old * mean BCE(old, sigmoid(old'))."""
    x, xo = rnd(2, 5, 3, 3), rnd(2, 3, 3, 3)
    y = torch.randint(0, 5, (2, 3, 3), generator=g)
    y[y < 3] = 0  # step labels: old classes are background
    onehot = F.one_hot(y, 5).permute(0, 3, 1, 2).float()
    cls = _bce(x, onehot).sum(1).mean()
    dist = 3 * F.binary_cross_entropy_with_logits(x[:, :3], torch.sigmoid(xo))  # n_cl_old * mean
    assert losses.lwf_mc_loss(x, y, xo).item() == pytest.approx((cls + 10 * dist).item(), rel=1e-5)
    assert losses.lwf_mc_distillation(x, xo).item() == pytest.approx(dist.item(), rel=1e-5)


def test_distillation_skips_masked_pixels():
    """A padded pixel (mask False) changes nothing however different the two models are there."""
    x, xo = rnd(1, 5, 2, 2), rnd(1, 3, 2, 2)
    mask = torch.tensor([[[True, True], [True, False]]])
    x2 = x.clone()
    x2[..., 1, 1] += 50 * rnd(5)
    for fn in (losses.knowledge_distillation, losses.unbiased_distillation, losses.lwf_mc_distillation):
        a, b = fn(x, xo, mask=mask), fn(x2, xo, mask=mask)
        assert a.item() == pytest.approx(b.item(), rel=1e-6), fn.__name__
        assert fn(x, xo).item() != pytest.approx(fn(x2, xo).item(), rel=1e-3), fn.__name__
        # the masked mean is the mean over the three kept pixels
        per = [fn(x[..., i : i + 1, j : j + 1], xo[..., i : i + 1, j : j + 1]) for i, j in ((0, 0), (0, 1), (1, 0))]
        assert a.item() == pytest.approx(torch.stack(per).mean().item(), rel=1e-5), fn.__name__


def test_feature_distillation_weights_cells_by_their_labelled_share():
    f, fo = rnd(1, 4, 2, 2), rnd(1, 4, 2, 2)
    mask = torch.ones(1, 8, 8, dtype=torch.bool)
    mask[:, 4:, 4:] = False  # the bottom-right feature cell is all padding
    mask[:, :4, 4:6] = False  # the top-right cell is half padding
    err = ((f - fo) ** 2).mean(1)[0]
    w = torch.tensor([[1.0, 0.5], [1.0, 0.0]])
    want = (err * w).sum() / w.sum()
    assert losses.feature_distillation(f, fo, mask).item() == pytest.approx(want.item(), rel=1e-5)


def test_feature_distillation_is_mse():
    a, b = rnd(2, 8, 2, 2), rnd(2, 8, 2, 2)
    assert losses.feature_distillation(a, b).item() == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-6)
    assert losses.feature_distillation(a, a).item() == 0.0
    assert math.isfinite(losses.unbiased_distillation(rnd(1, 3, 1, 1) * 100, rnd(1, 2, 1, 1) * 100).item())


def test_unbiased_ce_on_exemplar_background_merges_only_classes_learned_since():
    """An exemplar annotated for outputs 0..n-1: its background is q0 + sum_{k>=n} qk (later old
    steps and the current new classes, which no exemplar annotates)."""
    x = rnd(1, 6, 1, 4)  # outputs: 0 bg, 1-2 step 0, 3 step 1, 4-5 new at step 2; num_old = 4
    y = torch.tensor([[[0, losses.known_background(3), losses.known_background(4), 2]]])
    p = x.softmax(1)[0, :, 0]
    want = -torch.stack(
        [
            p[:4, 0].sum().log(),  # new image's background: bg + every old class
            (p[0, 1] + p[3:, 1].sum()).log(),  # stored at step 0: bg + step 1 + new
            (p[0, 2] + p[4:, 2].sum()).log(),  # stored at step 1: bg + the new classes
            p[2, 3].log(),
        ]
    ).mean()
    assert losses.unbiased_cross_entropy(x, y, num_old=4).item() == pytest.approx(want.item(), rel=1e-5)
    # every other loss reads the code as background 0
    plain = torch.tensor([[[0, 0, 0, 2]]])
    assert losses.cross_entropy(x, y).item() == pytest.approx(losses.cross_entropy(x, plain).item(), rel=1e-6)
    assert losses.bce_one_hot(x, y).item() == pytest.approx(losses.bce_one_hot(x, plain).item(), rel=1e-6)
    with pytest.raises(ValueError, match="n_known=60"):
        losses.known_background(60)
