"""What each notebook trains: its plan (the profile's, or the notebook's parameters) and one loop over it.

A plan is ``{"tasks", "settings", "methods"}`` (notebook 03 adds memory ``sizes``) taken from the
profile (:class:`~incseg_lib.config.RunConfig`'s ``incremental``, ``replay``, ``inversion``,
``weak``) where a notebook parameter is empty. Every study checks that each step of each task has
training images before the first step trains (:func:`check_steps`), then runs
:func:`for_each_task`, one shared loop over tasks x settings whose body is the study's own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

from ..config import RunConfig, seam_config, step0_name, task_methods
from ..exemplars import ExemplarMemory, ReplayConfig
from ..inversion import AGGREGATIONS, InversionConfig
from ..log import get_logger
from ..methods import get_method, is_method, method_names
from ..results import Record
from ..seam import SeamConfig
from ..tasks import SETTINGS, IncrementalSplit, one_class_steps, task_names, task_steps
from . import keys
from .joint import joint_step, weak_joint_step
from .sources import Replay, Synthetic, Weak, find_pseudo_labels, synthetic_memory
from .step import StepOutcome, base_datasets, load_step_model, train_step

log = get_logger(__name__)


# ---------------------------------------------------------------------- plans
def study_plan(cfg: RunConfig, tasks=None, settings=None, methods=None) -> dict:
    """Notebook 02's plan: tasks x settings x methods, the profile's where an argument is empty; a
    profile's ``task_methods`` name the methods of the tasks they list instead (the demo runs FT,
    MiB, PLOP and SDR on 10-1), unless ``methods`` is given.

    Raises:
        ValueError: an unknown task, setting or method (names it and the valid ones).
    """
    plan = cfg.incremental or {}
    tasks = list(tasks or plan.get("tasks") or ["15-5"])
    settings = list(settings or plan.get("settings") or ["overlapped"])
    per_task = {} if methods else {t: list(ms) for t, ms in (plan.get("task_methods") or {}).items() if t in tasks}
    methods = list(methods or plan.get("methods") or ["ft", "mib"])
    for t in tasks:
        if t not in task_names(cfg.dataset) or t in ("offline", "joint"):
            raise ValueError(
                f"task {t!r} is not an incremental task of {cfg.dataset}; choose from "
                f"{[n for n in task_names(cfg.dataset) if n not in ('offline', 'joint')]}"
            )
    for s in settings:
        if s not in SETTINGS:
            raise ValueError(f"setting {s!r}; choose from {SETTINGS}")
    bad = [m for m in methods + [m for ms in per_task.values() for m in ms] if not is_method(m)]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {method_names()} (Joint is added by joint=True)")
    return {
        "tasks": tasks,
        "settings": settings,
        "methods": methods,
        **({"task_methods": per_task} if per_task else {}),
    }


def step_figure_task(plan: dict, methods=("ft", "mib")) -> tuple[str, list[str]]:
    """Where notebook 02 shows the prediction after each step: the shortest one-class-step task of
    ``plan`` (one class per step shows forgetting most; the shortest fits every step on the page),
    else its shortest task; and the ``methods`` it runs there (else its first two methods)."""
    singles = [t for t in plan["tasks"] if one_class_steps(t)] or plan["tasks"]
    task = min(singles, key=task_steps)
    runs = task_methods(plan, task)
    return task, [m for m in methods if m in runs] or runs[:2]


def feature_task(plan: dict, methods=("plop", "sdr")) -> tuple[str | None, list[str]]:
    """The first task of ``plan`` that runs any of ``methods`` (the feature-space methods whose maps
    notebook 02 draws) and which of them it runs; ``(None, [])`` when none does."""
    for task in plan["tasks"]:
        found = [m for m in methods if m in task_methods(plan, task)]
        if found:
            return task, found
    return None, []


def replay_plan(cfg: RunConfig, tasks=None, settings=None, sizes=None, methods=None) -> dict:
    """Notebook 03's plan: tasks x settings x memory sizes x methods (the profile's where empty).

    ``size_effect`` (from the profile's ``replay``, default True) says whether the expected
    findings claim that a larger memory keeps more (:func:`~incseg_lib.findings.replay_findings`).

    Raises:
        ValueError: an unknown task/setting/method or a non-positive size.
    """
    base = study_plan(
        cfg.replace(incremental=cfg.replay or cfg.incremental),
        tasks,
        settings,
        methods or (cfg.replay or {}).get("methods") or ["ft", "mib"],
    )
    sizes = [int(s) for s in (sizes or (cfg.replay or {}).get("sizes") or [1, 5])]
    if any(s <= 0 for s in sizes):
        raise ValueError(f"memory sizes must be positive numbers of exemplars, got {sizes}")
    return {**base, "sizes": sizes, "size_effect": bool((cfg.replay or {}).get("size_effect", True))}


def inversion_plan(cfg: RunConfig, tasks=None, settings=None, methods=None, aggregations=None) -> dict:
    """Notebook 04's plan: tasks x settings x methods replayed with synthetic images (the profile's
    ``inversion`` where empty: recorded ``mib+di``, ``ft+di``), and the class-target aggregations
    (:data:`~incseg_lib.inversion.AGGREGATIONS`): every method with the first, MiB with the others.

    Raises:
        ValueError: an unknown task, setting, method or aggregation.
    """
    plan = study_plan(cfg.replace(incremental=cfg.inversion), tasks, settings, methods)
    aggregations = list(aggregations or cfg.inversion.get("aggregations") or ["lse"])
    bad = [a for a in aggregations if a not in AGGREGATIONS]
    if bad:
        raise ValueError(f"unknown aggregation(s) {bad}; choose from {AGGREGATIONS}")
    return {**plan, "aggregations": aggregations}


def weak_plan(cfg: RunConfig, tasks=None, settings=None, methods=None) -> dict:
    """Notebook 05's plan: tasks x settings x methods trained on SEAM pseudo-labels (the profile's
    ``weak`` where empty: recorded ``ft-s``, ``mib-s``).

    Raises:
        ValueError: an unknown task, setting or method.
    """
    return study_plan(cfg.replace(incremental=cfg.weak), tasks, settings, methods)


def weak_config(cfg: RunConfig, **overrides) -> SeamConfig:
    """The :class:`~incseg_lib.seam.SeamConfig` of ``cfg``'s profile; ``init`` defaults to ``imagenet``
    where the BiSeNet starts from ImageNet weights, else ``step0`` (no ImageNet weights to be had),
    which also takes the BiSeNet's backbone unless one is given."""
    if not overrides.get("init"):
        overrides["init"] = "imagenet" if cfg.pretrained == "imagenet" else "step0"
    if overrides["init"] == "step0" and not overrides.get("backbone"):
        overrides["backbone"] = cfg.backbone  # it copies the BiSeNet's ResNet
    return seam_config(cfg.profile, seed=cfg.seed, **{k: v for k, v in overrides.items() if k != "seed"})


