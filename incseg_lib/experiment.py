"""One training step, end to end: data split -> model -> fit -> evaluate -> results record.

This is docs/DESIGN.md's data flow in one call, shared by every notebook::

    RunConfig -> dataset -> IncrementalSplit(task, step, setting) -> BiSeNet -> engine.fit
      -> checkpoints/.../step-k.pt -> engine.evaluate -> metrics -> results.record

Checkpoints are keyed by everything that determines them (``RunConfig.training_key``); step 0
is shared by every method of a task and setting, and a finished checkpoint is reused instead of
retrained.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from . import results
from .config import RunConfig, key_digest, show_progress, step0_name
from .data import eval_split, load_dataset, train_split
from .data.transforms import centre_crop_transforms, eval_transforms, train_transforms
from .env import provenance
from .store import clean_once, load_torch
from .engine import (CorruptCheckpoint, checkpoint_lock, evaluate, fit, is_main, load_checkpoint, log_timing,
                     quarantine)
from .exemplars import ExemplarMemory, ReplayBatchSampler, ReplayConfig, annotated_lut
from .inversion import InversionConfig, SyntheticMemory
from .methods import METHOD_NAMES, get_method
from .models import BiSeNet
from .seam import ImageLabelDataset, PseudoLabels, SeamConfig, SeamNet, image_labels, seam_loss
from .regularizers import ImportanceTracker, ParameterPenalty, importance_file, load_importance
from .tasks import IncrementalSplit, base_signature, get_task

METHODS_NOW = ("offline",) + METHOD_NAMES
STEP0_NAMES = ("step0", "step0-bce")


@dataclass
class StepOutcome:
    """What :func:`train_step` returns."""

    model: BiSeNet
    split: IncrementalSplit
    history: dict
    record: dict
    checkpoint: Path
    config: RunConfig


def checkpoint_file(cfg: RunConfig, step: int, method: str) -> Path:
    """Where the step-``step`` checkpoint of ``method`` lives (folder named by the key's hash)."""
    key = cfg.training_key(step=step, method=method)
    single = len(get_task(cfg.dataset, cfg.task)) == 1
    setting = cfg.setting if not single else "all"
    task = cfg.task if step > 0 else base_signature(cfg.dataset, cfg.task)
    folder = step0_name(method) if step == 0 else method
    return (cfg.checkpoint_path / cfg.dataset / f"{task}-{setting}" / folder
            / f"{cfg.backbone}-{key_digest(key)}" / f"step-{step}.pt")


def replay_method_name(method: str) -> str:
    """The recorded name of ``method`` with rehearsal: ``mib`` -> ``smib``, else ``<method>+mem``."""
    return "smib" if method == "mib" else f"{method}+mem"


def synthetic_run_name(method: str, inversion: InversionConfig) -> str:
    """The checkpoint run name of ``method`` replaying a synthetic memory: ``mib+di-<digest>``."""
    return f"{method}+di-{key_digest(inversion.to_dict())}"


def synthetic_memory(cfg: RunConfig, step: int, prev_run: str, prev: IncrementalSplit, old_model: BiSeNet,
                     inversion: InversionConfig, *, student: BiSeNet | None = None, student_run: str = "",
                     progress: bool = True, print_fn: Callable = print) -> SyntheticMemory:
    """The synthetic memory replayed at ``step``: DeepInversion of the step ``step - 1`` model.

    Every old foreground class of ``prev`` (the split of step ``step - 1``) gets
    ``inversion.images_per_class`` images. The memory lives beside the old checkpoint
    (``<old checkpoint folder>/synthetic/<digest>/``), keyed by the old checkpoint's training key
    and the synthesis settings (the replay share and labels excluded: they do not change the images; the
    student's run included when ADI uses it), so FT+DI and MiB+DI share the images of one step 0,
    and a re-run or a resumed run reuses finished batches.
    """
    memory = find_synthetic_memory(cfg, step, prev_run, inversion, student_run=student_run)
    if memory.complete:
        return memory
    with checkpoint_lock(memory.manifest_path, print_fn):  # another notebook may be making it
        memory = find_synthetic_memory(cfg, step, prev_run, inversion, student_run=student_run)
        if memory.complete:
            return memory
        classes = [c for c in prev.seen_classes if c != 0]
        out_index = {c: i for i, c in enumerate(prev.class_order[: prev.num_seen])}
        n = len(classes) * inversion.images_per_class
        print_fn(f"  DeepInversion of step {step - 1}: {n} images of {len(classes)} old classes at "
                 f"{inversion.resolution} px, {inversion.iterations_low}+{inversion.iterations_full} iterations")
        memory.build(old_model, classes, out_index, prev.class_order[: prev.num_seen], inversion, student=student,
                     device=cfg.torch_device(), progress=progress, print_fn=print_fn)
        info = memory.summary()
        print_fn(f"  synthesised in {info['seconds']:.0f} s ({info['seconds_per_image']:.2f} s/image, "
                 f"{info['image_iterations_per_second']:.1f} image-iterations/s)")
    return memory


def step_memory(cfg: RunConfig, step: int, run_name: str, replay: ReplayConfig, prev: IncrementalSplit,
                train_base, prev_model: BiSeNet, progress: bool = True) -> ExemplarMemory:
    """The exemplar memory used at ``step``: the memory of step-1 plus exemplars of ``prev``'s classes.

    Selected once (with ``prev_model`` for herding) and saved beside step ``step``'s checkpoint
    as ``memory.json``; later calls read it back, so a resumed or re-run step replays the same
    images.
    """
    path = checkpoint_file(cfg, step, run_name).parent / "memory.json"
    with checkpoint_lock(path):  # selected once, also when two notebooks need it at the same time
        return _step_memory(cfg, step, run_name, replay, prev, train_base, prev_model, path, progress)


def _step_memory(cfg, step, run_name, replay, prev, train_base, prev_model, path, progress) -> ExemplarMemory:
    if path.is_file():
        return ExemplarMemory.load(path)
    if step > 1:
        before = checkpoint_file(cfg, step - 1, run_name).parent / "memory.json"
        if not before.is_file():
            raise FileNotFoundError(f"{before} is missing: step {step - 1} of this replay run was trained "
                                    "without its memory; delete that step's checkpoint folder to retrain it")
        memory = ExemplarMemory.load(before)
    else:
        memory = ExemplarMemory(replay, seed=cfg.seed)
    memory.update(prev, train_base, model=prev_model, device=cfg.torch_device(),
                  cache_dir=cfg.checkpoint_path / "splits", progress=progress)
    memory.save(path)
    return memory


def find_synthetic_memory(cfg: RunConfig, step: int, prev_run: str, inversion: InversionConfig, *,
                          student_run: str = "") -> SyntheticMemory:
    """The :class:`~incseg_lib.inversion.SyntheticMemory` replayed at ``step`` (built or not)."""
    prev_ckpt = checkpoint_file(cfg, step - 1, prev_run)
    settings = {k: v for k, v in inversion.to_dict().items() if k not in ("share", "replay_labels")}
    key = {"old": key_digest(cfg.training_key(step=step - 1, method=prev_run)), "inversion": settings,
           "student": student_run if inversion.adi > 0 else ""}
    return SyntheticMemory(prev_ckpt.parent / "synthetic" / key_digest(key), key)


def weak_run_name(method: str, seam: SeamConfig) -> str:
    """The checkpoint run name of ``method`` trained on SEAM pseudo-labels: ``mib+seam-<digest>``."""
    return f"{method}+seam-{key_digest(seam.to_dict())}"


def seam_checkpoint(cfg: RunConfig, step: int, seam: SeamConfig, prev_run: str) -> tuple[Path, dict]:
    """``(path, key)`` of the SEAM weights of ``step``: ``<checkpoints>/<dataset>/<task>-<setting>/seam/
    <backbone>-<digest>/seam-step-<step>.pt``, keyed by the data, the step, the SEAM training settings
    and (``init="step0"``) the step t-1 checkpoint of ``prev_run`` whose ResNet starts it."""
    init_from = (key_digest(cfg.training_key(step=step - 1, method=prev_run)) if seam.init == "step0" else seam.init)
    key = {"seam": seam.training_part(), "dataset": cfg.dataset, "data": cfg.data_fingerprint(),
           "voc_split": cfg.voc_split if cfg.dataset == "voc" else "", "task": cfg.task, "setting": cfg.setting,
           "step": step, "max_train_images": cfg.max_train_images, "init_from": init_from}
    folder = cfg.checkpoint_path / cfg.dataset / f"{cfg.task}-{cfg.setting}" / "seam" / f"{seam.backbone}-{key_digest(key)}"
    return folder / f"seam-step-{step}.pt", key


def pseudo_label_store(cfg: RunConfig, step: int, seam: SeamConfig, prev_run: str, fuse: bool) -> PseudoLabels:
    """The :class:`~incseg_lib.seam.PseudoLabels` of ``step`` (made or not): beside the SEAM weights
    (``pseudo/<digest>/``), keyed by those weights, the inference settings and, with ``fuse``, the
    old checkpoint whose predictions fill in the old classes."""
    ckpt, _ = seam_checkpoint(cfg, step, seam, prev_run)
    inference = {k: seam.to_dict()[k] for k in ("scales", "flip", "bg_threshold", "cam_source")}
    key = {"seam": ckpt.parent.name, "inference": inference,
           "old": key_digest(cfg.training_key(step=step - 1, method=prev_run)) if fuse else ""}
    return PseudoLabels(ckpt.parent / "pseudo" / key_digest(key), key)


def step_image_labels(cfg: RunConfig, split: IncrementalSplit, train_base, progress: bool = False):
    """The step's training images and what an annotator would say of them: ``(indices into train_base,
    new foreground classes (dataset ids), (N, K) bool image-level labels)``."""
    cache = cfg.checkpoint_path / "splits"
    new = [c for c in split.new_classes if c != 0]
    idx = split.train_indices(train_base, cache, progress=progress)
    return idx, new, image_labels(train_base.class_presence(cache)[idx], new)


def train_seam(cfg: RunConfig, step: int, seam: SeamConfig, split: IncrementalSplit, train_base, prev_model: BiSeNet,
               prev_run: str, *, progress: bool = True, print_fn: Callable = print) -> tuple[SeamNet, dict, Path]:
    """Train (or reuse) SEAM on step ``step``'s training images with their image-level labels of the new classes.

    The weights live at :func:`seam_checkpoint`; ``init="step0"`` copies ``prev_model``'s ResNet.

    Returns:
        ``(model, history, checkpoint)``.

    Raises:
        ValueError: ``init="step0"`` with a SEAM backbone other than the BiSeNet's.
    """
    idx, new, labels = step_image_labels(cfg, split, train_base, progress)
    ckpt, key = seam_checkpoint(cfg, step, seam, prev_run)
    torch.manual_seed(seam.seed)
    model = SeamNet(len(new), seam.backbone, seam.output_stride, "imagenet" if seam.init == "imagenet" else "",
                    freeze_bn=seam.bn_frozen)
    if seam.init == "step0":
        if prev_model.backbone_name != seam.backbone:
            raise ValueError(f"SEAM init 'step0' copies the step-{step - 1} BiSeNet's {prev_model.backbone_name}; "
                             f"the SEAM backbone is {seam.backbone}: use the same backbone or init 'imagenet'/'none'")
        model.backbone.load_state_dict(prev_model.context_path.backbone.state_dict())
    data = ImageLabelDataset(train_base.subset(idx).with_transforms(train_transforms(seam.crop_size, seam.scale_range)),
                             labels)
    print_fn(f"[SEAM step {step}] {seam.backbone} OS{seam.output_stride} from {seam.init}, {len(data)} images with "
             f"image-level labels of {len(new)} classes, lr {seam.lr}, {seam.epochs} epochs")
    history = fit(model, data, epochs=seam.epochs, batch_size=seam.batch_size, lr=seam.lr, momentum=0.9,
                  weight_decay=seam.weight_decay, device=cfg.torch_device(), amp=cfg.amp, num_workers=cfg.num_workers,
                  seed=seam.seed, checkpoint=ckpt, key=key, loss_fn=lambda m, x, y, out: seam_loss(m, x, y, out, seam),
                  log_dir=Path(cfg.run_dir) / "tensorboard" / f"{cfg.dataset}-{cfg.task}-seam-step{step}-{key_digest(key)}",
                  progress=progress, print_fn=print_fn, checkpoint_every=cfg.checkpoint_every)
    return model.eval(), history, ckpt


def step_pseudo_labels(cfg: RunConfig, step: int, seam: SeamConfig, split: IncrementalSplit, prev: IncrementalSplit,
                       train_base, prev_model: BiSeNet, prev_run: str, *, fuse: bool, progress: bool = True,
                       print_fn: Callable = print) -> PseudoLabels:
    """The SEAM pseudo-labels of step ``step``'s training images (SEAM trained first if needed).

    Stored by :func:`pseudo_label_store`; SEAM is trained (or its weights reused) only when they are missing.
    """
    labels = pseudo_label_store(cfg, step, seam, prev_run, fuse)
    if not labels.complete:
        with checkpoint_lock(labels.manifest_path, print_fn):  # another notebook may be making them
            labels = pseudo_label_store(cfg, step, seam, prev_run, fuse)
            if not labels.complete:
                model, _, _ = train_seam(cfg, step, seam, split, train_base, prev_model, prev_run, progress=progress,
                                         print_fn=print_fn)
                idx, new, tags = step_image_labels(cfg, split, train_base)
                labels.build(model, train_base.subset(idx), tags, new, seam, old_model=prev_model if fuse else None,
                             old_class_order=prev.class_order[: prev.num_seen], old_classes=prev.seen_classes,
                             device=cfg.torch_device(), progress=progress)
    q = labels.quality()
    shown = "  ".join(f"{v} {q[v]['miou']:.1f}" for v in q)
    print_fn(f"  pseudo-labels of {labels.manifest['images']} images, mIoU against the masks they replace: {shown}")
    return labels


def _fraction(percent):
    return None if percent is None else round(percent / 100, 6)


def base_datasets(cfg: RunConfig, split: IncrementalSplit):
    """The unfiltered train and evaluation datasets of ``cfg`` (class ids, no transforms)."""
    incremental = cfg.task != "offline"  # CamVid's offline task keeps its own 11 ids
    train = load_dataset(cfg.dataset, train_split(cfg.dataset, cfg.voc_split), root=cfg.data_root,
                         incremental=incremental, max_images=cfg.max_train_images)
    val = load_dataset(cfg.dataset, eval_split(cfg.dataset), root=cfg.data_root, incremental=incremental,
                       max_images=cfg.max_val_images)
    t0 = time.perf_counter()
    for ds in (train, val):  # every file checked once, before any training (cached afterwards)
        ds.check(cfg.checkpoint_path / "splits", progress=show_progress())
    log_timing("data", time.perf_counter() - t0, what="open and check")
    return train, val


def build_model(cfg: RunConfig, split: IncrementalSplit) -> BiSeNet:
    """A BiSeNet with heads for steps ``0..split.step`` (pretrained backbone only at step 0)."""
    return BiSeNet(split.classes_per_step, cfg.backbone, cfg.pretrained if split.step == 0 else "")


def train_step(cfg: RunConfig, *, step: int = 0, method: str = "offline", notebook: str = "",
               progress: bool = True, print_fn: Callable = print, record: bool = True,
               evaluate_now: bool = True, replay: ReplayConfig | None = None,
               synthetic: InversionConfig | None = None, weak: SeamConfig | None = None) -> StepOutcome:
    """Train (or reuse) step ``step`` of ``cfg.task`` with ``method`` and record its evaluation.

    Args:
        method: ``offline`` (an offline task), ``step0`` (step 0 of an incremental task, shared by
            every softmax method), ``step0-bce`` (LwF-MC's BCE step 0), or one of
            :data:`incseg_lib.methods.METHOD_NAMES` (``ft``, ``lwf``,
            ``lwf-mc``, ``ilt``, ``ewc``, ``pi``, ``rw``, ``mib``); a method at step 0 is its shared
            step-0 training (:func:`~incseg_lib.config.step0_name`).
        notebook: name stored in the results record (e.g. ``01_offline_bisenet_tuning``).
        evaluate_now: evaluate (and record) after training; False leaves ``record`` None.
        replay: rehearsal with an :class:`~incseg_lib.exemplars.ExemplarMemory` at steps >= 1
            (``mib`` + replay is recorded as ``smib``, any other method as ``<method>+mem``); the
            memory after step t-1 is selected at the start of step t and saved beside its
            checkpoint (``memory.json``).
        synthetic: replay a DeepInversion memory of the step t-1 model at each step t >= 1
            (:func:`synthetic_memory`), through the same fixed share of every batch as exemplars;
            recorded as ``<method>+di`` (``mib+di``, ``ft+di``).
        weak: train steps >= 1 on SEAM pseudo-labels made from image-level labels instead of masks
            (:func:`step_pseudo_labels`; old-model fusion only for methods that keep an old model);
            recorded as ``<method>-s`` (``mib-s``, ``ft-s``).

    Returns:
        :class:`StepOutcome` with the trained model (in eval mode), history and the record.

    Raises:
        ValueError: unknown method/task/step, or no training image for the step.
    """
    if method not in METHODS_NOW and not (step == 0 and method in STEP0_NAMES):
        raise ValueError(f"method {method!r} is not available; choose one of {METHODS_NOW}")
    if step == 0 and method in METHOD_NAMES:
        method = step0_name(method)
    if sum(x is not None for x in (replay, synthetic, weak)) > 1:
        raise ValueError("pass at most one of replay= (stored exemplars), synthetic= (DeepInversion) and weak= (SEAM)")
    if step == 0:
        replay = synthetic = weak = None  # step 0 has nothing to replay and full masks; it stays shared
    run_name, shown = method, method
    if replay is not None:
        run_name, shown = f"{method}+mem-{replay.tag}", replay_method_name(method)
    elif synthetic is not None:
        run_name, shown = synthetic_run_name(method, synthetic), f"{method}+di"
    elif weak is not None:
        run_name, shown = weak_run_name(method, weak), f"{method}-s"
    split = IncrementalSplit(cfg.dataset, cfg.task, step, cfg.setting)
    if split.is_offline and method != "offline":
        raise ValueError(f"task {cfg.task} is offline; use method='offline'")
    clean_once(cfg.checkpoint_path, print_fn)  # what killed processes or a full disk left behind
    device = cfg.torch_device()
    train_base, val_base = base_datasets(cfg, split)
    cache = cfg.checkpoint_path / "splits"
    t0 = time.perf_counter()
    train_set = split.train_dataset(train_base.with_transforms(train_transforms(cfg.crop_size)), cache,
                                    progress=progress, void_label=cfg.void_label)
    log_timing("data", time.perf_counter() - t0, what="step split")

    ckpt = checkpoint_file(cfg, step, run_name)
    loss_fn, tracker, sampler_fn, memory_info, mem_set = None, None, None, None, None
    if step == 0:
        torch.manual_seed(cfg.seed)
        model = build_model(cfg, split)
        if method == "step0":  # importance for EWC/PI/RW, so step 0 stays shared by every method
            tracker = ImportanceTracker(model, importance_file(ckpt))
        elif method == "step0-bce":  # LwF-MC's sigmoid classifier (MiB: BCE from step 0 on)
            loss_fn = get_method("lwf-mc").step0_loss_fn(cfg.aux_weight)
    else:
        prev = IncrementalSplit(cfg.dataset, cfg.task, step - 1, cfg.setting)
        spec = get_method(method, task=cfg.task)
        prev_ckpt = checkpoint_file(cfg, step - 1, run_name if step > 1 else spec.step0)
        model = BiSeNet(prev.classes_per_step, cfg.backbone, "")
        for attempt in range(2):
            if not prev_ckpt.is_file():
                print_fn(f"step {step - 1} is not trained yet; training it first")
                train_step(cfg, step=step - 1, method=method, notebook=notebook, progress=progress,
                           print_fn=print_fn, record=record, evaluate_now=evaluate_now, replay=replay,
                           synthetic=synthetic, weak=weak)
            try:
                load_checkpoint(prev_ckpt, model)
                importance = load_importance(prev_ckpt) if spec.regularizer is not None else None
                break
            except CorruptCheckpoint as e:  # moved aside, then step - 1 is retrained once (which also
                if attempt:  # rebuilds its EWC/PI/RW importance: it is accumulated while that step trains)
                    raise
                for bad in dict.fromkeys([e.path or prev_ckpt, prev_ckpt]):
                    if bad.is_file():
                        print_fn(f"{e}\n  moved aside to {quarantine(bad).name}" if bad == (e.path or prev_ckpt)
                                 else f"  {bad.name} moved aside too ({quarantine(bad).name}): it is retrained "
                                      "with its importance")
        if replay is not None:
            memory = step_memory(cfg, step, run_name, replay, prev, train_base, model, progress=progress)
            memory_info = memory.summary(train_base)
            if replay.old_labels_on_new:  # the seed code's variant: old classes keep their labels
                train_set = train_set.with_target_lut(annotated_lut(split.eval_lut(), split.num_seen))
            mem_set, share = memory.dataset(split, train_base, train_transforms(cfg.crop_size)), replay.share
            print_fn(f"  memory: {memory_info['images']} images, {memory_info['bytes'] / 1e6:.2f} MB, "
                     f"{replay.share:.0%} of each batch replayed")
        if weak is not None:  # image-level labels only: SEAM pseudo-labels replace the masks
            pseudo = step_pseudo_labels(cfg, step, weak, split, prev, train_base, model,
                                        run_name if step > 1 else spec.step0,
                                        fuse=weak.fuse_old and spec.uses_old_model, progress=progress,
                                        print_fn=print_fn)
            train_set = pseudo.dataset(train_set, split.eval_lut())
            memory_info = {**pseudo.summary(), "seam": weak.to_dict()}
            quality = pseudo.quality()
            weak_fields = {"pseudo_new": _fraction(quality[memory_info["used"]]["miou_new"]),
                           "pseudo_chance_new": _fraction(quality["chance"]["miou_new"])}
        old_model, penalty = None, None
        if spec.uses_old_model or synthetic is not None:  # a frozen copy of step t-1
            old_model = copy.deepcopy(model).to(device).eval().requires_grad_(False)
        if spec.regularizer is not None:
            penalty = ParameterPenalty(spec.regularizer, old_model, importance, spec.weights["reg"],
                                       pi_estimator=cfg.pi_estimator)
        torch.manual_seed(cfg.seed + step)  # new heads' init must not depend on what ran before
        model.add_step(len(split.new_classes))
        if spec.init_new_heads is not None:
            spec.init_new_heads(model, len(split.new_classes))
        if spec.regularizer is not None:  # keep tracking: the next step needs this step's importance
            tracker = ImportanceTracker(model, importance_file(ckpt), previous=importance)
        if synthetic is not None:  # synthesised from the step t-1 model, before this step trains
            smem = synthetic_memory(cfg, step, run_name if step > 1 else spec.step0, prev, old_model, synthetic,
                                    student=model.to(device), student_run=run_name, progress=progress,
                                    print_fn=print_fn)
            memory_info = {**smem.summary(), "settings": synthetic.to_dict()}
            mem_set = smem.dataset(split, train_base.info, train_transforms(cfg.crop_size), labels=synthetic.replay_labels)
            share = synthetic.share
            print_fn(f"  synthetic memory: {len(mem_set)} images, {share:.0%} of each batch replayed")
        if mem_set is not None:  # exemplars or synthetic images: a fixed share of every batch
            n_new, n_mem = len(train_set), len(mem_set)
            train_set = ConcatDataset([train_set, mem_set])
            sampler_fn = lambda g: ReplayBatchSampler(n_new, n_mem, cfg.batch_size, share, g)  # noqa: E731
        loss_fn = spec.loss_fn(old_model if spec.uses_old_model else None, sum(prev.classes_per_step),
                               cfg.aux_weight, penalty=penalty, aux=cfg.aux_next, distill_pixels=cfg.distill_pixels)

    key = cfg.training_key(step=step, method=run_name)
    run_dir = Path(cfg.run_dir)
    epochs, lr = cfg.epochs_at(step), cfg.lr_at(step)
    label = " ".join([cfg.dataset, cfg.task] + ([] if split.is_offline else [split.setting]) + [f"step {step}", run_name])
    print_fn(f"[{label}] {cfg.backbone}, {len(train_set)} training images, lr {lr}, batch {cfg.batch_size}, "
             f"{epochs} epochs")
    history = fit(model, train_set, epochs=epochs, batch_size=cfg.batch_size, lr=lr, momentum=cfg.momentum,
                  weight_decay=cfg.weight_decay, aux_weight=cfg.aux_weight, device=device, amp=cfg.amp,
                  num_workers=cfg.num_workers, seed=cfg.seed + step, checkpoint=ckpt, key=key, loss_fn=loss_fn,
                  log_dir=run_dir / "tensorboard" / f"{cfg.dataset}-{cfg.task}-{shown}-step{step}-{key_digest(key)}",
                  progress=progress, print_fn=print_fn, tracker=tracker, batch_sampler_fn=sampler_fn,
                  checkpoint_every=cfg.checkpoint_every, optimizer=cfg.optimizer, sync_bn=cfg.sync_bn)
    rec = None
    if evaluate_now:
        extra = {}
        if replay is not None:
            extra = {"variant": replay.tag, "replay": replay.to_dict(), "memory": memory_info}
        elif synthetic is not None:
            extra = {"variant": synthetic.tag, "synthetic": memory_info}
        elif weak is not None:
            extra = {"variant": weak.tag, "weak": memory_info, **weak_fields}
        rec = evaluate_step(cfg, model, split, val_base, method=shown, notebook=notebook, history=history,
                            checkpoint=ckpt, progress=progress, print_fn=print_fn, record=record, extra=extra)
    return StepOutcome(model.eval(), split, history, rec, ckpt, cfg)


def evaluate_step(cfg: RunConfig, model: BiSeNet, split: IncrementalSplit, val_base, *, method: str,
                  notebook: str, history: dict | None = None, checkpoint: Path | None = None,
                  progress: bool = True, print_fn: Callable = print, record: bool = True,
                  report_as: IncrementalSplit | None = None, extra: dict | None = None) -> dict:
    """Evaluate ``model`` on the validation images with the classes seen at ``split.step``.

    ``cfg.eval_unseen``: ``background`` scores every validation image, unseen classes counted as
    background; ``ignore`` is MiB's test protocol (fcdl94/MiB ``dataset/voc.py``, test split:
    only images holding a seen class, unseen classes ignored), recorded as ``eval_unseen``.

    Records one result (full images) and, if ``cfg.eval_crop``, a second one on MiB's
    resize + centre crop (field ``eval_protocol``). Returns the full-image record.

    Args:
        report_as: record the result as this step of an incremental task (its task, setting,
            step and old/new classes); Joint uses it to sit in the incremental tables.
        extra: further fields for the record (e.g. the replay variant and memory size).
    """
    device = cfg.torch_device()
    order = split.class_order[: split.num_seen]
    names = [val_base.info.class_names[c] for c in order]
    pos = {c: i for i, c in enumerate(order)}
    rep = report_as or split
    old = [pos[c] for c in rep.base_classes]
    new = [pos[c] for c in rep.added_classes]
    protocols = [("full", eval_transforms())]
    if cfg.eval_crop:
        protocols.append((f"centre-crop-{cfg.eval_crop}", centre_crop_transforms(cfg.eval_crop)))
    if record and checkpoint is not None and Path(checkpoint).is_file():
        # a re-run reusing a finished checkpoint also reuses its evaluation (same config, same
        # checkpoint file, recorded after the checkpoint was written): no second record, no waiting
        prior = results.load(cfg.run_dir)  # read once for every protocol
        found = [results.find_record(prior, newer_than_ns=Path(checkpoint).stat().st_mtime_ns,
                                     config=cfg.to_dict(), checkpoint=str(checkpoint), method=method,
                                     task=rep.task, step=rep.step, eval_protocol=protocol, **(extra or {}))
                 for protocol, _ in protocols]
        if all(found):
            print_fn(f"  eval reused from {Path(found[0]['_file']).name}: mIoU {100 * (found[0]['miou_all'] or 0):.1f}")
            return found[0]
    first = None
    data = split.eval_dataset(val_base, unseen=cfg.eval_unseen, cache_dir=cfg.checkpoint_path / "splits")
    for protocol, tf in protocols:
        ev = evaluate(model, data.with_transforms(tf), split.num_seen, device=device,
                      batch_size=max(1, cfg.batch_size), num_workers=cfg.num_workers, amp=cfg.amp,
                      progress=progress, desc=f"eval {protocol}")
        summary = ev["confusion"].summary(names, old, new if new else None)
        rec = dict(notebook=notebook, dataset=cfg.dataset, task=rep.task,
                   setting=rep.setting if not rep.is_offline else "offline", method=method, step=rep.step,
                   backbone=cfg.backbone, lr=cfg.lr_at(split.step), batch_size=cfg.batch_size,
                   eval_protocol=protocol, eval_split=eval_split(cfg.dataset), eval_unseen=cfg.eval_unseen,
                   config=cfg.to_dict(), **summary,
                   train_seconds=(history or {}).get("train_seconds"),
                   images_per_second=(history or {}).get("images_per_second"),
                   eval_images_per_second=ev["images_per_second"], eval_seconds=ev["seconds"],
                   loss_history=(history or {}).get("loss"),
                   checkpoint=str(checkpoint) if checkpoint else None, provenance=provenance(str(device)),
                   decisions={"train": ((history or {}).get("decisions") or [None])[-1], "eval": ev["decisions"]},
                   **(extra or {}))
        if record and is_main():  # with several processes, rank 0 writes the record
            rec["_file"] = str(results.record(cfg.run_dir, **rec))
        new_txt = "" if summary["miou_new"] is None else f"  new {100 * summary['miou_new']:.1f}"
        print_fn(f"  eval ({protocol}, {ev['images']} images): mIoU {100 * (summary['miou_all'] or 0):.1f}  old "
                 f"{100 * (summary['miou_old'] or 0):.1f}{new_txt}  pixel acc {100 * (summary['pixel_acc'] or 0):.1f}")
        first = first or rec
    return first


def joint_config(cfg: RunConfig) -> RunConfig:
    """The configuration of Joint for ``cfg.task``: one step with every class, on every image.

    Where the dataset's ``offline`` task already has the same classes and ids (VOC, shapes),
    Joint *is* that task, so it shares notebook 01's checkpoint of the same configuration;
    CamVid's Joint uses the incremental ids (``joint`` task: background + 11 classes).
    """
    classes = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).class_order
    task = "offline" if get_task(cfg.dataset, "offline") == [classes] else "joint"
    return cfg.replace(task=task)


