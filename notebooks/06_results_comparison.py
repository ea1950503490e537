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
# # 06 · Results comparison
#
# Every notebook writes one JSON **record** per evaluation into its run folder's `results/`
# (method, task, setting, step, per-class IoU, mIoU old/new/all, timings, the checkpoint). This
# notebook reads those records — never the other notebooks — and puts every method of every
# notebook that has run side by side. Records of later notebooks (exemplars, DeepInversion,
# weak supervision) join the same tables without any change here.

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
profile: str = "demo"  # demo | smoke | cpu | colab | paper (only used for the device choice)
smoke: bool = False  # True forces the smoke profile
dataset: str = ""  # show only this dataset (empty: every dataset found)
data_root: str = ""  # folder holding the dataset (the viewer reads validation images from it)
run_dir: str = ""  # one run folder to read (the suite passes its own)
run_dirs: str = ""  # comma list of run folders (empty: run_dir, else every run under $INCSEG_HOME/runs)
gallery_images: int = 3  # validation images in the galleries and the viewer

# %%
from incseg_lib import results, viz
from incseg_lib.config import RunConfig, parse_list
from incseg_lib.env import runs_root

cfg = RunConfig.from_profile("smoke" if smoke else profile)
folders = parse_list(run_dirs) or ([run_dir] if run_dir else results.find_runs(runs_root()))
records = [r for r in results.load(folders) if not dataset or r.dataset == dataset]
print(f"{len(records)} records from {len(folders)} run folder(s):", ", ".join(map(str, folders)))

# %% [markdown]
# ## Where the numbers come from
#
# Each run folder's software and machine, as its records say: two runs compare cleanly only when
# these agree (another PyTorch, CPU or thread count can move a number by more than a decimal).

# %%
results.provenance_table(records)

# %% [markdown]
# ## Everything recorded
#
# The newest record of each (dataset, task, setting, method, step); a notebook re-run supersedes
# its older records.

# %%
results.shown(results.records_table(results.latest(records)), index=False)

# %% [markdown]
# ## Incremental methods: old / new / all after the last step
#
# Rows are methods (Joint, the offline upper bound, last; a replay run once per memory size, as
# `SMiB (5/class)`); columns are dataset, task, setting and the mIoU of the step-0 classes
# (**old**), of the classes added later (**new**) and of **all**. An empty cell is a method that did
# not run on that task. The bars draw the same table, one panel per task with only the methods
# that ran on it.

# %%
table = results.incremental_table(records)
results.shown(table)

# %%
if not table.empty:
    viz.show(viz.comparison_bars(table), viz.comparison_reading(table))

# %% [markdown]
# ## Forgetting per class
#
# IoU after step 0 minus IoU after the last step, for every old class, one row per method (and
# memory size): points, red = forgotten, blue = improved. The colours stop at ±50 points (the colour
# bar says so when a cell goes beyond); the numbers in the cells are the exact values.

# %%
groups = sorted({(r.dataset, r.task, r.setting) for r in results.final_steps(records)})
for ds, task, setting in groups:
    forgot = results.forgetting(records, ds, task, setting)
    if not forgot.empty:
        fig = viz.iou_heatmap(
            forgot,
            title=f"{ds} {task} {setting}: forgetting per old class",
            cmap="RdBu_r",
            vmin=-50,
            vmax=50,
            label="IoU after step 0 − IoU after the last step (points)",
            xlabel="class learned at step 0",
        )
        viz.show(fig, viz.heatmap_reading(forgot, what="forgetting"))

# %% [markdown]
# ## Every method after the last step, on the same images
#
# One gallery per task: the same validation images, their ground truth, then every model after the
# task's last step (Joint included), labelled with its mIoU on all classes. A class a model has
# forgotten turns black (background) or takes a newer class's colour. The line under each gallery
# counts, on the same pixels, how much of step 0's classes each model still labels right.

# %% tags=["report"]
galleries = viz.method_galleries(records, images=range(gallery_images), data_root=data_root, device=cfg.torch_device())

# %% [markdown]
# ## Offline runs (notebook 01)

# %%
offline = [r for r in results.latest(records) if r.setting == "offline"]
results.shown(results.records_table(offline), index=False) if offline else print("no offline record")

# %% [markdown]
# ## Look at the predictions
#
# In Jupyter with ipywidgets, five drop-downs pick a dataset, task, setting, method (a replay run
# once per memory size, as `SMiB (5/class)`) and step; the viewer loads that checkpoint and shows
# validation images with their ground truth and prediction. The method drop-down's first choice,
# *every method*, shows every model of that task and step on the same images, as the galleries above. Without ipywidgets it draws the newest
# model statically; in a headless run (the suite's) it draws nothing: the galleries above compare
# the methods.

# %%
viewer = viz.results_viewer(records, images=range(gallery_images), device=cfg.torch_device(), data_root=data_root)

# %% [markdown]
# ## What to take away
#
# Read from the table above (every record of the runs read here; Joint is the ceiling, not a
# candidate):

# %%
from IPython.display import Markdown

Markdown("\n".join(f"* {line}" for line in results.comparison_lines(table)) or "No incremental record to compare.")

# %% [markdown]
# ## Exercises
#
# **1 · Old, new and all.** Every table of the suite reports three means of the per-class IoU after
# the last step: over the old classes (background included), the new ones, and all. A class with no
# IoU (NaN: absent from labels and prediction) is left out of each mean.

# %% tags=["exercise"]
import numpy as np


def old_new_all(iou: np.ndarray, old: list[int], new: list[int]) -> tuple[float, float, float]:
    """iou (C,) in [0, 1] with NaN; old, new: class indices. Returns (mIoU old, mIoU new, mIoU all)."""

    # BEGIN SOLUTION
    def mean(ids):
        v = iou[ids]
        v = v[~np.isnan(v)]
        return float(v.mean()) if v.size else float("nan")

    return mean(list(old)), mean(list(new)), mean(list(range(len(iou))))
    # END SOLUTION


# %% tags=["check"]
from incseg_lib.exercises import check

check("old_new_all", old_new_all)

# %% [markdown]
# **2 · Forgetting.** The heatmap above shows, for each class learned at step 0, its IoU after step 0
# minus its IoU after the last step, in points (100 x); NaN where either IoU is missing (`None` or
# NaN). Positive is forgotten, negative improved.

# %% tags=["exercise"]
import numpy as np


def forgetting(before: dict, after: dict) -> dict:
    """before, after: class name -> IoU in [0, 1] (or None / NaN). Returns class name -> points, for every class of `before`."""
    # BEGIN SOLUTION
    out = {}
    for c, b in before.items():
        a = after.get(c)
        ok = b is not None and a is not None and not np.isnan(b) and not np.isnan(a)
        out[c] = 100 * (b - a) if ok else float("nan")
    return out
    # END SOLUTION


# %% tags=["check"]
from incseg_lib.exercises import check

check("forgetting", forgetting)
