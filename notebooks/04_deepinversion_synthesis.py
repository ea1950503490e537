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
# # 04 · DeepInversion: dreaming the old classes instead of storing them
#
# Notebook 03 replayed a few *stored* images of the old classes. Often no old image may be kept
# (privacy, licences, storage). But the old model is kept — and a trained network remembers a lot
# about its data. **Model inversion** asks it: *which image would you call a cat?* Starting from
# noise, we optimise the pixels of a batch (the network stays frozen) until the old model sees the
# chosen old classes in it, then replay those synthetic images at the next step exactly as
# notebook 03 replays exemplars.
#
# DeepInversion (Yin et al., CVPR 2020) adds terms meant to make the images look like data, not
# adversarial noise (whether they do is checked below, by a second network):
#
# | term | what it asks | why |
# |---|---|---|
# | class (LSE-pooled logits, cross-entropy) | the old model sees the target class somewhere | the image shows the class |
# | **BN statistics** | on every BatchNorm layer, the batch's feature mean and variance match the running ones | the running statistics summarise the training images' appearance layer by layer: colours, textures, parts |
# | total variation, L2 | neighbouring pixels alike, no extreme values | natural-image priors |
# | jitter + flips | a random shift and flip at every iteration | robust features, not pixel tricks |
# | ADI (optional) | the current model disagrees with the old one on the image | images where the student still has to learn |
#
# A segmentation model gives a map of logits, not one score per class: the class term pools each
# class's map with **log-sum-exp** (between the mean and the max; a fixed temperature) and only
# old *foreground* classes are targets. Pixel labels for replay are the old model's own
# predictions on the finished images (**pseudo-labels**; unsure pixels ignored).
#
# The seed course project tried this and made replay *worse* than plain MiB (15-5: 36 all vs 60).
# Its flaws, and what `incseg_lib.inversion` does instead:
#
# | seed flaw | here |
# |---|---|
# | synthetic images not normalised like training inputs | the optimised tensor *is* a normalised input, clamped to the valid range, stored de-normalised as PNG and normalised again by the training transforms |
# | pooling temperature redrawn every iteration | one fixed LSE temperature (`lse_r`) |
# | background drawn as a target | only old foreground classes are targets |
# | distillation fed integer labels | replay uses MiB's unbiased distillation on the old model's logits, as for exemplars |
# | BN hooks never removed (they leak into later forward passes) | a context manager removes them, also on error (tested) |
# | ~10 hours per class on a T4 (20k iterations) | NVlabs' multi-resolution schedule (half resolution first), scaled per profile |

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
run_dir: str = ""  # where results go (empty: $INCSEG_HOME/runs/04_deepinversion_synthesis, docs/teaching.md)
tasks: str = ""  # comma list, e.g. 15-5 (empty: 15-5, or 8-3 on CamVid)
settings: str = ""  # comma list of overlapped, disjoint (empty: overlapped)
methods: str = ""  # methods replayed with synthetic images, e.g. mib,ft (empty: mib,ft)
aggregations: str = ""  # class targets: lse, scale-aware (the first for every method, the rest MiB); empty: both
compare_smib: bool = True  # also SMiB with as many real exemplars per class as synthetic images
images_per_class: int = 0  # synthetic images per old class (0: the profile's)
iterations_low: int = -1  # iterations at half resolution (-1: the profile's; NVlabs 2000)
iterations_full: int = 0  # iterations at full resolution (0: the profile's; NVlabs 1000)
resolution: int = 0  # side of the synthetic images in pixels (0: the profile's)
r_feature: float = -1.0  # weight of the BN-statistics term (-1: NVlabs' 0.05)
tv_l2: float = -1.0  # weight of total variation (-1: NVlabs' 1e-4)
l2: float = -1.0  # weight of the images' L2 norm (-1: NVlabs' 1e-5)
adi: float = 0.0  # Adaptive DeepInversion's competition weight (0: off; NVlabs uses 0.2)
share: float = 0.5  # fraction of every batch replayed from the synthetic memory
confidence: float = 0.5  # pseudo-labels keep pixels whose old-model probability exceeds this
replay_labels: str = "pseudo"  # pseudo (pseudo-labels as targets) or none (distillation only)
transfer_check: bool = True  # a second step-0 model (seed + 1) classifies the synthetic images (NVlabs' check)
bn_ablation: bool = True  # also synthesise 1 image per old class without the BN-statistics term, for the check
epochs: int = 0  # epochs of step 0 (0: as the profile says)
epochs_next: int = 0  # epochs of each later step (0: as the profile says)
pretrained: str = ""  # imagenet, none, or a state-dict path (empty: as the profile says)
seed: int = 0  # weights, data order, augmentation and synthesis noise

