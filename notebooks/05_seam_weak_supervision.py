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
# # 05 · Weak supervision: SEAM pseudo-labels for the incremental step
#
# Every step so far was trained on **masks**: a label for every pixel of every new image. Drawing
# a VOC mask takes minutes per image; saying *which classes are in it* takes seconds. What if the new
# step's images carry only such **image-level labels**?
#
# A classifier trained on image-level labels already knows *where* it looks: applied at every
# position of its last feature map, its classifier gives a **class activation map** (CAM, Zhou et
# al. 2016). CAMs have a known weakness: they light up only the most *discriminative* part of an
# object (a cat's face, a wheel), because that is enough to classify the image.
#
# **SEAM** (Wang et al., CVPR 2020) adds self-supervision to spread them:
#
# | part | what it does | why it helps |
# |---|---|---|
# | two views | the image and a copy rescaled to 0.3 | a segmentation should rescale with the image; a CAM need not |
# | ER (equivariant regularisation) | the rescaled CAM of the image ≈ the CAM of the rescaled image | CAMs become consistent across scales |
# | PCM (pixel correlation module) | each pixel's score becomes a weighted sum over pixels with similar low-level features | activation flows from the discriminative part to the rest of the object |
# | ECR (equivariant cross regularisation) | each view's PCM output ≈ the other view's CAM | PCM and CAM teach each other |
#
# The **pseudo-label** of a new image: CAMs (after PCM) at several scales and flips, each class
# normalised to [0, 1], a constant **background score** (SEAM: 0.26), argmax. Where the pseudo-label
# says background but the old model sees an old class, the old class is kept (**fusion**, after
# WILSON): MiB-S is then not taught that the old objects in the new images are background. Then the step trains exactly as before —
# MiB-S is MiB on pseudo-labels, FT-S is FT on them.

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
run_dir: str = ""  # where results go (empty: $INCSEG_HOME/runs/05_seam_weak_supervision, docs/teaching.md)
tasks: str = ""  # comma list, e.g. 15-5 (empty: 15-5, or 8-3 on CamVid)
settings: str = ""  # comma list of overlapped, disjoint (empty: overlapped)
methods: str = ""  # methods trained on pseudo-labels, e.g. ft,mib (empty: ft,mib)
seam_init: str = ""  # step0 | imagenet | none (empty: imagenet with ImageNet weights, else step0)
seam_epochs: int = 0  # SEAM training epochs (0: the profile's; SEAM: 8)
seam_backbone: str = ""  # resnet18 | resnet50 | resnet101 (empty: the profile's)
output_stride: int = 8  # 8 (SEAM) or 16
bg_threshold: float = 0.26  # background score of the pseudo-labels (SEAM: 0.26)
cam_source: str = "pcm"  # pcm (SEAM's inference) or cam (before PCM)
fuse_old: bool = True  # old classes from the old model's prediction (only for methods with an old model)
joint_weak: bool = True  # also train Joint-S (all classes at once; the new step's images on MiB-S's pseudo-labels)
epochs: int = 0  # epochs of step 0 (0: as the profile says)
epochs_next: int = 0  # epochs of each later step (0: as the profile says)
pretrained: str = ""  # imagenet, none, or a state-dict path (empty: as the profile says)
seed: int = 0  # weights, data order and augmentation

# %%
from incseg_lib import results, viz
from incseg_lib.config import parse_list
from incseg_lib.data import dataset_info
from incseg_lib.experiment import open_notebook, run_weak_study, seam_examples, weak_config, weak_plan

cfg = open_notebook("05_seam_weak_supervision", globals())  # the parameters above, the run folder, the seed
seam = weak_config(
    cfg,
    init=seam_init,
    epochs=seam_epochs or None,
    backbone=seam_backbone or None,
    output_stride=output_stride,
    bg_threshold=bg_threshold,
    cam_source=cam_source,
    fuse_old=fuse_old,
)
plan = weak_plan(cfg, parse_list(tasks), parse_list(settings), parse_list(methods))
print("plan:", plan)
print("SEAM:", seam)

# %% [markdown]
# ## Training
#
# Step 0 (masks, as always) is the shared model of notebooks 02-04, and so are FT, MiB and Joint
# with masks (reused when they exist). For the weak runs, SEAM is trained once per step on the
# step's images with their image-level labels of the new classes (starting from the step-0 model's
# ResNet where no ImageNet weights are available), its pseudo-labels are stored, and each method
# trains its step on them.

# %%
records, pseudo = run_weak_study(cfg, plan, seam, notebook="05_seam_weak_supervision", joint_weak=joint_weak)
labels = pseudo[(plan["tasks"][0], plan["settings"][0])]
labels.summary()

# %% [markdown]
# ## What SEAM sees
#
# Training images of the new classes, each row named by its image-level label: the ground truth
# (never used for training here), the CAM, the CAM after PCM (both the maximum over the image's
# labelled classes, normalised per image and class to 0-1: the colour bar, with the background
# score marked; under each, the share of the image above it), and the pseudo-label the step trains
# on (old classes filled in by the old model when fused). Under each pseudo-label, computed against
# the ground truth: **found** (IoU of the labelled class at least 0.5), **moved onto** an old object
# (the label covers more of old objects than of the new one) or **missed**.

# %%
first = cfg.replace(task=plan["tasks"][0], setting=plan["settings"][0])
examples = seam_examples(first, labels, seam, n=4)
info = dataset_info(cfg.dataset)  # class names and colours, without opening the data
fig = viz.seam_gallery(
    examples,
    info.display_palette,
    info.class_names,
    title=f"SEAM on {plan['tasks'][0]} step 1: class activations and the pseudo-labels they make",
    threshold=seam.bg_threshold,
)
viz.show(fig, viz.seam_gallery_reading(examples, seam.bg_threshold))