def check_steps(cfg: RunConfig, tasks, settings, progress: bool = False) -> None:
    """Every step of every task and setting has training images, checked before anything trains.

    Raises:
        ValueError: naming each empty step (task, setting, step) and the classes no image holds,
            so a plan does not train steps 0-3 and then stop at step 4.
    """
    train = None
    empty = []
    for task in tasks:
        for setting in settings:
            n = IncrementalSplit(cfg.dataset, task, 0, setting).num_steps
            for step in range(n):
                split = IncrementalSplit(cfg.dataset, task, step, setting)
                if train is None:
                    train, _ = base_datasets(cfg.replace(task=task, setting=setting), split)
                if len(split.train_indices(train, cfg.checkpoint_path / "splits", progress=progress)) == 0:
                    names = [train.info.class_names[c] for c in split.new_classes if c != 0]
                    empty.append(f"{task} {setting} step {step} ({', '.join(names)})")
    if empty:
        raise ValueError(
            f"no training image for {'; '.join(empty)} in {cfg.data_path}: no image holds those "
            "classes"
            + (" without later classes (try the overlapped setting)" if "disjoint" in settings else "")
            + "; choose another task, or use a larger copy of the dataset"
        )


# ---------------------------------------------------------------------- the loop
def for_each_task(cfg: RunConfig, plan: dict, body: Callable[[RunConfig, int], list]) -> list:
    """Check the plan's data (:func:`check_steps`), then ``body(task config, last step)`` for every task x
    setting of ``plan``; the records ``body`` returns, in order."""
    check_steps(cfg, plan["tasks"], plan["settings"])
    records = []
    for task in plan["tasks"]:
        for setting in plan["settings"]:
            last = IncrementalSplit(cfg.dataset, task, 0, setting).num_steps - 1
            records += body(cfg.replace(task=task, setting=setting), last)
    return records


def _steps(cfg: RunConfig, method: str, last: int, **kw) -> list[Record]:
    """Steps 1..``last`` of ``method`` (its step 0 is the shared one); their records."""
    return [train_step(cfg, step=step, method=method, **kw).record for step in range(1, last + 1)]