# %%
from incseg_lib import results, viz
from incseg_lib.config import inversion_config, parse_list
from incseg_lib.data import dataset_info
from incseg_lib.experiment import inversion_plan, open_notebook, run_inversion_study

cfg = open_notebook("04_deepinversion_synthesis", globals())  # the parameters above, the run folder, the seed
chosen = dict(
    images_per_class=images_per_class or None,
    iterations_low=None if iterations_low < 0 else iterations_low,
    iterations_full=iterations_full or None,
    resolution=resolution or None,
    r_feature=None if r_feature < 0 else r_feature,
    tv_l2=None if tv_l2 < 0 else tv_l2,
    l2=None if l2 < 0 else l2,
    adi=adi,
    share=share,
    confidence=confidence,
    replay_labels=replay_labels,
    seed=seed,
)
inversion = inversion_config(cfg.profile, **chosen)
plan = inversion_plan(cfg, parse_list(tasks), parse_list(settings), parse_list(methods), parse_list(aggregations))
print("plan:", plan)
print("synthesis:", inversion)

# %% [markdown]
# ## Synthesis and training
#
# Step 0 is the shared model of notebooks 02 and 03 (reused when it exists), and so are the
# references without memory (MiB, FT). The synthetic memory is made once from the step-0 model (a progress bar counts
# iterations; a killed run resumes at the first unfinished batch) and shared by every method
# replaying it. SMiB gets as many *real* exemplars per class as there are synthetic images per class.

# %%
records, memories = run_inversion_study(cfg, plan, inversion, smib=compare_smib, notebook="04_deepinversion_synthesis")
memory = memories[(plan["tasks"][0], plan["settings"][0])]
print(memory.summary())

# %% [markdown]
# ## Does anyone but the old model see the classes? The transfer check
#
# A synthetic image is made until *the old model* sees its class: that alone proves little, since
# an image can fool the network it was optimised against (an adversarial example) without showing
# the class to anyone else. DeepInversion's authors check their images with a **second network,
# trained independently** on the same data (Yin et al., Sec. 4; NVlabs/DeepInversion's
# `--verifier`): if it recognises the classes too, the images carry features of the data, not
# tricks of one network. Here the second network is the same step-0 model trained with another seed
# (`seed + 1`: other initial weights, data order and augmentation), through the same checkpoints
# as every step, so it is trained once and reused. An image counts as recognised when its target
# class is the majority foreground class of the model's prediction and covers at least 1% of the
# image. The same check runs on the old model itself (it is not always sure either) and, with
# `bn_ablation`, on images made *without* the BN-statistics term.

# %%
from incseg_lib.experiment import (
    describe_transfer,
    independent_step0,
    synthesis_label,
    synthesis_variant,
    synthetic_examples,
    transfer_checks,
    transfer_table,
)

first_cfg = cfg.replace(task=plan["tasks"][0], setting=plan["settings"][0])
checks = None
if transfer_check:
    checker = independent_step0(first_cfg, notebook="04_deepinversion_synthesis")
    print(
        f"independent step-0 model (seed {checker['seed']}): mIoU {checker['miou']:.1f} on the validation images, "
        f"{'trained' if checker['trained_now'] else 'reused'} and evaluated in {checker['seconds']:.0f} s"
    )
    here = (first_cfg.task, first_cfg.setting)
    checked = {synthesis_label(key[2]): m for key, m in memories.items() if key[:2] == here and len(key) == 3}
    if bn_ablation:  # one image per class, LSE, the BN-statistics term off (made once, then reused)
        no_bn = dict(r_feature=0.0, images_per_class=1, aggregation="lse")
        checked[synthesis_label("lse", bn_term=False)] = synthesis_variant(first_cfg, inversion, **no_bn)
    checks = transfer_checks(first_cfg, checked, independent=checker)
    print(describe_transfer(checks))
    fig = viz.transfer_bars(checks)