# %% [markdown]
# ### When the activation moves onto an old object
#
# A CAM is the classifier's own map of the labelled class. Where the classifier has not learned
# the class well, its map is weak, or negative everywhere (the panel then says *all 0*). The maps
# are normalised per image and class, so even a faint map is stretched to the full 0-1 range, and
# PCM spreads it along pixel affinities (pixels whose low-level features are alike), which need not
# stay inside the object. When the spread reaches an old object, the pseudo-label paints that old
# object as the new class (red, *moved onto*). Fusion with the old model does not undo it: the old
# model fills in only pixels the pseudo-label calls background. How often each case happens, over
# every training image of the step (not only the rows above):

# %%
import pandas as pd

from incseg_lib.experiment import describe_outcomes, seam_outcomes

outcomes = seam_outcomes(first, labels)
print(describe_outcomes(outcomes))
pd.DataFrame(outcomes["per_class"]).T.rename_axis("new class")

# %% [markdown]
# ## How good are the pseudo-labels?
#
# Each pseudo-label against the mask it replaces (the standard CAM evaluation): mIoU over
# background and the new classes, before (CAM) and after PCM; with fusion, over the old classes too
# (PCM + old model); *chance* draws every pixel at random among background and the image's
# classes. The curve sweeps the background score — *for teaching only*: choosing it with the
# masks would be cheating, the step trains with SEAM's 0.26.

# %%
results.shown(results.pseudo_label_table(records))

# %%
sweep = labels.sweep()
viz.show(viz.threshold_sweep(sweep, chosen=seam.bg_threshold), viz.sweep_reading(sweep))
best_score, best_miou = labels.best_threshold(seam.cam_source)
print(f"best background score (with masks, teaching only): {best_score:.2f} -> mIoU {best_miou:.1f}")

# %% [markdown]
# ## The table
#
# mIoU (%) after the last step, as in the seed course project's table: FT-S, MiB-S and Joint-S
# (pseudo-labels for the new step's images) against FT, MiB and Joint (masks). Joint-S learns every
# class at once, the new step's images labelled by the same pseudo-labels as MiB-S, the others by
# their masks: the ceiling of weak supervision, as Joint is of masks. Notebook 06 collects these
# records with the others.

# %%
results.shown(results.incremental_table(records))

# %% [markdown]
# ## Exercises
#
# **1 · Normalising a CAM.** SEAM turns each class activation map into a score in [0, 1) before
# comparing it with the background threshold: per image and class, take $\mathrm{relu}(p)$, subtract
# its minimum (plus $\epsilon = 10^{-5}$), clamp at 0 and divide by (max - min + $\epsilon$)
# (SEAM's `max_norm`).

# %% tags=["exercise"]
import torch


def max_norm(cam: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """cam (B, C, H, W). Returns the same shape, each map scaled to [0, 1)."""
    # BEGIN SOLUTION
    p = torch.relu(cam)
    lo = p.amin(dim=(2, 3), keepdim=True)
    hi = p.amax(dim=(2, 3), keepdim=True)
    return torch.relu(p - lo - eps) / (hi - lo + eps)
    # END SOLUTION


# %% tags=["check"]
from incseg_lib.exercises import check

check("max_norm", max_norm)

# %% [markdown]
# **2 · Fusing with the old model (WILSON's rule).** The pseudo-label knows only the new classes;
# where it says background, the old model may see an old class. The fused label keeps every
# new-class pixel of the pseudo-label and, where the pseudo-label says background (0), takes the old
# model's prediction if that is an old *foreground* class.

# %% tags=["exercise"]
import torch


def fuse_old(pseudo: torch.Tensor, old_prediction: torch.Tensor, old_classes: list[int]) -> torch.Tensor:
    """pseudo, old_prediction: (H, W) class ids; old_classes: the old class ids (0 = background among them)."""
    # BEGIN SOLUTION
    fg = torch.tensor([c for c in old_classes if c != 0])
    take_old = torch.isin(old_prediction, fg) & (pseudo == 0)
    return torch.where(take_old, old_prediction, pseudo)
    # END SOLUTION


# %% tags=["check"]
from incseg_lib.exercises import check

check("fuse_old", fuse_old)

# %% [markdown]
# ## Expected findings
#
# The pseudo-labels should find the new classes far better than chance; MiB-S should lose some
# accuracy against MiB with masks (its labels are worse) but stay far above FT-S.

# %%
from incseg_lib import findings

expected = findings.weak_findings(plan)
found = findings.check(
    expected,
    records,
    notebook="05_seam_weak_supervision",
    run_dir=cfg.run_dir,
    profile=cfg.profile,
    dataset=cfg.dataset,
)

# %% [markdown]
# ## What to take away
#
# * Image-level labels localise the new classes only as well as the classifier has learned them:
#   CAMs find the discriminative parts, PCM spreads them, the background score decides the extent.
#   SEAM itself starts from ImageNet weights; without them (the demo, smoke and cpu profiles) it
#   starts from the step-0 model's ResNet (`seam_init`), so it sees only what step 0 learned.
# * The old model supplies what the image-level labels cannot: where the old classes are (fusion).
# * The step's method still matters as it does with masks: MiB-S against FT-S below.
#
# What this run showed, written from its records and findings:

# %%
findings.takeaways(found)
