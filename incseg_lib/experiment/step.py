"""One training step, end to end: data split -> model -> fit -> evaluate -> results record.

docs/design.md's data flow in one call, shared by every notebook::

    RunConfig -> dataset -> IncrementalSplit(task, step, setting) -> BiSeNet -> engine.fit
      -> checkpoints/.../step-k.pt -> engine.evaluate -> metrics -> results.record

Checkpoints are keyed by everything that determines them (:mod:`.keys`); step 0 is shared by every
method of a task and setting, and a finished checkpoint is reused instead of retrained. What a step
trains on besides its masks (exemplars, synthetic images, pseudo-labels) is a
:class:`~incseg_lib.experiment.sources.Source`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import ConcatDataset

from .. import runs
from ..config import RunConfig, step0_name
from ..data import eval_split, load_dataset, train_split
from ..data.transforms import eval_transforms, train_transforms
from ..engine import (
    Hardware,
    Hooks,
    Saving,
    Schedule,
    SizeGroupedBatchSampler,
    TrackerGroup,
    fit,
    load_checkpoint,
    log_timing,
)
from ..env import show_progress
from ..exemplars import ReplayBatchSampler, ReplayConfig
from ..inversion import InversionConfig
from ..log import get_logger
from ..methods import (
    Method,
    StepInputs,
    get_method,
    is_method,
    method_names,
    method_spec,
    preallocates,
    step0_loss_fn,
    step0_names,
)
from ..models import BiSeNet, limit_to_seen
from ..models import build_model as build_network
from ..regularizers import ImportanceTracker, ParameterPenalty, importance_file, load_importance
from ..results import Record
from ..seam import SeamConfig
from ..store import CorruptCheckpoint, clean_once, key_digest, quarantine
from ..tasks import IncrementalSplit, get_task
from . import keys
from .evaluation import evaluate_step
from .sources import Source, StepContext, StepData, source_for

log = get_logger(__name__)


@dataclass
class StepOutcome:
    """What :func:`train_step` returns: the trained model (eval mode), its split, the training
    history, the results record of its evaluation (None when not evaluated), its checkpoint and
    the configuration it trained with."""

    model: BiSeNet
    split: IncrementalSplit
    history: dict
    record: Record | None
    checkpoint: Path
    config: RunConfig


def base_datasets(cfg: RunConfig, split: IncrementalSplit):
    """The unfiltered train and evaluation datasets of ``cfg`` (class ids, no transforms)."""
    incremental = cfg.task != "offline"  # CamVid's offline task keeps its own 11 ids
    train = load_dataset(
        cfg.dataset,
        train_split(cfg.dataset, cfg.voc_split),
        root=cfg.data_root,
        incremental=incremental,
        max_images=cfg.max_train_images,
    )
    val = load_dataset(
        cfg.dataset, eval_split(cfg.dataset), root=cfg.data_root, incremental=incremental, max_images=cfg.max_val_images
    )
    t0 = time.perf_counter()
    for ds in (train, val):  # every file checked once, before any training (cached afterwards)
        ds.check(cfg.checkpoint_path / "splits", progress=show_progress())
    log_timing("data", time.perf_counter() - t0, what="open and check")
    return train, val


def step_network(cfg: RunConfig, split: IncrementalSplit, step0: str = "step0") -> BiSeNet:
    """The run's model (``cfg.model``: BiSeNet or DeepLabV3) with heads for steps ``0..split.step``
    (pretrained backbone only at step 0), untrained. ``step0``: the step-0 run the method starts
    from; one that pre-allocates (DFT*'s ``step0-prealloc``) gets the heads of every step of the
    task, those after ``split.step`` left out at inference (:func:`~incseg_lib.models.limit_to_seen`)."""
    heads = split.classes_per_step
    if preallocates(step0):
        heads = IncrementalSplit(cfg.dataset, cfg.task, len(get_task(cfg.dataset, cfg.task)) - 1).classes_per_step
    model = build_network(cfg.model, heads, cfg.backbone, cfg.pretrained if split.step == 0 else "")
    limit_to_seen(model, split.step + 1)
    return model


def step_training_set(cfg: RunConfig, split: IncrementalSplit, train_base=None, *, progress: bool = False):
    """The training images of ``split`` (a step of ``cfg.task``) labelled as that step trains (its
    new classes; the rest background), with the profile's augmentation (``cfg.crop_size``): what
    :func:`train_step` trains on from the step's masks. ``train_base``: the unfiltered training
    dataset (:func:`base_datasets`; loaded when None)."""
    if train_base is None:
        train_base = base_datasets(cfg, split)[0]
    return split.train_dataset(
        train_base.with_transforms(train_transforms(cfg.crop_size)),
        cfg.checkpoint_path / "splits",
        progress=progress,
        void_label=cfg.void_label,
    )


def frozen_copy(model: nn.Module, cfg: RunConfig) -> nn.Module:
    """The old model of a step: a copy of ``model`` on ``cfg``'s device, in eval mode, without
    gradients (every method that reads the step t-1 model reads this copy)."""
    return copy.deepcopy(model).to(cfg.torch_device()).eval().requires_grad_(False)


def grow(model: nn.Module, split: IncrementalSplit, method: Method, seed: int) -> None:
    """Add the heads of ``split``'s new classes to ``model`` and initialise them as ``method`` does
    (MiB's initialisation from the background, or the default); the new heads' random init is
    seeded with ``seed + split.step``, so it does not depend on what ran before."""
    torch.manual_seed(seed + split.step)
    if preallocates(method.step0):  # the step's heads exist since step 0; they now count at inference
        limit_to_seen(model, split.step + 1)
        return
    model.add_step(len(split.new_classes))
    if method.init_new_heads is not None:
        method.init_new_heads(model, len(split.new_classes))


def fit_options(cfg: RunConfig, step: int, method: str = "") -> dict:
    """What ``cfg`` tells :func:`~incseg_lib.engine.fit` for ``step`` of ``method``: ``{"schedule":
    Schedule (epochs, learning rate by the method's protocol, batch, optimiser, seed ``cfg.seed +
    step``), "hardware": Hardware (device, precision, workers, SyncBN)}``, to pass as
    ``fit(model, data, **fit_options(...), saving=..., hooks=...)``: the one place a
    :class:`RunConfig` becomes a training schedule (:func:`saving` gives the checkpoint's)."""
    schedule = Schedule(
        epochs=cfg.epochs_at(step),
        batch_size=cfg.batch_size,
        lr=cfg.lr_at(step, method),
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        optimizer=cfg.optimizer,
        aux_weight=cfg.aux_weight,
        seed=cfg.seed + step,
    )
    hardware = Hardware(device=cfg.torch_device(), amp=cfg.amp, num_workers=cfg.num_workers, sync_bn=cfg.sync_bn)
    return {"schedule": schedule, "hardware": hardware}


def saving(cfg: RunConfig, checkpoint: Path, key: dict) -> Saving:
    """The :class:`~incseg_lib.engine.Saving` of a step: its checkpoint file and key, written every
    ``cfg.checkpoint_every`` epochs."""
    return Saving(checkpoint=checkpoint, key=key, every=cfg.checkpoint_every)


def train_step(
    cfg: RunConfig,
    *,
    step: int = 0,
    method: str = "offline",
    notebook: str = "",
    progress: bool = True,
    record: bool = True,
    evaluate_now: bool = True,
    source: Source | None = None,
    replay: ReplayConfig | None = None,
    synthetic: InversionConfig | None = None,
    weak: SeamConfig | None = None,
) -> StepOutcome:
    """Train (or reuse) step ``step`` of ``cfg.task`` with ``method`` and record its evaluation.

    Args:
        method: ``offline`` (an offline task), ``step0`` (step 0 of an incremental task, shared by
            every softmax method), ``step0-bce`` (LwF-MC's BCE step 0), or a registered method
            (:func:`incseg_lib.methods.method_names`: ``ft``, ``lwf``, ``mib``, ...); a method at
            step 0 is its shared step-0 training (:func:`~incseg_lib.config.step0_name`).
        notebook: name stored in the results record (e.g. ``01_offline_bisenet_tuning``).
        evaluate_now: evaluate (and record) after training; False leaves ``record`` None.
        source: what steps >= 1 train on besides their masks (:mod:`.sources`); default their masks.
        replay, synthetic, weak: shorthands for a source (at most one): rehearsal with an
            :class:`~incseg_lib.exemplars.ExemplarMemory` (recorded ``smib`` for MiB, else
            ``<method>+mem``), replay of DeepInversion images of the step t-1 model (a
            :class:`~incseg_lib.inversion.InversionConfig`; recorded ``<method>+di``), or SEAM
            pseudo-labels from image-level labels instead of masks (a
            :class:`~incseg_lib.seam.SeamConfig`; recorded ``<method>-s``).

    Returns:
        :class:`StepOutcome` with the trained model (in eval mode), history and the record.

    Raises:
        ValueError: unknown method/task/step, more than one source, or no training image for the step.
    """
    if method != "offline" and not is_method(method) and not (step == 0 and method in step0_names()):
        raise ValueError(f"method {method!r} is not available; choose one of {('offline',) + method_names()}")
    if step == 0 and is_method(method):
        method = step0_name(method)
    shorthand = source_for(replay, synthetic, weak)
    source = Source() if step == 0 else (source or shorthand)  # step 0 has full masks; it stays shared
    run_name = source.run_name(method)
    split = IncrementalSplit(cfg.dataset, cfg.task, step, cfg.setting)
    if split.is_offline and method != "offline":
        raise ValueError(f"task {cfg.task} is offline; use method='offline'")
    clean_once(cfg.checkpoint_path)  # what killed processes or a full disk left behind
    train_base, val_base = base_datasets(cfg, split)
    t0 = time.perf_counter()
    train_set = step_training_set(cfg, split, train_base, progress=progress)
    log_timing("data", time.perf_counter() - t0, what="step split")
    ckpt = keys.checkpoint_file(cfg, step, run_name)
    if step == 0:
        model, data, training = _first_step(cfg, split, method, ckpt, train_set)
    else:
        ctx = StepContext(
            cfg,
            step,
            split,
            IncrementalSplit(cfg.dataset, cfg.task, step - 1, cfg.setting),
            train_base,
            run_name,
            run_name if step > 1 else method_spec(method).step0,
            get_method(method, protocol=cfg.protocol),
            progress,
        )
        model, data, training = _later_step(
            ctx, source, ckpt, train_set, dict(notebook=notebook, record=record, evaluate_now=evaluate_now)
        )
    history = _fit_step(cfg, step, split, run_name, runs.recorded_name(run_name), model, data, ckpt, training, progress)
    model.return_maps = False  # intermediate maps were for the training losses only
    rec = None
    if evaluate_now:
        step0 = method if step == 0 else method_spec(method).step0
        rec = evaluate_step(
            cfg,
            model,
            split,
            val_base,
            method=runs.recorded_name(run_name),
            notebook=notebook,
            history=history,
            checkpoint=ckpt,
            progress=progress,
            record=record,
            extra={
                **data.record,
                "step0": step0,
                "step_protocol": cfg.step_protocol(step, runs.parse_run_name(run_name)[0]),
            },
        )
    return StepOutcome(model.eval(), split, history, rec, ckpt, cfg)


def _first_step(cfg: RunConfig, split: IncrementalSplit, method: str, ckpt: Path, train_set):
    """Step 0's model, data and training options: a fresh model, EWC/PI/RW importance tracked for
    the methods that need it (so step 0 stays shared), LwF-MC's BCE for its own step 0."""
    torch.manual_seed(cfg.seed)
    model = step_network(cfg, split, method)
    training: dict = {"loss_fn": None, "tracker": None}
    if method == "step0":  # importance for EWC/PI/RW, so step 0 stays shared by every method
        training["tracker"] = ImportanceTracker(model, importance_file(ckpt))
    elif method in step0_names():  # a step 0 of a method's own (LwF-MC's sigmoid classifier: BCE from step 0 on)
        training["loss_fn"] = step0_loss_fn(method, cfg.aux_weight)
    return model, StepData(train_set), training


def _later_step(ctx: StepContext, source: Source, ckpt: Path, train_set, rerun: dict):
    """Step t >= 1's model, data and training options: the step t-1 model grown by the step's heads,
    the frozen old model and the method's loss, with ``source``'s data."""
    cfg, spec = ctx.cfg, ctx.spec
    model, importance = _previous_model(ctx, source, rerun)
    data = StepData(train_set)
    source.before_heads(ctx, data, model)
    old_model, penalty = None, None
    if spec.uses_old_model or source.needs_old_model:  # a frozen copy of step t-1
        old_model = frozen_copy(model, cfg)
    if spec.regularizer is not None:
        penalty = ParameterPenalty(
            spec.regularizer, old_model, importance, spec.weights["reg"], pi_estimator=cfg.pi_estimator
        )
    grow(model, ctx.split, spec, cfg.seed)
    trackers = []
    if spec.regularizer is not None:  # keep tracking: the next step needs this step's importance
        trackers.append(ImportanceTracker(model, importance_file(ckpt), previous=importance))
    source.after_heads(ctx, data, old_model, model)
    state = _prepare_method(ctx, model, old_model, ckpt)
    if state and state.get("tracker") is not None:  # per-step state saved with the checkpoint (SDR's prototypes)
        trackers.append(state["tracker"])
    loss_fn = spec.loss_fn(
        old_model if spec.uses_old_model else None,
        sum(ctx.prev.classes_per_step),
        cfg.aux_weight,
        aux=cfg.aux_next,
        distill_pixels=cfg.distill_pixels,
        ce_normalisation=cfg.ce_normalisation_at(spec.name),
        state=state,
    )
    tracker = None if not trackers else trackers[0] if len(trackers) == 1 else TrackerGroup(trackers)
    finish = None
    if spec.finish is not None:  # EWF: the step's end point fused with the old model
        num_old, num_new = sum(ctx.prev.classes_per_step), len(ctx.split.new_classes)
        finish = lambda m: spec.finish(m, old_model, num_old, num_new)  # noqa: E731
    return model, data, {"loss_fn": loss_fn, "tracker": tracker, "penalty": penalty, "finish": finish}


def _prepare_method(ctx: StepContext, model: BiSeNet, old_model, ckpt: Path) -> dict | None:
    """The method's state before step t trains (:attr:`~incseg_lib.methods.Method.prepare`): PLOP's
    entropy thresholds, SDR's prototypes. Methods that read intermediate maps get them from both
    models from here on."""
    spec, cfg = ctx.spec, ctx.cfg
    if spec.needs_maps:
        model.return_maps = old_model.return_maps = True
    if spec.prepare is None:
        return None
    device = cfg.torch_device()
    inputs = StepInputs(
        old_model=old_model,
        model=model.to(device),
        batches=lambda: _full_images(cfg, ctx.split, ctx.train_base),
        previous_batches=lambda: _full_images(cfg, ctx.prev, ctx.train_base),
        checkpoint=ckpt,
        previous_checkpoint=keys.checkpoint_file(cfg, ctx.step - 1, ctx.prev_run),
        step=ctx.step,
        setting=cfg.setting,
        device=device,
    )
    return spec.prepare(inputs)


def _full_images(cfg: RunConfig, split: IncrementalSplit, train_base, batch_size: int = 8):
    """``(images, labels)`` batches of ``split``'s training images, whole and unaugmented, labelled as
    that step trains, on the device; images of one size per batch."""
    data = split.train_dataset(
        train_base.with_transforms(eval_transforms()), cfg.checkpoint_path / "splits", void_label=cfg.void_label
    )
    sizes = [data.image_size(i) for i in range(len(data))]
    device = cfg.torch_device()
    for batch in SizeGroupedBatchSampler(sizes, batch_size):
        items = [data[i] for i in batch]
        yield torch.stack([x for x, _ in items]).to(device), torch.stack([y for _, y in items]).to(device).long()


def _previous_model(ctx: StepContext, source: Source, rerun: dict) -> tuple[BiSeNet, dict | None]:
    """The step t-1 model (trained first if missing) and its EWC/PI/RW importance; a corrupt checkpoint
    or importance file is moved aside and step t-1 retrained once (which rebuilds its importance: it
    is accumulated while that step trains)."""
    cfg, step, spec = ctx.cfg, ctx.step, ctx.spec
    prev_ckpt = keys.checkpoint_file(cfg, step - 1, ctx.prev_run)
    model = step_network(cfg.replace(pretrained=""), ctx.prev, spec.step0)
    for attempt in range(2):
        if not prev_ckpt.is_file():
            log.info(f"step {step - 1} is not trained yet; training it first")
            train_step(
                cfg,
                step=step - 1,
                method=spec.name,
                progress=ctx.progress,
                source=source,
                **rerun,
            )
        try:
            load_checkpoint(prev_ckpt, model)
            return model, load_importance(prev_ckpt) if spec.regularizer is not None else None
        except CorruptCheckpoint as e:
            if attempt:
                raise
            for bad in dict.fromkeys([e.path or prev_ckpt, prev_ckpt]):
                if not bad.is_file():
                    continue
                if bad == (e.path or prev_ckpt):
                    log.info(f"{e}\n  moved aside to {quarantine(bad).name}")
                else:  # healthy, but useless without its importance: removed, not kept forever
                    bad.unlink()
                    log.info(f"  {bad.name} removed: it is retrained with its importance")
    raise AssertionError("unreachable")  # the second attempt returns or raises


def _fit_step(
    cfg: RunConfig,
    step: int,
    split: IncrementalSplit,
    run_name: str,
    shown: str,
    model: BiSeNet,
    data: StepData,
    ckpt: Path,
    training: dict,
    progress: bool,
) -> dict:
    """Train ``model`` on ``data`` (replayed images in a fixed share of every batch) with the step's
    schedule; the history (:func:`~incseg_lib.engine.fit`)."""
    train_set, sampler_fn = data.train_set, None
    if data.memory is not None:  # exemplars or synthetic images: a fixed share of every batch
        n_new, n_mem, share = len(data.train_set), len(data.memory), data.share
        train_set = ConcatDataset([data.train_set, data.memory])
        sampler_fn = lambda g: ReplayBatchSampler(n_new, n_mem, cfg.batch_size, share, g)  # noqa: E731
    key = keys.training_key(cfg, step, run_name)
    options = fit_options(cfg, step, runs.parse_run_name(run_name)[0])
    shown_as = runs.run_label(run_name)  # "step 0 (BCE)" says the step itself
    label = " ".join(
        [cfg.dataset, cfg.task]
        + ([] if split.is_offline else [split.setting])
        + ([shown_as] if shown_as.startswith("step 0") else [f"step {step}", shown_as])
    )
    schedule = options["schedule"]
    log.info(
        f"[{label}] {cfg.backbone}, {len(train_set)} training images, lr {schedule.lr}, batch {cfg.batch_size}, "
        f"{schedule.epochs} epochs"
    )
    return fit(
        model,
        train_set,
        **options,
        saving=saving(cfg, ckpt, key),
        hooks=Hooks(
            training["loss_fn"], training["tracker"], training.get("penalty"), sampler_fn, training.get("finish")
        ),
        log_dir=Path(cfg.run_dir) / "tensorboard" / f"{cfg.dataset}-{cfg.task}-{shown}-step{step}-{key_digest(key)}",
        progress=progress,
    )


def joint_config(cfg: RunConfig) -> RunConfig:
    """The configuration of Joint for ``cfg.task``: one step with every class, on every image.

    Where the dataset's ``offline`` task already has the same classes and ids (VOC, shapes),
    Joint *is* that task, so it shares notebook 01's checkpoint of the same configuration;
    CamVid's Joint uses the incremental ids (``joint`` task: background + 11 classes).
    """
    classes = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).class_order
    task = "offline" if get_task(cfg.dataset, "offline") == [classes] else "joint"
    return cfg.replace(task=task)


def load_step_model(cfg: RunConfig, step: int, method: str) -> BiSeNet:
    """The trained model of ``method`` after ``step`` (``joint``: the Joint model), in eval mode.

    Raises:
        FileNotFoundError: that step has not been trained with this configuration (names the file).
    """
    if method == "joint":
        jcfg = joint_config(cfg)
        split = IncrementalSplit(jcfg.dataset, jcfg.task, 0, jcfg.setting)
        ckpt = keys.checkpoint_file(jcfg, 0, "offline")
    else:
        split = IncrementalSplit(cfg.dataset, cfg.task, step, cfg.setting)
        ckpt = keys.checkpoint_file(cfg, step, method)
    step0 = step0_name(runs.parse_run_name(method)[0]) if method != "joint" else "step0"
    model = step_network(cfg.replace(pretrained=""), split, step0)
    load_checkpoint(ckpt, model)
    return model.eval()