# %%
transfer_table(checks) if checks else "transfer check off"

# %% [markdown]
# ## What the old model dreams
#
# One row per old class, the class named on the left: a real training image of it (the object
# outlined), the synthetic image asked to show it, the old model's pseudo-label of that image (what
# replay trains on; cream pixels are too unsure to be used) and, with the transfer check, what the
# independent model predicts, with its verdict. The colours of the label panels are in the legend.

# %%
examples = synthetic_examples(first_cfg, memory, checks)
title = f"{plan['tasks'][0]}: synthetic images from the step-0 model beside real ones"
viz.show(viz.synthetic_gallery(examples, title=title), viz.synthetic_reading(examples))

# %% [markdown]
# ## From noise to an image
#
# The first batch at several iterations (rows), each column titled with the class its image is
# asked to show: the half-resolution phase starts from noise, the full-resolution phase starts from
# its upsampled result. Below, what the optimiser minimises: each loss term times its weight (left,
# log scale: which term dominates the total?) and, on its own axis, the old model's probability of
# the target class (right); dotted line: the switch to full resolution.

# %%
info = dataset_info(cfg.dataset)  # class names and colours, without opening the data
fig = viz.inversion_emergence(memory, info.class_names)
viz.show(viz.inversion_losses(memory), viz.inversion_reading(memory))

# %% [markdown]
# ## How big should a synthetic object be?
#
# A segmentation memory replays *pixels*: a synthetic image teaches the new model where a class is
# and where it is not. Log-sum-exp pooling asks only that the class appear somewhere; nothing says
# how much of the image it should cover, so the optimiser may make it a few pixels or the whole
# frame. Real objects have sizes: shapes cover a few percent of their image, VOC's animals often
# half of it. SegInversion (Huang et al., "Half-Real Half-Fake Distillation for Class-Incremental
# Semantic Segmentation", arXiv 2104.00875) adds a **Scale-Aware Aggregation** that controls "the
# number of pixels of synthetic objects". Here (`aggregation="scale-aware"`) each synthetic image gets
# a target fraction `s` of its pixels: its class score is the mean of the class's `k = ceil(s·H·W)`
# highest pixel logits, so fewer than `k` pixels cannot score well; a second term asks those `k`
# pixels to *be* the class for the old model (the top-k mean only beats the other objects, and a
# pixel can still be background), and a third pushes the pixels outside them towards the old model's
# other outputs, so the object does not flood the image. The fractions are the quartiles of the
# real objects' sizes (small, medium, large), so the memory covers the sizes the data has.
# Whether matching the sizes makes replay keep more is a question for the numbers: this run's
# findings at the end say it for this run, and [docs/results.md](https://github.com/incseg/incseg/blob/main/docs/results.md#notebook-04-deepinversion)
# for three demo seeds, CamVid and VOC.

# %%
from IPython.display import display

from incseg_lib.experiment import object_size_samples, object_size_table, synthesis_at_scales

sizes = object_size_samples(first_cfg, memories)
viz.show(viz.object_size_histogram(sizes), viz.size_reading(sizes))
display(results.shown(object_size_table(sizes)))
example_class = memory.targets[0][0]
scales = synthesis_at_scales(first_cfg, inversion, example_class)
viz.show(viz.scale_examples(scales), viz.scale_reading(scales))

# %% [markdown]
# ## The table
#
# mIoU (%) after the last step: FT and MiB alone, both replaying synthetic images, and SMiB with
# the same number of real images. Notebook 06 collects these records with the others. The lines
# under the table say, from its numbers, whether the synthetic images kept as much of the old
# classes as the real ones.