def joint_step(cfg: RunConfig, *, notebook: str = "", progress: bool = True, print_fn: Callable = print,
               record: bool = True) -> StepOutcome:
    """Joint, the upper bound: offline training on all classes of ``cfg.task`` at once.

    The model is trained (or reused) once per dataset and configuration and recorded as method
    ``joint`` at the last step of ``cfg.task`` / ``cfg.setting``, with that task's old/new classes,
    so it sits in the same old/new/all tables as the incremental methods.
    """
    jcfg = joint_config(cfg)
    out = train_step(jcfg, step=0, method="offline", notebook=notebook, progress=progress, print_fn=print_fn,
                     evaluate_now=False)
    last = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).num_steps - 1
    target = IncrementalSplit(cfg.dataset, cfg.task, last, cfg.setting)
    _, val_base = base_datasets(jcfg, out.split)
    print_fn(f"[joint as {cfg.task} {cfg.setting}]")
    rec = evaluate_step(cfg, out.model, out.split, val_base, method="joint", notebook=notebook,
                        history=out.history, checkpoint=out.checkpoint, progress=progress, print_fn=print_fn,
                        record=record, report_as=target)
    return StepOutcome(out.model, target, out.history, rec, out.checkpoint, jcfg)


def run_incremental(cfg: RunConfig, methods: list[str], *, notebook: str = "", joint: bool = True,
                    progress: bool = True, print_fn: Callable = print) -> list[dict]:
    """Every step of ``cfg.task`` / ``cfg.setting`` for each method, plus Joint; one record per step.

    Step 0 is trained and evaluated once per step-0 family (recorded as method ``step0``, and
    ``step0-bce`` when LwF-MC is among the methods); each method then runs steps 1..T-1 from its
    own. Finished checkpoints are reused, so a second call trains nothing.

    Args:
        methods: names from :data:`incseg_lib.methods.METHOD_NAMES`.
        joint: also train/evaluate Joint (:func:`joint_step`) and record it at the last step.

    Returns:
        The full-image records, in training order.

    Raises:
        ValueError: an unknown method (before anything trains) or an offline task.
    """
    bad = [m for m in methods if m not in METHOD_NAMES]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {METHOD_NAMES} (Joint: joint=True)")
    num_steps = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).num_steps
    if num_steps < 2:
        raise ValueError(f"task {cfg.task!r} has one step; run_incremental needs an incremental task")
    kw = dict(notebook=notebook, progress=progress, print_fn=print_fn)
    families = list(dict.fromkeys(step0_name(m) for m in methods)) or ["step0"]
    records = [train_step(cfg, step=0, method=f, **kw).record for f in families]
    for m in methods:
        for step in range(1, num_steps):
            records.append(train_step(cfg, step=step, method=m, **kw).record)
    if joint:
        records.append(joint_step(cfg, **kw).record)
    return records


