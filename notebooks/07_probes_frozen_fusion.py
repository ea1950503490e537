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
# # 07 · Where forgetting lives: linear probes, frozen features (DFT\*) and weight fusion (EWF)
#
# Notebook 02 measured forgetting at the model's output: FT's old-class mIoU collapses. But a
# segmentation model is a feature extractor and a classifier on top. Which of the two forgot? A
# **linear probe** answers it: freeze the model, fit a fresh 1x1 classifier on the features its
# own classifier reads, with the full labels of every class seen so far, and measure it. The probe
# is an oracle (the learner never has those labels); it says what the features still *know*.
# "Revisiting Continual Semantic Segmentation with Pre-trained Vision Models" (Yu et al., 2025)
# probed a plainly fine-tuned DeepLabV3 on VOC 15-1: the probe fell from 71 to 57 mIoU while the
# model itself collapsed from 80 to 4. Much of what FT forgets is its classifier drifting.
#
# Two cheap methods follow from that reading:
# * **DFT\*** fine-tunes with the backbone frozen after step 0 (BatchNorm statistics included),
#   the old classifiers frozen, and the classifiers of every future step allocated at step 0,
#   where they learn as "not this class yet". Only the new heads train; no old model is needed.
#   A course knows its task (15-1 has six steps) in advance, which pre-allocation needs; `dft-nopre`
#   grows a head per step instead.
# * **EWF** (Endpoints Weight Fusion, CVPR 2023) trains a step as its base method does (MiB here,
#   old heads frozen), then averages the step's end with its start, `(1 - w) old + w new`, with
#   `w = sqrt(N_new / (N_new + N_old))`: a stability-plasticity slider on top of any method.

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
run_dir: str = ""  # where results go (empty: $INCSEG_HOME/runs/07_probes_frozen_fusion, docs/teaching.md)
tasks: str = ""  # comma list, e.g. 15-1,10-1 (empty: the plan of the profile)
settings: str = ""  # comma list of overlapped, disjoint (empty: the plan of the profile)
methods: str = ""  # methods trained, e.g. ft,mib,dft,mib+ewf (empty: the plan of the profile)
probe: str = ""  # runs probed after every step, e.g. ft,mib (empty: the plan of the profile)
sweep: str = ""  # task whose last step EWF's weight slider re-fuses, e.g. 15-5 (empty: the profile's; none: no sweep)
epochs: int = 0  # epochs of step 0 (0: as the profile says)
epochs_next: int = 0  # epochs of each later step (0: as the profile says)
pretrained: str = ""  # imagenet, none, or a state-dict path (empty: as the profile says)
seed: int = 0  # weights, data order, augmentation and the probes' fitting

# %%
from incseg_lib import results, viz
from incseg_lib.config import parse_list
from incseg_lib.experiment import TrainingLog, open_notebook, probing_plan, run_probing_study

cfg = open_notebook("07_probes_frozen_fusion", globals())  # the parameters above, the run folder, the seed
plan = probing_plan(cfg, parse_list(tasks), parse_list(settings), parse_list(methods), parse_list(probe), sweep)
print("plan:", plan)

# %% [markdown]
# ## Training
#
# FT and MiB are notebook 02's runs (reused when they exist). DFT\* trains its own step 0, with
# the heads of every later step already in place, then freezes everything but the new heads.
# MiB+EWF is MiB with its old heads frozen and each step's end fused with its start. After every
# step of the probed runs, a probe is fitted on the frozen features and evaluated; probes are kept
# beside the checkpoints they probe, so a second run fits nothing.

# %%
log = TrainingLog(cfg, "07_probes_frozen_fusion")  # from here on, the lines of every epoch go to a file, not here
records = run_probing_study(cfg, plan, notebook="07_probes_frozen_fusion")