# %%
table = results.incremental_table(records)
display(results.shown(table))
print("\n".join(results.synthetic_vs_real_lines(table)) or "No MiB+DI and SMiB run on the same task to compare.")

# %% [markdown]
# ## Exercises
#
# **1 · The feature-statistics term (Yin et al., Eq. 4).** A synthetic batch should reproduce what
# every BatchNorm layer of the old model saw in training: for a layer with input $x$ of shape
# (B, C, H, W), $R = \lVert \mu(x) - \mu_{BN} \rVert_2 + \lVert \sigma^2(x) - \sigma^2_{BN} \rVert_2$, with
# $\mu, \sigma^2$ the per-channel mean and (biased) variance over batch and pixels, and $\mu_{BN}$,
# $\sigma^2_{BN}$ the layer's running statistics. DeepInversion sums it over all BN layers.

# %% tags=["exercise"]
import torch


def bn_feature_loss(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) the input of one BatchNorm layer; running_mean, running_var (C,). Returns a scalar."""
    # BEGIN SOLUTION
    mean = x.mean((0, 2, 3))
    var = x.transpose(0, 1).reshape(x.shape[1], -1).var(1, unbiased=False)
    return torch.linalg.vector_norm(mean - running_mean) + torch.linalg.vector_norm(var - running_var)
    # END SOLUTION


# %% tags=["check"]
from incseg_lib.exercises import check

check("bn_feature_loss", bn_feature_loss)

# %% [markdown]
# **2 · The image priors.** Total variation keeps synthetic images smooth: take the differences of
# neighbouring pixels along x, y and both diagonals; $TV_1$ is the sum of the four differences' mean
# absolute values, $TV_2$ the sum of their L2 norms (NVlabs `get_image_prior_losses`).

# %% tags=["exercise"]
import torch


def total_variation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, C, H, W). Returns (TV_1, TV_2)."""
    # BEGIN SOLUTION
    d = [
        x[:, :, :, :-1] - x[:, :, :, 1:],
        x[:, :, :-1, :] - x[:, :, 1:, :],
        x[:, :, 1:, :-1] - x[:, :, :-1, 1:],
        x[:, :, :-1, :-1] - x[:, :, 1:, 1:],
    ]
    return sum(di.abs().mean() for di in d), sum(torch.linalg.vector_norm(di) for di in d)
    # END SOLUTION


# %% tags=["check"]
from incseg_lib.exercises import check

check("total_variation", total_variation)

# %% [markdown]
# ## Expected findings
#
# Replaying synthetic images of the old classes should keep more of them than MiB alone, and
# rescue FT from forgetting everything. Real images of the same number are the bar to reach. On the
# demo, at the official protocol, MiB keeps all of step 0's old classes on 15-5, so neither real
# nor synthetic images have anything to add to it: its calibration finds MiB+DI against MiB inside
# the noise and the scale-aware memory below MiB in every seed (docs/results.md); FT, which
# forgets everything, is where replay shows.

# %%
from incseg_lib import findings

expected = findings.inversion_findings(plan)
found = findings.check(
    expected,
    records,
    notebook="04_deepinversion_synthesis",
    run_dir=cfg.run_dir,
    profile=cfg.profile,
    dataset=cfg.dataset,
)

# %% [markdown]
# ## What to take away
#
# * The old model alone can be turned into a replay memory: no image is stored, only the weights;
#   the memory costs synthesis time instead of storage (the time is in the records).
# * DeepInversion's authors argue (their Table 1 and Figure 3) that the BN-statistics term is what
#   makes the images transfer to another network. The transfer check above repeats that ablation
#   on this run (`bn_ablation`): read its table for whether it holds here. On the shapes, where
#   colour alone names most classes, images made without the term can be recognised as often or
#   more, because colour blobs are what a from-scratch model keys on.
# * Whether synthetic images are a weaker memory than the same number of real ones: compare this
#   notebook's old-class mIoU with SMiB's in notebook 03 and in notebook 06.
#
# What this run showed, written from its records and findings:

# %%
findings.takeaways(found)