def run_incremental(
    cfg: RunConfig,
    methods: list[str],
    *,
    notebook: str = "",
    joint: bool = True,
    progress: bool = True,
) -> list[Record]:
    """Every step of ``cfg.task`` / ``cfg.setting`` for each method, plus Joint; one record per step.

    Step 0 is trained and evaluated once per step-0 family (recorded as method ``step0``, and
    ``step0-bce`` when LwF-MC is among the methods); each method then runs steps 1..T-1 from its
    own. Finished checkpoints are reused, so a second call trains nothing.

    Args:
        methods: registered method names (:func:`incseg_lib.methods.method_names`).
        joint: also train/evaluate Joint (:func:`~.step.joint_step`) and record it at the last step.

    Returns:
        The full-image records, in training order.

    Raises:
        ValueError: an unknown method (before anything trains) or an offline task.
    """
    bad = [m for m in methods if not is_method(m)]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {method_names()} (Joint: joint=True)")
    num_steps = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).num_steps
    if num_steps < 2:
        raise ValueError(f"task {cfg.task!r} has one step; run_incremental needs an incremental task")
    kw = dict(notebook=notebook, progress=progress)
    families = list(dict.fromkeys(step0_name(m) for m in methods)) or ["step0"]
    records = [train_step(cfg, step=0, method=f, **kw).record for f in families]
    for m in methods:
        records += _steps(cfg, m, num_steps - 1, **kw)
    if joint:
        records.append(joint_step(cfg, **kw).record)
    return records


# ---------------------------------------------------------------------- the studies
def run_study(
    cfg: RunConfig,
    plan: dict,
    *,
    notebook: str = "",
    joint: bool = True,
    progress: bool = True,
) -> list[Record]:
    """Notebook 02: :func:`run_incremental` for every task and setting of ``plan`` (:func:`study_plan`)."""
    return for_each_task(
        cfg,
        plan,
        lambda tcfg, last: run_incremental(
            tcfg, task_methods(plan, tcfg.task), notebook=notebook, joint=joint, progress=progress
        ),
    )


