# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Offline BiSeNet and its tuning
#
# Before anything is learned *incrementally* we need the model that everything else builds on,
# trained the ordinary way: **offline**, all classes at once. Its mIoU is the ceiling the
# incremental methods of the next notebooks are measured against (the *Joint* upper bound).
#
# This lab:
# 1. loads the data (the embedded `shapes` stand-in by default, PASCAL VOC 2012 or CamVid with a profile);
# 2. explains and builds **BiSeNet** (Yu et al., ECCV 2018);
# 3. runs a small hyperparameter grid — backbone × learning rate × batch size — sized by the profile;
# 4. compares the runs (mIoU, pixel accuracy, loss curves) and looks at predictions.
#
# Everything heavy lives in `incseg_lib`; the cells here only call it.

# %% [markdown]
# **On Colab** the next cell installs the library this notebook belongs to (the release in
# `pyproject.toml`, or `INCSEG_SOURCE`; docs/colab.md) and, with `USE_DRIVE = True`, keeps
# data, checkpoints and results on Google Drive. Elsewhere it does nothing.

# %% tags=["setup"]
USE_DRIVE = False  # Colab: True keeps data, checkpoints and results on Google Drive (INCSEG_HOME)
SOURCE = "git+https://github.com/incseg/incseg@v0.1.0"  # from pyproject.toml (`make notebooks`)
import os, subprocess, sys  # noqa: E401,E402

try:
    import google.colab  # noqa: F401  (exists on Colab only; elsewhere this cell does nothing)
except ImportError:
    pass
else:
    SOURCE = os.environ.get("INCSEG_SOURCE") or SOURCE  # a course's fork: git URL@ref, wheel or folder
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", SOURCE]).returncode:
        raise RuntimeError(
            f"could not install incseg from {SOURCE!r}: set INCSEG_SOURCE to a reachable git "
            "URL with @ref, a wheel or a folder (os.environ['INCSEG_SOURCE'] = ...)"
        )
    from incseg_lib.colab import setup

    setup(SOURCE, drive=USE_DRIVE)

# %% tags=["parameters"]
profile: str = "demo"  # demo | smoke | cpu | colab | paper (README, "Profiles")
smoke: bool = False  # True forces the smoke profile (CI: every cell runs, numbers mean nothing)
dataset: str = ""  # shapes | voc | camvid (empty: the dataset of the profile)
data_root: str = ""  # folder holding VOCdevkit or CamVid (empty: the default data folder)
run_dir: str = ""  # where results go (empty: $INCSEG_HOME/runs/01_offline_bisenet_tuning, docs/teaching.md)
backbones: str = ""  # comma list of resnet18, resnet50, resnet101 (empty: the grid of the profile)
lrs: str = ""  # comma list of learning rates (empty: the grid of the profile)
batch_sizes: str = ""  # comma list of batch sizes (empty: the grid of the profile)
epochs: int = 0  # epochs per run (0: as the profile says)
pretrained: str = ""  # imagenet, none, or a state-dict path (empty: as the profile says)
seed: int = 0  # weights, data order and augmentation
gallery_images: int = 4  # validation images shown with predictions

# %%
from incseg_lib import viz
from incseg_lib.config import RunConfig, parse_list
from incseg_lib.env import notebook_run_dir, set_seed
from incseg_lib.data import load_dataset, train_split
from incseg_lib.experiment import grid_configs, grid_table, run_grid

cfg = RunConfig.from_profile(
    "smoke" if smoke else profile,
    dataset=dataset,
    data_root=data_root,
    task="offline",
    run_dir=notebook_run_dir("01_offline_bisenet_tuning", run_dir),
    epochs=epochs or None,
    seed=seed,
    pretrained=pretrained,
)
set_seed(cfg.seed)
print(cfg.profile, cfg.dataset, "crop", cfg.crop_size, "epochs", cfg.epochs, "device", cfg.torch_device())

# %% [markdown]
# ## The data
#
# Every dataset is read through one loader. Masks hold class ids (0 = background for VOC,
# 255 = *void*, ignored by the loss and the metrics — the thin cream outlines below).

# %%
train = load_dataset(cfg.dataset, train_split(cfg.dataset, cfg.voc_split), root=cfg.data_root, incremental=False)
print(f"{len(train)} training images, {train.info.num_classes} classes:", ", ".join(train.info.class_names))
fig = viz.show_samples(train, range(8), train.info.display_palette, train.info.class_names)

# %% [markdown]
# ## BiSeNet in one picture
#
# Real-time segmentation has to keep two things that pull against each other: **spatial detail**
# (thin structures, object borders) and a **large receptive field** (context: what the scene is).
# BiSeNet gives each its own path:
#
# * the **spatial path** — three stride-2 conv-BN-ReLU layers — keeps a wide 1/8-resolution map;
# * the **context path** — a ResNet down to 1/32, plus global average pooling — sees the whole
#   image; **attention refinement modules (ARM)** reweight its 1/16 and 1/32 features with a
#   channel attention computed from their global average;
# * a **feature fusion module (FFM)** concatenates both paths and reweights the channels
#   (`x + x * attention(x)`), because the two paths speak at different levels of abstraction;
# * two **auxiliary heads** on the context path add their loss during training only
#   (loss = principal + 1.0 × each auxiliary).
#
# Each classification head is *incremental*: one 1×1 convolution per step, concatenated — here
# there is a single step holding every class.

# %%
from incseg_lib.models import BiSeNet, count_parameters