# %% [markdown]
# ## One probe, by hand
#
# A probe reads what the model's own classifier reads: the feature map entering its last 1x1
# convolution. `LinearProbe` hooks that input, keeps the model frozen and in eval mode, and puts a
# fresh 1x1 convolution with one output per seen class on top. Here is FT's model after the last
# step of the first task, one validation image through it:

# %%
from incseg_lib.data.transforms import eval_transforms
from incseg_lib.experiment import base_datasets, load_step_model
from incseg_lib.models.probe import LinearProbe
from incseg_lib.tasks import IncrementalSplit

task_cfg = cfg.replace(task=plan["tasks"][0], setting=plan["settings"][0])
last = IncrementalSplit(task_cfg.dataset, task_cfg.task, 0, task_cfg.setting).num_steps - 1
split = IncrementalSplit(task_cfg.dataset, task_cfg.task, last, task_cfg.setting)
model = load_step_model(task_cfg, last, plan["probe"][0])
probe_by_hand = LinearProbe(model, split.num_seen)
image, _ = base_datasets(task_cfg, split)[1].with_transforms(eval_transforms())[0]  # normalised, full size
features = probe_by_hand.features(image[None])
trainable = sum(p.numel() for p in probe_by_hand.parameters() if p.requires_grad)
print(f"image {tuple(image.shape)} -> features {tuple(features.shape)} -> probe logits", end=" ")
print(f"{tuple(probe_by_hand(image[None])['out'].shape)}; {trainable} trainable parameters (the 1x1 convolution)")

# %% [markdown]
# ## What the features still know
#
# One figure per task: the old-class mIoU of each probed run after every step (solid) and of the
# probe of its features (dashed, same colour), on one y axis from 0 to 100. Where the dashed line
# stays high while the solid one falls, the model's features still separate the old classes and
# its classifier is what forgot.

# %%
for task in plan["tasks"]:
    for setting in plan["settings"]:
        frame = results.probe_frame(records, cfg.dataset, task, setting, plan["probe"])
        if frame.empty:
            print(f"{task} {setting}: no probed run")
            continue
        title = f"{task} {setting}: old classes, each model against a probe of its features"
        viz.show(viz.probe_curves(frame, title=title), viz.probe_reading(frame))

# %% [markdown]
# ## DFT\*: what stays frozen
#
# From step 1 on, DFT\* trains only the classifier heads of the current and future steps; the
# backbone keeps step 0's weights and BatchNorm statistics.
#
# It trains at its scripts' rate, 1/40 of step 0's (0.0005 after 0.02 on VOC, 30 epochs of
# hundreds of images per step). A one-class step of the demo has a few dozen images, so its head
# gets a few dozen small updates. In the demo's calibration (docs/results.md, "Notebook 07") DFT\*
# keeps all of step 0's old classes on 15-1 and learns almost none of the new ones; at step 0's own
# rate it learns them, and without pre-allocation more still: a head trained as "not this class"
# since step 0 starts far below a fresh one (`python benchmarks/dft_rate.py`; `-p protocol shared
# -p lr_next 0.05` trains this notebook at step 0's rate). The share of parameters it trains at
# step 1, and what this run's DFT\* kept and learnt:

# %%
from incseg_lib.methods.dft import freeze_all_but_heads_from

dft_model = load_step_model(task_cfg, 0, "step0-prealloc") if "dft" in plan["methods"] else model
freeze_all_but_heads_from(dft_model, 1)
train_n = sum(p.numel() for p in dft_model.parameters() if p.requires_grad)
total_n = sum(p.numel() for p in dft_model.parameters())
print(f"DFT* trains {train_n} of {total_n} parameters ({100 * train_n / total_n:.2f} %) at step 1")
for r in results.final_steps(records):
    if r.method in ("dft", "dft-nopre"):
        shown = results.display_name(r.method)
        print(f"{r.task} {r.setting}: {shown} old {100 * r.miou_old:.1f}, new {100 * r.miou_new:.1f}")

# %% [markdown]
# ## The table
#
# mIoU after the last step of each task (old / new / all, and hIoU, the harmonic mean of old and
# new), the probes beside the runs they probe (the slider's re-fused models are in its figure below).

