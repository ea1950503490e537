"""Metrics against hand-computed confusion matrices."""

import math

import numpy as np
import pytest
import torch

from incseg_lib.metrics import ConfusionMatrix


def test_confusion_matrix_by_hand():
    # 3 classes; ground truth rows, prediction columns
    gt = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    pr = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(3)
    cm.update(pr, gt)
    expected = np.array(
        [
            [1, 1, 0],  # gt 0: pred 0, pred 1
            [1, 2, 0],  # gt 1: pred 1, pred 1, pred 0
            [1, 0, 1],
        ]
    )  # gt 2: pred 2, pred 0  (255 ignored)
    assert cm.mat.numpy().tolist() == expected.tolist()
    # IoU_c = TP / (TP + FP + FN): class 0: 1/(1+2+1)=0.25; class 1: 2/(2+1+1)=0.5; class 2: 1/(1+0+1)=0.5
    np.testing.assert_allclose(cm.iou(), [0.25, 0.5, 0.5])
    assert cm.miou() == pytest.approx((0.25 + 0.5 + 0.5) / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 7)
    assert cm.miou([1, 2]) == pytest.approx(0.5)


def test_absent_class_is_left_out_not_zero():
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    iou = cm.iou()
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert cm.miou() == pytest.approx((0.5 + 0.5) / 2)  # classes 2, 3 absent from both
    cm.update(torch.tensor([3]), torch.tensor([0]))  # predicted but never true: IoU 0, counted
    assert cm.iou()[3] == 0.0
    # now gt [0,1,0,0], pred [0,1,1,3]: IoU_0 = 1/3, IoU_1 = 1/2, IoU_3 = 0
    assert cm.miou() == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)


def test_streaming_equals_one_shot():
    g = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 5, (4, 16, 16), generator=g)
    gt[:, :2] = 255
    pr = torch.randint(0, 5, (4, 16, 16), generator=g)
    a, b = ConfusionMatrix(5), ConfusionMatrix(5)
    a.update(pr, gt)
    for i in range(4):
        b.update(pr[i], gt[i])
    assert torch.equal(a.mat, b.mat)
    assert a.mat.sum() == (gt != 255).sum()


def test_summary_old_new_all():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 2, 1]))
    s = cm.summary(["background", "cat", "dog"], old_classes=[0, 1], new_classes=[2])
    assert s["iou"] == {"background": 1.0, "cat": 0.5, "dog": 0.5}
    assert s["miou_old"] == pytest.approx(0.75) and s["miou_new"] == pytest.approx(0.5)
    assert s["miou_all"] == pytest.approx(2 / 3, abs=1e-6) and s["pixel_acc"] == pytest.approx(0.75)
    assert cm.summary(["a", "b", "c"])["miou_new"] is None


def test_bad_targets_raise():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="outside 0..2"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0]))


def test_hiou_is_the_harmonic_mean_of_old_and_new():
    from incseg_lib.metrics import harmonic_iou

    assert harmonic_iou(0.6, 0.3) == pytest.approx(2 * 0.6 * 0.3 / 0.9)  # 0.4: pulled toward the weaker side
    assert harmonic_iou(65.1, 21.1) == pytest.approx(31.87, abs=0.01)  # PLOP's VOC 15-1 row, in %
    assert harmonic_iou(0.8, 0.0) == 0.0 and harmonic_iou(0.0, 0.0) == 0.0  # forgetting or not learning: 0
    assert harmonic_iou(None, 0.3) is None and harmonic_iou(0.5, float("nan")) is None
