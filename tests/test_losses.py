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
    manual = -torch.stack([F.log_softmax(x[b, :, i, j], 0)[y[b, i, j]]
                           for b in range(2) for i in range(3) for j in range(3) if y[b, i, j] != 255]).mean()
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


def test_lwf_mc_targets():
    x, xo = rnd(1, 4, 1, 2), rnd(1, 2, 1, 2)
    y = torch.tensor([[[3, 255]]])
    t = torch.tensor([torch.sigmoid(xo[0, 0, 0, 0]), torch.sigmoid(xo[0, 1, 0, 0]), 0.0, 1.0])
    s = torch.sigmoid(x[0, :, 0, 0])
    expected = -(t * s.log() + (1 - t) * (1 - s).log()).mean()
    assert losses.lwf_mc_loss(x, y, xo).item() == pytest.approx(expected.item(), rel=1e-5)


def test_feature_distillation_is_mse():
    a, b = rnd(2, 8, 2, 2), rnd(2, 8, 2, 2)
    assert losses.feature_distillation(a, b).item() == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-6)
    assert losses.feature_distillation(a, a).item() == 0.0
    assert math.isfinite(losses.unbiased_distillation(rnd(1, 3, 1, 1) * 100, rnd(1, 2, 1, 1) * 100).item())
