"""BiSeNet design ablation on CamVid: incseg's BiSeNet against the seed course project's.

Every model is trained by the same loop (``incseg_lib.engine.fit``: SGD momentum 0.9, weight decay
1e-4 without decay on BN/biases, poly LR, main + auxiliary cross-entropy), on the same data
(CamVid train+val, ``train_transforms(crop)``: random scale 0.5-2, crop, flip) and evaluated on the
233 test frames at full resolution. One JSON line per run on stdout::

    python benchmarks/bisenet_ablation.py --variant incseg-v0 --seed 0          # one run
    python benchmarks/bisenet_ablation.py --list                                # the variants
    python benchmarks/bisenet_ablation.py --speed                               # images/s only

Variants (``--variant``):

* ``seed``: the seed project's BiSeNet, rebuilt from the description of
  francescodisalvo05/incremental-learning-semantic-segmentation ``modules/build_BiSeNet.py`` (itself
  ooooverflow's BiSeNet): spatial path of three 3x3 stride-2 conv-BN-ReLU (64, 128, 256 channels);
  attention refinement directly on the raw ResNet stage outputs (no conv); the 1/32 map multiplied
  by its own global mean; both context maps upsampled bilinearly to 1/8 and concatenated with the
  spatial path (1024 channels for ResNet-18); FFM = 3x3 conv-BN-ReLU to 256 + channel attention;
  a 1x1 classifier; auxiliary 1x1 classifiers on the two 1/8 context maps (256 and 512 channels);
  Kaiming-normal (fan_in, ReLU) initialisation of every non-backbone conv but the final classifier.
* ``incseg-v0``: incseg's first BiSeNet (architecture 1) (``SegHead`` 256 wide, auxiliary heads on the
  two 1/16 maps, nearest upsampling in the U-shaped context path, PyTorch's default init).
* ``incseg-v0+<switch>``: ``incseg-v0`` with one difference switched to the seed's choice:
  ``kaiming`` (init), ``ffm3x3`` (FFM kernel), ``raw-arm`` (the seed's context aggregation: ARMs on
  raw stage outputs, global-mean multiply, bilinear to 1/8, wide concatenation), ``gc-mul`` (global
  context multiplied, not added), ``aux-raw`` (auxiliary 1x1 classifiers on the raw ResNet stage
  outputs), ``sp256`` (the seed's spatial path), ``bilinear`` (bilinear upsampling in the U path).
  Switches combine with ``+``: ``incseg-v0+kaiming+aux-raw`` is architecture 2,
  ``incseg-v0+kaiming+aux-raw+sp256`` architecture 3 (the library's model).
* ``incseg``: the library's current :class:`incseg_lib.models.BiSeNet` (architecture 3).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from incseg_lib.models.bisenet import (
    AttentionRefinementModule,
    BiSeNet,
    SpatialPath,
    build_resnet,
    conv_bn_relu,
    kaiming_init,
)


class TorchSegSpatialPath(nn.Sequential):
    """incseg's spatial path of architectures 1 and 2, after TorchSeg's ``SpatialPath``: 7x7, 3x3, 3x3
    stride-2 conv-BN-ReLU of 64 channels and a 1x1 conv-BN-ReLU to 128 (``incseg-v0`` and its switches
    without ``sp256``)."""

    def __init__(self):
        super().__init__(
            conv_bn_relu(3, 64, 7, 2), conv_bn_relu(64, 64, 3, 2), conv_bn_relu(64, 64, 3, 2), conv_bn_relu(64, 128, 1)
        )


SWITCHES = ("kaiming", "ffm3x3", "raw-arm", "gc-mul", "aux-raw", "sp256", "bilinear")
VARIANTS = ("seed", "incseg-v0", "incseg") + tuple(f"incseg-v0+{s}" for s in SWITCHES)


# ---------------------------------------------------------------------- the seed project's model
class SeedARM(nn.Module):
    """The seed's ARM: ``x * sigmoid(BN(conv1x1(avgpool(x))))`` on the raw stage output (no conv)."""

    def __init__(self, c: int):
        super().__init__()
        self.att = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1), nn.BatchNorm2d(c), nn.Sigmoid())

    def forward(self, x):
        return x * self.att(x)


class SeedFFM(nn.Module):
    """The seed's FFM: 3x3 conv-BN-ReLU over the concatenation, then ``f + f * att(f)`` (no reduction)."""

    def __init__(self, cin: int, cout: int = 256, kernel: int = 3):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, kernel)
        self.att = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(cout, cout, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 1),
            nn.Sigmoid(),
        )

    def forward(self, a, b):
        f = self.conv(torch.cat([a, b], 1))
        return f + f * self.att(f)