def grid_configs(cfg: RunConfig, backbones=None, lrs=None, batch_sizes=None) -> list[RunConfig]:
    """The hyperparameter grid backbone x learning rate x batch size (profile defaults where None)."""
    g = cfg.grid or {}
    backbones = backbones or g.get("backbones") or [cfg.backbone]
    lrs = lrs or g.get("lrs") or [cfg.lr]
    batch_sizes = batch_sizes or g.get("batch_sizes") or [cfg.batch_size]
    return [cfg.replace(backbone=b, lr=float(lr), batch_size=int(bs))
            for b, lr, bs in itertools.product(backbones, lrs, batch_sizes)]


def run_grid(configs: list[RunConfig], *, notebook: str, progress: bool = True,
             print_fn: Callable = print) -> list[StepOutcome]:
    """Train and evaluate each offline configuration (reusing finished checkpoints)."""
    return [train_step(c, step=0, method="offline", notebook=notebook, progress=progress, print_fn=print_fn)
            for c in configs]


def grid_table(outcomes: list[StepOutcome]):
    """DataFrame of a grid: backbone, lr, batch size, mIoU, pixel accuracy, time (like the seed report)."""
    import pandas as pd

    rows = []
    for o in outcomes:
        r = o.record
        rows.append({"backbone": r["backbone"], "lr": r["lr"], "batch_size": r["batch_size"],
                     "epochs": o.config.epochs, "mIoU %": round(100 * (r["miou_all"] or 0), 1),
                     "pixel acc %": round(100 * (r["pixel_acc"] or 0), 1),
                     "train s": round(r["train_seconds"] or 0, 1),
                     "train img/s": round(r["images_per_second"] or 0, 1)})
    return pd.DataFrame(rows).sort_values("mIoU %", ascending=False, ignore_index=True)