# %%
results.shown(results.incremental_table([r for r in records if "ewf_w" not in r]))

# %% [markdown]
# ## EWF's slider
#
# EWF fuses the end of a step with its start, `(1 - w) old + w new`, at `w = sqrt(N_new / (N_new +
# N_old))`. The same fused tensors lie on the line from the old model to the step's end, so other
# weights need no training: here the last step of the sweep task re-fused at `w` from 0 (the old
# model with the new heads) to 1 (the step's end, no fusion), EWF's own weight starred.

# %%
if plan["sweep"]:
    frame = results.fusion_frame(records, cfg.dataset, plan["sweep"], plan["settings"][0])
    title = f"{plan['sweep']} {plan['settings'][0]}: MiB+EWF, old against new classes per weight w"
    viz.show(viz.fusion_curve(frame, title=title), viz.fusion_reading(frame))
else:
    print("no sweep in this plan")

# %% [markdown]
# ## Exercises
#
# **1 · A probe by hand.** A 1x1 convolution is a matrix product over the channel axis:
# `logits[b, c, y, x] = sum_d W[c, d] f[b, d, y, x] + bias[c]`, then upsampled bilinearly
# (`align_corners=False`) to the image size.

# %% tags=["exercise"]
import torch
import torch.nn.functional as F


def probe_logits(features, weight, bias, size):
    """features (B, D, h, w), weight (C, D), bias (C,), size (H, W); returns logits (B, C, H, W)."""
    # BEGIN SOLUTION
    logits = torch.einsum("bdhw,cd->bchw", features, weight) + bias[None, :, None, None]
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    # END SOLUTION


# %% tags=["check"]
from incseg_lib.exercises import check

check("probe_logits", probe_logits)

# %% [markdown]
# **2 · EWF's fusion.** With `N_new` classes added and `N_old` before the step (background
# included), `w = sqrt(N_new / (N_new + N_old))`; every floating tensor the old model has becomes
# `(1 - w) old + w new`, everything else (the new heads, integer counters) keeps the new value.


# %% tags=["exercise"]
def ewf_fuse(old_state: dict, new_state: dict, num_new: int, num_old: int) -> dict:
    """Two state dicts (name -> tensor); returns the fused state dict with every key of new_state."""
    # BEGIN SOLUTION
    import math

    w = math.sqrt(num_new / (num_new + num_old))
    fused = {}
    for name, new in new_state.items():
        old = old_state.get(name)
        same = old is not None and new.is_floating_point() and old.shape == new.shape
        fused[name] = (1 - w) * old + w * new if same else new
    return fused
    # END SOLUTION


# %% tags=["check"]
from incseg_lib.exercises import check

check("ewf_fuse", ewf_fuse)

# %% [markdown]
# ## Expected findings
#
# From the papers: the probe of FT's features keeps much more of the old classes than FT itself
# (RevisitingCSS: on VOC 15-1 the probe falls from 71 to 57 while FT falls from 80 to 4); DFT\*
# keeps more of them than FT and than MiB; EWF on MiB keeps more of them than MiB and learns less
# of the new ones. Each is checked against this run and the calibration (docs/results.md).

# %%
from incseg_lib import findings

expected = findings.probing_findings(plan)
found = findings.check(
    expected,
    records,
    notebook="07_probes_frozen_fusion",
    run_dir=cfg.run_dir,
    profile=cfg.profile,
    dataset=cfg.dataset,
)

# %% [markdown]
# ## What to take away
#
# * Forgetting is not one thing: a model can lose the old classes in its classifier while its
#   features still separate them. A linear probe (an oracle with every label) tells the two apart.
# * Freezing what already works (DFT\*) and fusing weights (EWF) are cheap: no old model at
#   training time for DFT\*, one averaging per step for EWF.
#
# What this run showed, written from its records and findings:

# %%
findings.takeaways(found)