def _encode(b: nn.Module, x: torch.Tensor):
    """A torchvision ResNet's 1/16 (layer3) and 1/32 (layer4) outputs."""
    c16 = b.layer3(b.layer2(b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(x)))))))
    return c16, b.layer4(c16)


def seed_spatial_path() -> nn.Module:
    """The seed's spatial path: three 3x3 stride-2 conv-BN-ReLU of 64, 128, 256 channels (the library's
    :class:`SpatialPath` since architecture 3)."""
    return SpatialPath((64, 128, 256))


class SeedBiSeNet(nn.Module):
    """The seed project's BiSeNet-R18 (see the module docstring), returning incseg's output dict."""

    backbone_name = "resnet18"

    def __init__(self, num_classes: int):
        super().__init__()
        self.backbone = build_resnet("resnet18", "")
        self.spatial_path = seed_spatial_path()
        self.arm16, self.arm32 = SeedARM(256), SeedARM(512)
        self.ffm = SeedFFM(256 + 256 + 512)
        self.aux16, self.aux32 = nn.Conv2d(256, num_classes, 1), nn.Conv2d(512, num_classes, 1)
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d) and not name.startswith("backbone"):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        self.classifier = nn.Conv2d(256, num_classes, 1)  # the seed's classifier keeps PyTorch's init

    def forward(self, x):
        size = x.shape[2:]
        sp = self.spatial_path(x)
        c16, c32 = _encode(self.backbone, x)
        cx1 = self.arm16(c16)
        cx2 = self.arm32(c32) * c32.mean((2, 3), keepdim=True)
        cx1 = F.interpolate(cx1, size=sp.shape[2:], mode="bilinear", align_corners=False)
        cx2 = F.interpolate(cx2, size=sp.shape[2:], mode="bilinear", align_corners=False)
        fused = self.ffm(sp, torch.cat([cx1, cx2], 1))
        up = lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False)  # noqa: E731
        out = {"out": up(self.classifier(fused)), "features": c32}
        if self.training:
            out["aux"] = [up(self.aux16(cx1)), up(self.aux32(cx2))]
        return out


# ---------------------------------------------------------------------- incseg's architecture 1, with switches
class V0BiSeNet(nn.Module):
    """incseg's BiSeNet-R18 as it was in architecture 1, with one of :data:`SWITCHES` (or none) applied."""

    backbone_name = "resnet18"

    def __init__(self, num_classes: int, switch: str = ""):
        super().__init__()
        self.switches = set(s for s in switch.split("+") if s)
        if self.switches - set(SWITCHES):
            raise ValueError(f"unknown switch(es) {sorted(self.switches - set(SWITCHES))}; choose from {SWITCHES}")
        switch = _On(self.switches)
        self.backbone = build_resnet("resnet18", "")
        sp_ch = 256 if switch == "sp256" else 128
        self.spatial_path = seed_spatial_path() if switch == "sp256" else TorchSegSpatialPath()
        if switch == "raw-arm":
            self.arm16, self.arm32 = SeedARM(256), SeedARM(512)
            cp_ch = 768
        else:
            self.arm16, self.arm32 = AttentionRefinementModule(256, 128), AttentionRefinementModule(512, 128)
            self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(512, 128, 1))
            self.refine32, self.refine16 = conv_bn_relu(128, 128, 3), conv_bn_relu(128, 128, 3)
            cp_ch = 128
        self.ffm = _V0FFM(sp_ch + cp_ch, 256, 3 if switch == "ffm3x3" else 1)
        self.head = nn.Sequential(conv_bn_relu(256, 256, 3), nn.Conv2d(256, num_classes, 1))
        if switch == "aux-raw":
            self.aux = nn.ModuleList([nn.Conv2d(256, num_classes, 1), nn.Conv2d(512, num_classes, 1)])
        else:
            aux_in = (256, 512) if switch == "raw-arm" else (128, 128)
            self.aux = nn.ModuleList(
                [nn.Sequential(conv_bn_relu(c, 64, 3), nn.Conv2d(64, num_classes, 1)) for c in aux_in]
            )
        if switch == "kaiming":  # every non-backbone layer but the final 1x1 classifiers, as the seed
            for name, part in self.named_children():
                if name not in ("backbone", "head", "aux"):
                    kaiming_init(part)
            for seq in [self.head, *self.aux]:
                if isinstance(seq, nn.Sequential):  # its 3x3 conv; plain 1x1 classifiers keep their init
                    kaiming_init(seq[0])

    def forward(self, x):
        size = x.shape[2:]
        sp = self.spatial_path(x)
        c16, c32 = _encode(self.backbone, x)
        size8 = sp.shape[2:]
        switch = _On(self.switches)
        if switch == "raw-arm":
            f16 = F.interpolate(self.arm16(c16), size=size8, mode="bilinear", align_corners=False)
            f32 = F.interpolate(
                self.arm32(c32) * c32.mean((2, 3), keepdim=True), size=size8, mode="bilinear", align_corners=False
            )
            cp, aux_in = torch.cat([f16, f32], 1), (f16, f32)
        else:
            mode = dict(mode="bilinear", align_corners=False) if switch == "bilinear" else dict(mode="nearest")
            g = self.global_context(c32)
            a32 = self.arm32(c32)
            f32 = a32 * g if switch == "gc-mul" else a32 + g
            f32 = self.refine32(F.interpolate(f32, size=c16.shape[2:], **mode))
            f16 = self.arm16(c16) + f32
            cp = self.refine16(F.interpolate(f16, size=size8, **mode))
            aux_in = (c16, c32) if switch == "aux-raw" else (f16, f32)
        fused = self.ffm(sp, cp)
        up = lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=False)  # noqa: E731
        out = {"out": up(self.head(fused)), "features": c32}
        if self.training:
            out["aux"] = [up(h(f)) for h, f in zip(self.aux, aux_in)]
        return out