def load_step_model(cfg: RunConfig, step: int, method: str) -> BiSeNet:
    """The trained model of ``method`` after ``step`` (``joint``: the Joint model), in eval mode.

    Raises:
        FileNotFoundError: that step has not been trained with this configuration (names the file).
    """
    if method == "joint":
        jcfg = joint_config(cfg)
        split = IncrementalSplit(jcfg.dataset, jcfg.task, 0, jcfg.setting)
        ckpt = checkpoint_file(jcfg, 0, "offline")
    else:
        split = IncrementalSplit(cfg.dataset, cfg.task, step, cfg.setting)
        ckpt = checkpoint_file(cfg, step, method)
    model = BiSeNet(split.classes_per_step, cfg.backbone, "")
    load_checkpoint(ckpt, model)
    return model.eval()


def predictions_over_steps(cfg: RunConfig, methods: list[str], indices: list[int]) -> dict:
    """Predictions of the same validation images after every step, for each method.

    Returns:
        ``{"images": [(3, H, W) float], "truth": [(H, W) int64 with every class of the task],
        "palette", "class_names", "steps": {method: [[(H, W) int64 per image] per step]}}``;
        predicted ids are dataset class ids (step 0 is the shared model).
    """
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    last = IncrementalSplit(cfg.dataset, cfg.task, split0.num_steps - 1, cfg.setting)
    _, val_base = base_datasets(cfg, split0)
    val = last.eval_dataset(val_base).with_transforms(eval_transforms())
    order = torch.as_tensor(last.class_order)
    items = [val[i] for i in indices]
    images = [x for x, _ in items]
    truth = [order[torch.where(y == 255, 0, y)].masked_fill(y == 255, 255) for _, y in items]
    device = cfg.torch_device()
    steps = {}
    for m in methods:
        per_step = []
        for step in range(split0.num_steps):
            model = load_step_model(cfg, step, step0_name(m) if step == 0 else m).to(device)
            with torch.no_grad():
                per_step.append([order[model(x[None].to(device))["out"].argmax(1)[0].cpu()] for x in images])
        steps[m] = per_step
    return {"images": images, "truth": truth, "palette": val_base.info.palette,
            "class_names": val_base.info.class_names, "steps": steps}


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
            tcfg = cfg.replace(task=task, setting=setting)
            n = IncrementalSplit(cfg.dataset, task, 0, setting).num_steps
            for step in range(n):
                split = IncrementalSplit(cfg.dataset, task, step, setting)
                if train is None:
                    train, _ = base_datasets(tcfg, split)
                if len(split.train_indices(train, cfg.checkpoint_path / "splits", progress=progress)) == 0:
                    names = [train.info.class_names[c] for c in split.new_classes if c != 0]
                    empty.append(f"{task} {setting} step {step} ({', '.join(names)})")
    if empty:
        raise ValueError(f"no training image for {'; '.join(empty)} in {cfg.data_path}: no image holds those "
                         "classes" + (" without later classes (try the overlapped setting)" if "disjoint" in settings
                                      else "") + "; choose another task, or use a larger copy of the dataset")


