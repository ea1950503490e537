"""One training step, end to end: data split -> model -> fit -> evaluate -> results record.

This is DESIGN.md's data flow in one call, shared by every notebook::

    RunConfig -> dataset -> IncrementalSplit(task, step, setting) -> BiSeNet -> engine.fit
      -> checkpoints/.../step-k.pt -> engine.evaluate -> metrics -> results.record

Checkpoints are keyed by everything that determines them (``RunConfig.training_key``); step 0
is shared by every method of a task and setting, and a finished checkpoint is reused instead of
retrained.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import results
from .config import RunConfig, key_digest
from .data import eval_split, load_dataset, train_split
from .data.transforms import centre_crop_transforms, eval_transforms, train_transforms
from .engine import evaluate, fit, load_checkpoint
from .methods import METHOD_NAMES, get_method
from .models import BiSeNet
from .tasks import IncrementalSplit

METHODS_NOW = ("offline",) + METHOD_NAMES


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
    setting = cfg.setting if cfg.task != "offline" else "all"
    folder = "step0" if step == 0 else method
    return (cfg.checkpoint_path / cfg.dataset / f"{cfg.task}-{setting}" / folder
            / f"{cfg.backbone}-{key_digest(key)}" / f"step-{step}.pt")


def base_datasets(cfg: RunConfig, split: IncrementalSplit):
    """The unfiltered train and evaluation datasets of ``cfg`` (class ids, no transforms)."""
    incremental = not split.is_offline
    train = load_dataset(cfg.dataset, train_split(cfg.dataset, cfg.voc_split), root=cfg.data_root,
                         incremental=incremental, max_images=cfg.max_train_images)
    val = load_dataset(cfg.dataset, eval_split(cfg.dataset), root=cfg.data_root, incremental=incremental,
                       max_images=cfg.max_val_images)
    return train, val


def build_model(cfg: RunConfig, split: IncrementalSplit) -> BiSeNet:
    """A BiSeNet with heads for steps ``0..split.step`` (pretrained backbone only at step 0)."""
    return BiSeNet(split.classes_per_step, cfg.backbone, cfg.pretrained if split.step == 0 else "")


def train_step(cfg: RunConfig, *, step: int = 0, method: str = "offline", notebook: str = "",
               progress: bool = True, print_fn: Callable = print, record: bool = True) -> StepOutcome:
    """Train (or reuse) step ``step`` of ``cfg.task`` with ``method`` and record its evaluation.

    Args:
        method: ``offline`` (all classes, the Joint-style upper bound) or, for steps >= 1, one of
            :data:`incseg_lib.methods.METHOD_NAMES` (``ft``, ``lwf``, ``lwf-mc``, ``ilt``, ``mib``).
        notebook: name stored in the results record (e.g. ``01_offline_bisenet_tuning``).

    Returns:
        :class:`StepOutcome` with the trained model (in eval mode), history and the record.

    Raises:
        ValueError: unknown method/task/step, or no training image for the step.
    """
    if method not in METHODS_NOW:
        raise ValueError(f"method {method!r} is not available; choose one of {METHODS_NOW}")
    split = IncrementalSplit(cfg.dataset, cfg.task, step, cfg.setting)
    if split.is_offline and method != "offline":
        raise ValueError(f"task {cfg.task} is offline; use method='offline'")
    device = cfg.torch_device()
    train_base, val_base = base_datasets(cfg, split)
    cache = cfg.checkpoint_path / "splits"
    train_set = split.train_dataset(train_base.with_transforms(train_transforms(cfg.crop_size)), cache,
                                    progress=progress)

    loss_fn = None
    if step == 0:
        model = build_model(cfg, split)
    else:
        prev = IncrementalSplit(cfg.dataset, cfg.task, step - 1, cfg.setting)
        prev_ckpt = checkpoint_file(cfg, step - 1, method)
        if not prev_ckpt.is_file():
            print_fn(f"step {step - 1} is not trained yet; training it first")
            train_step(cfg, step=step - 1, method=method, notebook=notebook, progress=progress,
                       print_fn=print_fn, record=record)
        model = BiSeNet(prev.classes_per_step, cfg.backbone, "")
        load_checkpoint(prev_ckpt, model)
        spec = get_method(method, task=cfg.task)
        old_model = None
        if spec.uses_old_model:  # a frozen copy of step t-1
            old_model = copy.deepcopy(model).to(device).eval().requires_grad_(False)
        model.add_step(len(split.new_classes))
        if spec.init_new_heads is not None:
            spec.init_new_heads(model, len(split.new_classes))
        loss_fn = spec.loss_fn(old_model, sum(prev.classes_per_step), cfg.aux_weight)

    ckpt = checkpoint_file(cfg, step, method)
    key = cfg.training_key(step=step, method=method)
    run_dir = Path(cfg.run_dir)
    label = " ".join([cfg.dataset, cfg.task] + ([] if split.is_offline else [split.setting]) + [f"step {step}", method])
    print_fn(f"[{label}] {cfg.backbone}, {len(train_set)} training images, lr "
             f"{cfg.lr if step == 0 else cfg.lr_next}, batch {cfg.batch_size}, {cfg.epochs} epochs")
    history = fit(model, train_set, epochs=cfg.epochs, batch_size=cfg.batch_size,
                  lr=cfg.lr if step == 0 else cfg.lr_next, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                  aux_weight=cfg.aux_weight, device=device, amp=cfg.amp, num_workers=cfg.num_workers,
                  seed=cfg.seed + step, checkpoint=ckpt, key=key, loss_fn=loss_fn,
                  log_dir=run_dir / "tensorboard" / f"{cfg.dataset}-{cfg.task}-{method}-step{step}-{key_digest(key)}",
                  progress=progress, print_fn=print_fn)
    rec = evaluate_step(cfg, model, split, val_base, method=method, notebook=notebook, history=history,
                        checkpoint=ckpt, progress=progress, print_fn=print_fn, record=record)
    return StepOutcome(model.eval(), split, history, rec, ckpt, cfg)


def evaluate_step(cfg: RunConfig, model: BiSeNet, split: IncrementalSplit, val_base, *, method: str,
                  notebook: str, history: dict | None = None, checkpoint: Path | None = None,
                  progress: bool = True, print_fn: Callable = print, record: bool = True) -> dict:
    """Evaluate ``model`` on every validation image with the classes seen at ``split.step``.

    Records one result (full images) and, if ``cfg.eval_crop``, a second one on MiB's
    resize + centre crop (field ``eval_protocol``). Returns the full-image record.
    """
    device = cfg.torch_device()
    order = split.class_order[: split.num_seen]
    names = [val_base.info.class_names[c] for c in order]
    pos = {c: i for i, c in enumerate(order)}
    old = [pos[c] for c in split.base_classes]
    new = [pos[c] for c in split.added_classes]
    protocols = [("full", eval_transforms())]
    if cfg.eval_crop:
        protocols.append((f"centre-crop-{cfg.eval_crop}", centre_crop_transforms(cfg.eval_crop)))
    first = None
    for protocol, tf in protocols:
        ev = evaluate(model, split.eval_dataset(val_base).with_transforms(tf), split.num_seen, device=device,
                      batch_size=max(1, cfg.batch_size), num_workers=cfg.num_workers, amp=cfg.amp,
                      progress=progress, desc=f"eval {protocol}")
        summary = ev["confusion"].summary(names, old, new if new else None)
        rec = dict(notebook=notebook, dataset=cfg.dataset, task=cfg.task,
                   setting=split.setting if not split.is_offline else "offline", method=method, step=split.step,
                   backbone=cfg.backbone, lr=cfg.lr if split.step == 0 else cfg.lr_next, batch_size=cfg.batch_size,
                   eval_protocol=protocol, eval_split=eval_split(cfg.dataset), config=cfg.to_dict(), **summary,
                   train_seconds=(history or {}).get("train_seconds"),
                   images_per_second=(history or {}).get("images_per_second"),
                   eval_images_per_second=ev["images_per_second"], loss_history=(history or {}).get("loss"),
                   checkpoint=str(checkpoint) if checkpoint else None)
        if record:
            rec["_file"] = str(results.record(cfg.run_dir, **rec))
        new_txt = "" if summary["miou_new"] is None else f"  new {100 * summary['miou_new']:.1f}"
        print_fn(f"  eval ({protocol}, {ev['images']} images): mIoU {100 * (summary['miou_all'] or 0):.1f}  old "
                 f"{100 * (summary['miou_old'] or 0):.1f}{new_txt}  pixel acc {100 * (summary['pixel_acc'] or 0):.1f}")
        first = first or rec
    return first


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