def run_replay_study(
    cfg: RunConfig,
    plan: dict,
    *,
    mode: str = "per-class",
    strategy: str = "class-balanced",
    share: float = 0.5,
    old_labels_on_new: bool = False,
    notebook: str = "",
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """Notebook 03: MiB without memory (the reference) and every method with every memory size of ``plan``.

    Returns:
        ``(records, memories)``: every full-image record (every step), and the last step's
        :class:`~incseg_lib.exemplars.ExemplarMemory` per ``(task, setting, method, size)``.

    Raises:
        ValueError: a memory option out of range (``share``, ``mode``, ``strategy``, a size), before
            anything trains.
    """
    memories = {}
    kw = dict(notebook=notebook, progress=progress)
    replays = {  # built (and so checked) before step 0 trains
        size: ReplayConfig(budget=size, mode=mode, strategy=strategy, share=share, old_labels_on_new=old_labels_on_new)
        for size in plan["sizes"]
    }

    def body(tcfg: RunConfig, last: int) -> list[Record]:
        records = run_incremental(tcfg, ["mib"], joint=False, **kw)
        for size in plan["sizes"]:
            replay = replays[size]
            for m in plan["methods"]:
                records += _steps(tcfg, m, last, source=Replay(replay), **kw)
                memories[(tcfg.task, tcfg.setting, m, size)] = ExemplarMemory.load(
                    keys.memory_file(tcfg, last, keys.replay_run_name(m, replay))
                )
        return records

    return for_each_task(cfg, plan, body), memories


def run_inversion_study(
    cfg: RunConfig,
    plan: dict,
    inversion: InversionConfig,
    *,
    smib: bool = True,
    notebook: str = "",
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """Notebook 04: each method of ``plan`` and MiB without memory (the references), each method with
    DeepInversion replay (``inversion`` with the plan's first aggregation), MiB with each further
    aggregation, and SMiB with as many real exemplars per class as synthetic images per class (same
    share of each batch).

    Returns:
        ``(records, memories)``: every full-image record, and the step-1 synthetic memory per
        ``(task, setting)`` (the images made from the step-0 model with the first aggregation) and per
        ``(task, setting, aggregation)``.
    """
    memories = {}
    kw = dict(notebook=notebook, progress=progress)

    def body(tcfg: RunConfig, last: int) -> list[Record]:
        references = ["mib"] + [m for m in plan["methods"] if m != "mib"]  # each method without memory
        records = run_incremental(tcfg, references, joint=False, **kw)
        variants = [replace(inversion, aggregation=a) for a in plan.get("aggregations", [inversion.aggregation])]
        for m in plan["methods"]:
            records += _steps(tcfg, m, last, source=Synthetic(variants[0]), **kw)
        for variant in variants[1:] if "mib" in plan["methods"] else []:
            records += _steps(tcfg, "mib", last, source=Synthetic(variant), **kw)
        if smib:
            records += _steps(
                tcfg,
                "mib",
                last,
                source=Replay(ReplayConfig(budget=inversion.images_per_class, share=inversion.share)),
                **kw,
            )
        first = plan["methods"][0]
        for i, variant in enumerate(variants):
            who = first if i == 0 else "mib"
            memory = keys.find_synthetic_memory(
                tcfg, 1, step0_name(who), variant, student_run=keys.synthetic_run_name(who, variant)
            )
            memories[(tcfg.task, tcfg.setting, variant.aggregation)] = memory
            if i == 0:
                memories[(tcfg.task, tcfg.setting)] = memory
        return records

    return for_each_task(cfg, plan, body), memories


def synthesis_variant(cfg: RunConfig, inversion: InversionConfig, *, progress: bool = True, **changes):
    """A synthetic memory of ``cfg.task``'s step-0 model made with ``changes`` to ``inversion`` (e.g.
    ``r_feature=0.0``: without the BN-statistics term; ``images_per_class=1``), for a comparison no
    step trains on: made once (:func:`~.sources.synthetic_memory`) and cached beside the step-0
    checkpoint like the replayed memories, so a re-run reuses it.

    Raises:
        FileNotFoundError: step 0 has not been trained (run the study first).
        ValueError: an unknown or invalid setting (from :class:`~incseg_lib.inversion.InversionConfig`).
    """
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    old = load_step_model(cfg, 0, "step0").to(cfg.torch_device())
    train_base, _ = base_datasets(cfg, split0)
    variant = replace(inversion, **changes)
    return synthetic_memory(cfg, 1, "step0", split0, old, variant, progress=progress, train_base=train_base)


def run_weak_study(
    cfg: RunConfig,
    plan: dict,
    seam: SeamConfig,
    *,
    notebook: str = "",
    progress: bool = True,
    joint_weak: bool = True,
) -> tuple[list[dict], dict]:
    """Notebook 05: each method of ``plan`` with masks (the references, and Joint) and on SEAM
    pseudo-labels, and Joint-S (:func:`~.step.weak_joint_step`, on the pseudo-labels of MiB-S where
    MiB is in the plan) unless ``joint_weak`` is off.

    Returns:
        ``(records, pseudo)``: every full-image record, and the step-1 :class:`~incseg_lib.seam.PseudoLabels`
        the first method trained on, per ``(task, setting)``.
    """
    pseudo = {}
    kw = dict(notebook=notebook, progress=progress)

    def body(tcfg: RunConfig, last: int) -> list[Record]:
        records = run_incremental(tcfg, plan["methods"], joint=True, **kw)
        for m in plan["methods"]:
            records += _steps(tcfg, m, last, source=Weak(seam), **kw)
        first = next((m for m in plan["methods"] if get_method(m).uses_old_model), plan["methods"][0])
        pseudo[(tcfg.task, tcfg.setting)] = find_pseudo_labels(tcfg, 1, first, seam)
        if joint_weak:
            records.append(weak_joint_step(tcfg, seam, source=first, **kw).record)
        return records

    return for_each_task(cfg, plan, body), pseudo


# ---------------------------------------------------------------------- notebook 01's grid
def grid_configs(cfg: RunConfig, backbones=None, lrs=None, batch_sizes=None) -> list[RunConfig]:
    """The hyperparameter grid backbone x learning rate x batch size (profile defaults where None)."""
    g = cfg.grid or {}
    backbones = backbones or g.get("backbones") or [cfg.backbone]
    lrs = lrs or g.get("lrs") or [cfg.lr]
    batch_sizes = batch_sizes or g.get("batch_sizes") or [cfg.batch_size]
    return [
        cfg.replace(backbone=b, lr=float(lr), batch_size=int(bs))
        for b, lr, bs in itertools.product(backbones, lrs, batch_sizes)
    ]


def run_grid(configs: list[RunConfig], *, notebook: str, progress: bool = True) -> list[StepOutcome]:
    """Train and evaluate each offline configuration (reusing finished checkpoints)."""
    return [train_step(c, step=0, method="offline", notebook=notebook, progress=progress) for c in configs]


def grid_table(outcomes: list[StepOutcome]):
    """DataFrame of a grid: backbone, lr, batch size, mIoU, pixel accuracy, time (like the seed report)."""
    import pandas as pd

    rows = []
    for o in outcomes:
        r = o.record
        rows.append(
            {
                "backbone": r.backbone,
                "lr": r["lr"],
                "batch_size": r["batch_size"],
                "epochs": o.config.epochs,
                "mIoU %": round(100 * (r.miou_all or 0), 1),
                "pixel acc %": round(100 * (r.pixel_acc or 0), 1),
                "train s": round(r.train_seconds or 0, 1),
                "train img/s": round(r["images_per_second"] or 0, 1),
            }
        )
    return pd.DataFrame(rows).sort_values("mIoU %", ascending=False, ignore_index=True)