def study_plan(cfg: RunConfig, tasks=None, settings=None, methods=None) -> dict:
    """Notebook 02's plan: tasks x settings x methods, the profile's where an argument is empty.

    Raises:
        ValueError: an unknown task, setting or method (names it and the valid ones).
    """
    from .tasks import SETTINGS, task_names

    plan = cfg.incremental or {}
    tasks = list(tasks or plan.get("tasks") or ["15-5"])
    settings = list(settings or plan.get("settings") or ["overlapped"])
    methods = list(methods or plan.get("methods") or ["ft", "mib"])
    for t in tasks:
        if t not in task_names(cfg.dataset) or t in ("offline", "joint"):
            raise ValueError(f"task {t!r} is not an incremental task of {cfg.dataset}; choose from "
                             f"{[n for n in task_names(cfg.dataset) if n not in ('offline', 'joint')]}")
    for s in settings:
        if s not in SETTINGS:
            raise ValueError(f"setting {s!r}; choose from {SETTINGS}")
    bad = [m for m in methods if m not in METHOD_NAMES]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {METHOD_NAMES} (Joint is added by joint=True)")
    return {"tasks": tasks, "settings": settings, "methods": methods}


def run_study(cfg: RunConfig, plan: dict, *, notebook: str = "", joint: bool = True, progress: bool = True,
              print_fn: Callable = print) -> list[dict]:
    """:func:`run_incremental` for every task and setting of ``plan`` (:func:`study_plan`)."""
    check_steps(cfg, plan["tasks"], plan["settings"])
    records = []
    for task in plan["tasks"]:
        for setting in plan["settings"]:
            records += run_incremental(cfg.replace(task=task, setting=setting), plan["methods"], notebook=notebook,
                                       joint=joint, progress=progress, print_fn=print_fn)
    return records