for name in parse_list(backbones) or cfg.grid["backbones"]:
    net = BiSeNet([train.info.num_classes], name)
    print(f"{name:10s} {count_parameters(net) / 1e6:5.1f} M parameters, heads per step {net.classes_per_step}")

# %% [markdown]
# ## The grid
#
# Each configuration trains with SGD (momentum 0.9, weight decay 1e-4) and a *poly* learning
# rate, saving a checkpoint every epoch: re-running this notebook reuses finished runs, and a
# run interrupted by a Colab disconnect resumes where it stopped.

# %%
configs = grid_configs(
    cfg,
    parse_list(backbones) or None,
    parse_list(lrs, float, "lrs") or None,
    parse_list(batch_sizes, int, "batch_sizes") or None,
)
print(f"{len(configs)} configurations")
outcomes = run_grid(configs, notebook="01_offline_bisenet_tuning")

# %% [markdown]
# ## Results
#
# mIoU is the mean over classes of intersection-over-union, computed from one confusion matrix
# accumulated over the whole validation set (classes absent from both prediction and ground
# truth are left out). Pixel accuracy is dominated by large classes, mIoU is not.

# %%
table = grid_table(outcomes)
table

# %%
histories = {f"{o.config.backbone} lr={o.config.lr} bs={o.config.batch_size}": o.history for o in outcomes}
viz.show(viz.loss_curves(histories), viz.loss_reading(histories))

# %% [markdown]
# ## Per-class IoU and predictions of the best run

# %%
best = max(outcomes, key=lambda o: o.record.miou_all or 0)
viz.show(viz.iou_bars(best.record), viz.iou_reading(best.record))

# %%
from incseg_lib.data import eval_split
from incseg_lib.data.transforms import eval_transforms

val = load_dataset(
    cfg.dataset, eval_split(cfg.dataset), root=cfg.data_root, incremental=False, transforms=eval_transforms()
)
title = f"{best.config.backbone}, lr {best.config.lr}: image | ground truth | prediction"
shown = range(gallery_images)
preds = viz.predict_images(best.model, val, shown, cfg.torch_device())
fig = viz.gallery(best.model, val, shown, val.info.display_palette, title=title, predictions=preds)
viz.show(fig, viz.gallery_reading(val, shown, preds))

# %% [markdown]
# ## Exercises
#
# Two functions this lab's numbers rest on; write each body between the `BEGIN`/`END SOLUTION`
# markers, then run the check cell below it (it compares your function with the library's on small
# random tensors).
#
# **1 · IoU from a confusion matrix.** With `mat[t, p]` the pixels of true class `t` predicted as `p`,
# the IoU of class `c` is $\mathrm{TP}_c / (\mathrm{TP}_c + \mathrm{FP}_c + \mathrm{FN}_c)$: the
# diagonal over (row sum + column sum - diagonal). A class in neither the labels nor the prediction
# has no IoU: return NaN there (mIoU then leaves it out).

# %% tags=["exercise"]
import torch


def iou_from_confusion(mat: torch.Tensor) -> torch.Tensor:
    """mat: (C, C) int64 counts, rows = truth, columns = prediction. Returns (C,) float IoU, NaN where undefined."""
    # BEGIN SOLUTION
    m = mat.double()
    tp = m.diag()
    union = m.sum(0) + m.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
    # END SOLUTION


# %% tags=["check"]
from incseg_lib.exercises import check

check("iou_from_confusion", iou_from_confusion)

# %% [markdown]
# **2 · The poly learning rate.** BiSeNet (like DeepLab and MiB) lowers the learning rate at every
# iteration: $\mathrm{lr}_i = \mathrm{lr}_0\,(1 - i / N)^{0.9}$ for iteration $i$ of $N$.


# %% tags=["exercise"]
def poly_lr(base_lr: float, iteration: int, total: int, power: float = 0.9) -> float:
    """The learning rate of `iteration` (0-based) out of `total` iterations."""
    # BEGIN SOLUTION
    return base_lr * (1 - iteration / total) ** power
    # END SOLUTION


# %% tags=["check"]
from incseg_lib.exercises import check

check("poly_lr", poly_lr)

# %% [markdown]
# ## Expected findings
#
# What this run should show, checked on its own records (the suite's report lists them too).
# In the `demo` profile BiSeNet learns the shapes well within a few minutes from scratch.

# %%
from incseg_lib import findings
from incseg_lib.findings import Finding, Metric

expected = [
    Finding(
        "BiSeNet learns from scratch: offline mIoU well above the background-only score",
        Metric("offline", "all"),
        ">=",
        3 * 100 / train.info.num_classes,
    )
]
if cfg.profile == "demo":
    expected.append(
        Finding("demo: the offline model reaches 70 mIoU on the shapes", Metric("offline", "all"), ">=", 70)
    )
found = findings.check(
    expected,
    [o.record for o in outcomes],
    notebook="01_offline_bisenet_tuning",
    run_dir=cfg.run_dir,
    profile=cfg.profile,
    dataset=cfg.dataset,
)

# %% [markdown]
# ## What to take away
#
# * Training from scratch (no ImageNet weights, as in the smoke and CPU runs) stays far below what
#   pretrained backbones reach; the `colab` profile starts from ImageNet weights.
# * The best configuration's checkpoint is the offline reference the incremental notebooks compare with.
#
# What this run showed, written from its records and findings:

# %%
findings.takeaways(found, extra=findings.grid_takeaway_lines([o.record for o in outcomes]))
