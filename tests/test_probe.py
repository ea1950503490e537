"""The linear probe: a fresh classifier on a frozen model's features finds what the features know."""

import copy

import pytest
import torch
from torch import nn

from incseg_lib.models.classifier import IncrementalClassifier
from incseg_lib.models.probe import LinearProbe


class ToyModel(nn.Module):
    """Features = a BatchNorm of the image (3 channels, one per class), then a 1x1 classifier."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm2d(3)
        self.head = IncrementalClassifier(3, [3])

    def classifiers(self):
        return [self.head]

    def forward(self, x, aux=None):
        return {"out": self.head(self.norm(x))}


def _images(n=4, size=8, seed=0):
    """``(n, 3, size, size)`` images whose channel c is 1 where the class is c, and their labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n, size, size), generator=g)
    return nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).float(), labels


def test_the_probe_reads_what_the_features_know_while_a_drifted_classifier_does_not():
    model = ToyModel()
    x, y = _images()
    model.train()
    model(x)  # BN statistics from these images, then frozen
    with torch.no_grad():  # a drifted classifier: class c's weight on feature (c + 1) % 3
        model.head.heads[0].weight.copy_(torch.eye(3)[[1, 2, 0]][:, :, None, None] * 5)
        model.head.heads[0].bias.zero_()
    before = copy.deepcopy(model.state_dict())
    model.eval()
    wrong = (model(x)["out"].argmax(1) == y).float().mean().item()
    probe = LinearProbe(model, 3)
    opt = torch.optim.SGD(probe.classifier.parameters(), lr=1.0)
    probe.train()
    for _ in range(200):
        loss = nn.functional.cross_entropy(probe(x)["out"], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    probe.eval()
    right = (probe(x)["out"].argmax(1) == y).float().mean().item()
    assert wrong == 0.0 and right == 1.0
    assert not model.training and not probe.model.training  # train() left the probed model in eval mode
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics untouched
    assert probe(x)["out"].shape == (4, 3, 8, 8)
    assert all(not p.requires_grad for p in probe.model.parameters())


def test_the_probe_refuses_what_it_cannot_probe():
    with pytest.raises(ValueError, match="num_classes"):
        LinearProbe(ToyModel(), 0)
    with pytest.raises(ValueError, match="classifiers"):
        LinearProbe(nn.Conv2d(3, 3, 1), 3)


def test_probe_step_records_the_probe_beside_the_run_and_reuses_its_file(tiny_cfg, said):
    from incseg_lib import results
    from incseg_lib.experiment.probing import probe_file, probe_step
    from incseg_lib.runs import is_probe

    cfg = tiny_cfg(max_train_images=24)
    said.clear()
    rec = probe_step(cfg, 1, "ft", notebook="test", progress=False)
    assert (
        rec["method"] == "ft|probe" and is_probe(rec["method"]) and results.display_name(rec["method"]) == "FT (probe)"
    )
    assert rec["step"] == 1 and rec["miou_old"] is not None and rec["miou_new"] is not None
    assert probe_file(cfg, 1, "ft").is_file() and any("probe fitted" in s for s in said)
    said.clear()
    again = probe_step(cfg, 1, "ft", notebook="test", progress=False)
    assert any("probe reused" in s for s in said) and again["miou_all"] == rec["miou_all"]  # the probe's file reused
    first = probe_step(cfg, 0, "ft", notebook="test", progress=False)
    assert first["method"] == "step0|probe" and first["miou_new"] is None