def task_overview(cfg: RunConfig):
    """DataFrame of ``cfg.task``'s steps: new classes and training images per setting."""
    import pandas as pd

    rows = []
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    train_base, _ = base_datasets(cfg, split0)
    for step in range(split0.num_steps):
        row = {"step": step}
        for setting in ("disjoint", "overlapped"):
            sp = IncrementalSplit(cfg.dataset, cfg.task, step, setting)
            row[f"images ({setting})"] = len(sp.train_indices(train_base, cfg.checkpoint_path / "splits"))
        names = [train_base.info.class_names[c] for c in split0.steps[step]]
        row["new classes"] = ", ".join(names if len(names) <= 6 else names[:5] + [f"... ({len(names)})"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("step")


def example_images(cfg: RunConfig, n: int = 2) -> list[int]:
    """Validation images that show background shift: a step-0 class *and* a later class if possible."""
    import numpy as np

    split = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    _, val = base_datasets(cfg, split)
    pres = val.class_presence(cfg.checkpoint_path / "splits")
    old = [c for c in split.base_classes if c != 0]
    new = [c for s in split.steps[1:] for c in s]
    has_new = pres[:, new].any(1)
    both = np.flatnonzero(pres[:, old].any(1) & has_new).tolist()
    rest = [i for i in np.flatnonzero(has_new).tolist() if i not in both]
    picks = (both + rest)[:n]
    return picks or list(range(min(n, len(val))))


def model_and_data(rec: dict, data_root: str = ""):
    """The model, evaluation images and palette behind a results record (for galleries/viewers).

    Args:
        data_root: read the images from here instead of the record's ``data_root``.

    Returns:
        ``(model, dataset, palette)``: the model of ``rec["checkpoint"]`` in eval mode; the
        evaluation split labelled with the model's output indices (full images, normalised); the
        palette reordered to those indices.

    Raises:
        FileNotFoundError: the record has no checkpoint, or its file is gone (names it).
        CorruptCheckpoint: the checkpoint is truncated, not incseg's, or holds code (names it).
    """
    ckpt = rec.get("checkpoint")
    if not ckpt or not Path(ckpt).is_file():
        raise FileNotFoundError(f"the checkpoint of this record ({ckpt}) is not on this machine; "
                                "re-run its notebook (it reuses or retrains the step)")
    state = load_torch(ckpt)  # tensors and plain values only: a planted pickle is refused, not run
    if not isinstance(state, dict) or not {"model", "classes_per_step", "backbone"} <= set(state):
        raise CorruptCheckpoint(f"checkpoint {ckpt} is not an incseg checkpoint (no model, classes or backbone)", ckpt)
    model = BiSeNet(state["classes_per_step"], state["backbone"], "")
    model.load_state_dict(state["model"])
    cfg = RunConfig(**{k: v for k, v in rec["config"].items() if k in RunConfig.__dataclass_fields__})
    if data_root:
        cfg = cfg.replace(data_root=data_root)
    if rec["method"] == "joint":
        cfg = joint_config(cfg.replace(task=rec["task"]))
        split = IncrementalSplit(cfg.dataset, cfg.task, 0, "overlapped")
    elif rec.get("setting") == "offline":
        split = IncrementalSplit(cfg.dataset, rec["task"], 0, "overlapped")
        cfg = cfg.replace(task=rec["task"])
    else:
        cfg = cfg.replace(task=rec["task"], setting=rec["setting"])
        split = IncrementalSplit(cfg.dataset, cfg.task, rec["step"], cfg.setting)
    _, val_base = base_datasets(cfg, split)
    data = split.eval_dataset(val_base).with_transforms(eval_transforms())
    palette = val_base.info.palette[split.class_order[: split.num_seen]]
    return model.eval(), data, palette


# ---------------------------------------------------------------------- rehearsal study (notebook 03)
def replay_plan(cfg: RunConfig, tasks=None, settings=None, sizes=None, methods=None) -> dict:
    """Notebook 03's plan: tasks x settings x memory sizes x methods (the profile's where empty).

    ``size_effect`` (from the profile's ``replay``, default True) says whether the expected
    findings claim that a larger memory keeps more (:func:`~incseg_lib.findings.replay_findings`).

    Raises:
        ValueError: an unknown task/setting/method or a non-positive size.
    """
    base = study_plan(cfg.replace(incremental=cfg.replay or cfg.incremental), tasks, settings,
                      methods or (cfg.replay or {}).get("methods") or ["ft", "mib"])
    sizes = [int(s) for s in (sizes or (cfg.replay or {}).get("sizes") or [1, 5])]
    if any(s <= 0 for s in sizes):
        raise ValueError(f"memory sizes must be positive numbers of exemplars, got {sizes}")
    return {**base, "sizes": sizes, "size_effect": bool((cfg.replay or {}).get("size_effect", True))}


def run_replay_study(cfg: RunConfig, plan: dict, *, mode: str = "per-class", strategy: str = "class-balanced",
                     share: float = 0.5, old_labels_on_new: bool = False, notebook: str = "",
                     progress: bool = True, print_fn: Callable = print) -> tuple[list[dict], dict]:
    """MiB without memory (the reference) and every method with every memory size of ``plan``.

    Returns:
        ``(records, memories)``: every full-image record (every step), and the last step's
        :class:`~incseg_lib.exemplars.ExemplarMemory` per ``(task, setting, method, size)``.
    """
    check_steps(cfg, plan["tasks"], plan["settings"])
    records, memories = [], {}
    kw = dict(notebook=notebook, progress=progress, print_fn=print_fn)
    for task in plan["tasks"]:
        for setting in plan["settings"]:
            tcfg = cfg.replace(task=task, setting=setting)
            records += run_incremental(tcfg, ["mib"], joint=False, **kw)
            last = IncrementalSplit(cfg.dataset, task, 0, setting).num_steps - 1
            for size in plan["sizes"]:
                replay = ReplayConfig(budget=size, mode=mode, strategy=strategy, share=share,
                                      old_labels_on_new=old_labels_on_new)
                for m in plan["methods"]:
                    for step in range(1, last + 1):
                        records.append(train_step(tcfg, step=step, method=m, replay=replay, **kw).record)
                    run_name = f"{m}+mem-{replay.tag}"
                    memories[(task, setting, m, size)] = ExemplarMemory.load(
                        checkpoint_file(tcfg, last, run_name).parent / "memory.json")
    return records, memories


# ---------------------------------------------------------------------- DeepInversion study (notebook 04)
def inversion_plan(cfg: RunConfig, tasks=None, settings=None, methods=None) -> dict:
    """Notebook 04's plan: tasks x settings x methods replayed with synthetic images.

    Defaults: one task per dataset (VOC and shapes ``15-5``, CamVid ``8-3``: one synthesis from the
    step-0 model), overlapped, methods ``mib`` and ``ft`` (recorded ``mib+di``, ``ft+di``).

    Raises:
        ValueError: an unknown task, setting or method.
    """
    default = {"tasks": ["8-3" if cfg.dataset == "camvid" else "15-5"], "settings": ["overlapped"],
               "methods": ["mib", "ft"]}
    return study_plan(cfg.replace(incremental=default), tasks, settings, methods)


def run_inversion_study(cfg: RunConfig, plan: dict, inversion: InversionConfig, *, smib: bool = True,
                        notebook: str = "", progress: bool = True,
                        print_fn: Callable = print) -> tuple[list[dict], dict]:
    """Each method of ``plan`` and MiB without memory (the references), each method with DeepInversion
    replay, and SMiB with as many real exemplars per class as synthetic images per class (same
    share of each batch).

    Returns:
        ``(records, memories)``: every full-image record, and the step-1 synthetic memory per
        ``(task, setting)`` (the images made from the step-0 model).
    """
    check_steps(cfg, plan["tasks"], plan["settings"])
    records, memories = [], {}
    kw = dict(notebook=notebook, progress=progress, print_fn=print_fn)
    for task in plan["tasks"]:
        for setting in plan["settings"]:
            tcfg = cfg.replace(task=task, setting=setting)
            references = ["mib"] + [m for m in plan["methods"] if m != "mib"]  # each method without memory
            records += run_incremental(tcfg, references, joint=False, **kw)
            last = IncrementalSplit(cfg.dataset, task, 0, setting).num_steps - 1
            for m in plan["methods"]:
                for step in range(1, last + 1):
                    records.append(train_step(tcfg, step=step, method=m, synthetic=inversion, **kw).record)
            if smib:
                replay = ReplayConfig(budget=inversion.images_per_class, share=inversion.share)
                for step in range(1, last + 1):
                    records.append(train_step(tcfg, step=step, method="mib", replay=replay, **kw).record)
            first = plan["methods"][0]
            memories[(task, setting)] = find_synthetic_memory(
                tcfg, 1, step0_name(first), inversion, student_run=synthetic_run_name(first, inversion))
    return records, memories


# ---------------------------------------------------------------------- weak supervision (notebook 05)
def weak_plan(cfg: RunConfig, tasks=None, settings=None, methods=None) -> dict:
    """Notebook 05's plan: tasks x settings x methods trained on SEAM pseudo-labels.

    Defaults: VOC and shapes ``15-5``, CamVid ``8-3`` (one SEAM per step), overlapped, ``ft`` and
    ``mib`` (recorded ``ft-s``, ``mib-s``).

    Raises:
        ValueError: an unknown task, setting or method.
    """
    default = {"tasks": ["8-3" if cfg.dataset == "camvid" else "15-5"], "settings": ["overlapped"],
               "methods": ["ft", "mib"]}
    return study_plan(cfg.replace(incremental=default), tasks, settings, methods)


def weak_config(cfg: RunConfig, **overrides) -> SeamConfig:
    """The :class:`~incseg_lib.seam.SeamConfig` of ``cfg``'s profile; ``init`` defaults to ``imagenet``
    where the BiSeNet starts from ImageNet weights, else ``step0`` (no ImageNet weights to be had),
    which also takes the BiSeNet's backbone unless one is given."""
    from .seam import seam_config

    if not overrides.get("init"):
        overrides["init"] = "imagenet" if cfg.pretrained == "imagenet" else "step0"
    if overrides["init"] == "step0" and not overrides.get("backbone"):
        overrides["backbone"] = cfg.backbone  # it copies the BiSeNet's ResNet
    return seam_config(cfg.profile, seed=cfg.seed, **{k: v for k, v in overrides.items() if k != "seed"})


def run_weak_study(cfg: RunConfig, plan: dict, seam: SeamConfig, *, notebook: str = "", progress: bool = True,
                   print_fn: Callable = print, joint_weak: bool = True) -> tuple[list[dict], dict]:
    """Each method of ``plan`` with masks (the references, and Joint) and on SEAM pseudo-labels, and
    Joint-S (:func:`weak_joint_step`, on the pseudo-labels of MiB-S where MiB is in the plan) unless
    ``joint_weak`` is off.

    Returns:
        ``(records, pseudo)``: every full-image record, and the step-1 :class:`~incseg_lib.seam.PseudoLabels`
        the first method trained on, per ``(task, setting)``.
    """
    check_steps(cfg, plan["tasks"], plan["settings"])
    records, pseudo = [], {}
    kw = dict(notebook=notebook, progress=progress, print_fn=print_fn)
    for task in plan["tasks"]:
        for setting in plan["settings"]:
            tcfg = cfg.replace(task=task, setting=setting)
            records += run_incremental(tcfg, plan["methods"], joint=True, **kw)
            last = IncrementalSplit(cfg.dataset, task, 0, setting).num_steps - 1
            for m in plan["methods"]:
                for step in range(1, last + 1):
                    records.append(train_step(tcfg, step=step, method=m, weak=seam, **kw).record)
            first = next((m for m in plan["methods"] if get_method(m).uses_old_model), plan["methods"][0])
            pseudo[(task, setting)] = find_pseudo_labels(tcfg, 1, first, seam)
            if joint_weak:
                records.append(weak_joint_step(tcfg, seam, source=first, **kw).record)
    return records, pseudo


def weak_joint_step(cfg: RunConfig, seam: SeamConfig, *, source: str = "mib", notebook: str = "",
                    progress: bool = True, print_fn: Callable = print, record: bool = True) -> StepOutcome:
    """Joint-S, the weakly supervised upper bound of the seed project's table: Joint (offline on every
    class of ``cfg.task`` at once) where the images of the steps >= 1 carry pseudo-labels instead of
    masks, and every other image its mask.

    The pseudo-labels are those ``source``'s weak run trained on (:func:`find_pseudo_labels`; for
    ``mib``, SEAM's new classes fused with the old model's old classes), so Joint-S differs from
    MiB-S only in learning every class at once; an image of a new step keeps its pseudo-label even
    where it also belongs to an earlier step (its new-class pixels have no mask). Recorded as
    ``joint-s`` at the last step of ``cfg.task`` (like Joint), trained as long as Joint; the
    checkpoint is keyed by Joint's training key plus the pseudo-labels' keys.

    Raises:
        FileNotFoundError: ``source`` has not been trained on pseudo-labels yet (run its weak steps first).
    """
    from .data.common import class_id_lut

    jcfg = joint_config(cfg)
    last = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).num_steps - 1
    labels = {step: find_pseudo_labels(cfg, step, source, seam) for step in range(1, last + 1)}
    masks = {n: pl.folder / "masks" / f"{n}.png" for pl in labels.values() for n in pl.manifest["ids"]}
    split = IncrementalSplit(jcfg.dataset, jcfg.task, 0, jcfg.setting)
    train_base, val_base = base_datasets(jcfg, split)
    full = split.train_dataset(train_base, jcfg.checkpoint_path / "splits", progress=progress,
                               void_label=jcfg.void_label)
    keep = [i for i, n in enumerate(full.ids) if n not in masks]
    weak_idx = [i for i, n in enumerate(train_base.ids) if n in masks]
    weak_view = train_base.subset(weak_idx)._view(mask_paths=[masks[train_base.ids[i]] for i in weak_idx],
                                                  raw_lut=class_id_lut(train_base.info),
                                                  target_lut=split.train_lut(jcfg.void_label))
    transforms = train_transforms(jcfg.crop_size)
    train_set = ConcatDataset([full.subset(keep).with_transforms(transforms), weak_view.with_transforms(transforms)])
    run_name = f"joint-s+{source}-{key_digest(seam.to_dict())}"
    key = {**jcfg.training_key(step=0, method="offline"), "weak": {s: pl.key for s, pl in labels.items()}}
    ckpt = (jcfg.checkpoint_path / jcfg.dataset / f"{jcfg.task}-all" / "joint-s" / f"{jcfg.backbone}-{key_digest(key)}"
            / "step-0.pt")
    torch.manual_seed(jcfg.seed)
    model = build_model(jcfg, split)
    epochs, lr = jcfg.epochs_at(0), jcfg.lr_at(0)
    print_fn(f"[{cfg.dataset} joint-s ({cfg.task} {cfg.setting})] {len(keep)} images with masks + {len(weak_idx)} "
             f"with pseudo-labels, lr {lr}, {epochs} epochs")
    history = fit(model, train_set, epochs=epochs, batch_size=jcfg.batch_size, lr=lr, momentum=jcfg.momentum,
                  weight_decay=jcfg.weight_decay, aux_weight=jcfg.aux_weight, device=jcfg.torch_device(), amp=jcfg.amp,
                  num_workers=jcfg.num_workers, seed=jcfg.seed, checkpoint=ckpt, key=key,
                  log_dir=Path(cfg.run_dir) / "tensorboard" / f"{cfg.dataset}-{cfg.task}-joint-s-{key_digest(key)}",
                  progress=progress, print_fn=print_fn, checkpoint_every=jcfg.checkpoint_every,
                  optimizer=jcfg.optimizer)
    target = IncrementalSplit(cfg.dataset, cfg.task, last, cfg.setting)
    rec = evaluate_step(cfg, model, split, val_base, method="joint-s", notebook=notebook, history=history,
                        checkpoint=ckpt, progress=progress, print_fn=print_fn, record=record, report_as=target,
                        extra={"variant": seam.tag, "joint_weak": {"source": run_name, "masked_images": len(keep),
                                                                   "pseudo_images": len(weak_idx)}})
    return StepOutcome(model.eval(), target, history, rec, ckpt, jcfg)


def find_pseudo_labels(cfg: RunConfig, step: int, method: str, seam: SeamConfig) -> PseudoLabels:
    """The stored pseudo-labels ``method`` trained on at ``step`` (made by :func:`train_step` with ``weak=``).

    Raises:
        FileNotFoundError: that step has not been trained on pseudo-labels yet.
    """
    spec = get_method(method)
    prev_run = weak_run_name(method, seam) if step > 1 else spec.step0
    labels = pseudo_label_store(cfg, step, seam, prev_run, seam.fuse_old and spec.uses_old_model)
    if not labels.complete:
        raise FileNotFoundError(f"no pseudo-labels of {cfg.task} {cfg.setting} step {step} for {method} with "
                                f"{seam.tag} in {labels.folder}; run the step with weak= first")
    return labels


def seam_examples(cfg: RunConfig, pseudo: PseudoLabels, seam: SeamConfig, n: int = 4, step: int = 1) -> list[dict]:
    """A few training images of ``step`` with what SEAM made of them, for :func:`~incseg_lib.viz.seam_gallery`.

    Returns:
        Dicts with ``image`` ``(3,H,W)`` uint8, ``mask`` (ground truth, dataset ids), ``cam`` and
        ``pcm`` ``(H,W)`` (the maximum over the labelled classes of the normalised maps), ``pseudo``
        (dataset ids, as trained on) and ``classes`` (the image-level label, names).
    """
    from .seam import cam_scores

    split = IncrementalSplit(cfg.dataset, cfg.task, step, cfg.setting)
    train_base, _ = base_datasets(cfg, split)
    idx, new, labels = step_image_labels(cfg, split, train_base)
    images = train_base.subset(idx)
    ckpt = pseudo.folder.parent.parent / f"seam-step-{step}.pt"
    model = SeamNet(len(new), seam.backbone, seam.output_stride, "")
    load_checkpoint(ckpt, model)
    device = cfg.torch_device()
    model.to(device).eval()
    picks = np.linspace(0, len(idx) - 1, min(n, len(idx))).round().astype(int).tolist()
    masks = pseudo.as_dataset(images)
    out = []
    for j in picks:
        image, mask = images[j]
        x, _ = eval_transforms()(image, mask)
        scores = cam_scores(model, x.to(device), torch.as_tensor(labels[j]), seam)
        out.append({"image": torch.as_tensor(image), "mask": np.asarray(mask), "cam": scores["cam"].max(0).values.cpu().numpy(),
                    "pcm": scores["pcm"].max(0).values.cpu().numpy(), "pseudo": masks.read_mask(j),
                    "classes": [train_base.info.class_names[c] for c, y in zip(new, labels[j]) if y]})
    return out