class _On:
    """``switch == name`` is True when ``name`` is one of the switches (several may be combined with +)."""

    def __init__(self, names):
        self.names = set(names)

    def __eq__(self, name):
        return name in self.names


class _V0FFM(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, kernel)
        self.att = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(cout, cout // 4, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout // 4, cout, 1),
            nn.Sigmoid(),
        )

    def forward(self, a, b):
        f = self.conv(torch.cat([a, b], 1))
        return f + f * self.att(f)


def build(variant: str, num_classes: int) -> nn.Module:
    """The model of ``variant`` (one of :data:`VARIANTS`), random init (seeded by the caller)."""
    if variant == "seed":
        return SeedBiSeNet(num_classes)
    if variant == "incseg":
        return BiSeNet([num_classes], "resnet18", "")
    if variant == "incseg-v0":
        return V0BiSeNet(num_classes)
    if variant.startswith("incseg-v0+"):  # one switch, or several joined by "+"
        return V0BiSeNet(num_classes, variant.split("+", 1)[1])
    raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")


# ---------------------------------------------------------------------- runs
def train_and_test(
    variant: str,
    seed: int,
    epochs: int,
    crop: int,
    batch: int,
    lr: float,
    data_root: str,
    track_epochs: bool = False,
    precise_bn_batches: int = 0,
    bn_momentum: float | None = None,
) -> dict:
    """Train ``variant`` from scratch and evaluate it on CamVid test (full frames).

    ``track_epochs`` also evaluates after every epoch (by stopping and resuming ``fit`` through a
    checkpoint, which is exact); ``precise_bn_batches`` > 0 additionally re-estimates the BatchNorm
    statistics on that many training batches before each of those evaluations (precise BN:
    ``torch.optim.swa_utils.update_bn``, a cumulative average instead of the EMA); ``bn_momentum``
    sets every BatchNorm's momentum (PyTorch's default 0.1).
    """
    import copy
    import tempfile
    from pathlib import Path

    from torch.optim.swa_utils import update_bn
    from torch.utils.data import DataLoader

    from incseg_lib.data import load_dataset
    from incseg_lib.data.transforms import eval_transforms, train_transforms
    from incseg_lib.engine import Saving, Schedule, evaluate, fit

    train = load_dataset("camvid", "trainval", root=data_root, incremental=False, transforms=train_transforms(crop))
    test = load_dataset("camvid", "test", root=data_root, incremental=False, transforms=eval_transforms())
    torch.manual_seed(seed)
    model = build(variant, 11)
    if bn_momentum is not None:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = bn_momentum

    def log(msg):
        print(f"[{variant} s{seed}] {msg}", file=sys.stderr, flush=True)

    def test_scores(m) -> dict:
        cm = evaluate(m, test, 11, device="cpu", progress=False)["confusion"]
        return {"miou": round(100 * cm.miou(), 2), "pixel_acc": round(100 * cm.pixel_accuracy(), 2)}

    per_epoch = []
    schedule = Schedule(epochs=epochs, batch_size=batch, lr=lr, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "run.pt" if track_epochs else None
        for stop in range(1, epochs + 1) if track_epochs else [epochs]:
            hist = fit(model, train, schedule, saving=Saving(ckpt, stop_after_epoch=stop), progress=False)
            if not track_epochs:
                break
            row = {"epoch": stop, **test_scores(model)}
            if precise_bn_batches:
                pb = copy.deepcopy(model)
                g = torch.Generator().manual_seed(seed + 1000 * stop)
                idx = torch.randperm(len(train), generator=g)[: precise_bn_batches * batch].tolist()
                update_bn(
                    DataLoader(torch.utils.data.Subset(train, idx), batch_size=batch), pb
                )  # update_bn feeds each batch's first element (the images)
                row["precise_bn"] = test_scores(pb)
            per_epoch.append(row)
            log(json.dumps(row))
    scores = test_scores(model) if not per_epoch else {k: per_epoch[-1][k] for k in ("miou", "pixel_acc")}
    cm = evaluate(model, test, 11, device="cpu", progress=False)["confusion"] if not track_epochs else None
    return {
        "benchmark": "bisenet_ablation",
        "variant": variant,
        "seed": seed,
        "epochs": epochs,
        "crop": crop,
        "batch": batch,
        "lr": lr,
        "bn_momentum": bn_momentum,
        "test_miou": scores["miou"],
        "pixel_acc": scores["pixel_acc"],
        "iou": [round(100 * v, 1) for v in cm.iou().tolist()] if cm is not None else None,
        "loss": [round(v, 4) for v in hist["loss"]],
        "s_per_epoch": round(hist["train_seconds"] / max(hist["epochs_done"], 1), 1),
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "per_epoch": per_epoch,
    }


def speed(variants: list[str], crop: int, batch: int, iters: int, rounds: int) -> list[dict]:
    """Training images/s on synthetic batches, variants interleaved over ``rounds`` (fair on a busy CPU)."""
    from incseg_lib.engine import make_optimizer
    from incseg_lib.losses import bisenet_loss

    setups = {}
    for v in variants:
        torch.manual_seed(0)
        m = build(v, 11).train()
        setups[v] = (m, make_optimizer(m, 0.01))
    x = torch.randn(batch, 3, crop, crop)
    y = torch.randint(0, 11, (batch, crop, crop))
    times = {v: [] for v in variants}
    for r in range(rounds):
        for v, (m, opt) in setups.items():
            for i in range(iters + (1 if r == 0 else 0)):
                t0 = time.perf_counter()
                loss = bisenet_loss(m(x), y)["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if not (r == 0 and i == 0):  # first iteration of the first round is warm-up
                    times[v].append(time.perf_counter() - t0)
    rows = []
    for v in variants:
        t = sorted(times[v])
        med = t[len(t) // 2]
        rows.append(
            {
                "benchmark": "bisenet_train_speed",
                "variant": v,
                "crop": crop,
                "batch": batch,
                "images_per_second": round(batch / med, 2),
                "ms_per_batch_median": round(1000 * med, 1),
                "iterations": len(t),
                "threads": torch.get_num_threads(),
                "params": sum(p.numel() for p in setups[v][0].parameters()),
                "torch": torch.__version__,
                "python": platform.python_version(),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="incseg", help="one of --list")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.025)
    ap.add_argument(
        "--data-root", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "camvid")
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = PyTorch's default)")
    ap.add_argument("--track-epochs", action="store_true", help="evaluate on test after every epoch")
    ap.add_argument(
        "--precise-bn",
        type=int,
        default=0,
        metavar="N",
        help="with --track-epochs: also evaluate after re-estimating BN statistics on N batches",
    )
    ap.add_argument("--bn-momentum", type=float, default=None, help="BatchNorm momentum (default 0.1)")
    ap.add_argument("--list", action="store_true", help="print the variants and exit")
    ap.add_argument("--speed", action="store_true", help="training images/s of --variants, interleaved")
    ap.add_argument("--variants", default="seed,incseg-v0,incseg", help="comma list for --speed")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.list:
        print("\n".join(VARIANTS))
        return
    if a.speed:
        for row in speed(a.variants.split(","), a.crop, a.batch, a.iters, a.rounds):
            print(json.dumps(row), flush=True)
        return
    if a.variant not in VARIANTS and not a.variant.startswith("incseg-v0+"):
        ap.error(f"unknown variant {a.variant!r}; choose one of {', '.join(VARIANTS)}")
    print(
        json.dumps(
            train_and_test(
                a.variant,
                a.seed,
                a.epochs,
                a.crop,
                a.batch,
                a.lr,
                a.data_root,
                a.track_epochs,
                a.precise_bn,
                a.bn_momentum,
            )
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
