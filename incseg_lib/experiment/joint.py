"""Joint, the upper bound: every class at once on every image (sharing notebook 01's offline model
where the task's classes are the dataset's), and Joint-S (Joint on the weak run's pseudo-labels)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import ConcatDataset

from ..config import RunConfig
from ..data.common import class_id_lut
from ..data.transforms import train_transforms
from ..engine import fit
from ..log import get_logger
from ..seam import SeamConfig
from ..store import key_digest
from ..tasks import IncrementalSplit
from . import keys
from .evaluation import evaluate_step
from .sources import find_pseudo_labels
from .step import StepOutcome, base_datasets, fit_options, joint_config, saving, step_network, train_step

log = get_logger(__name__)


def joint_step(cfg: RunConfig, *, notebook: str = "", progress: bool = True, record: bool = True) -> StepOutcome:
    """Joint, the upper bound: offline training on all classes of ``cfg.task`` at once.

    The model is trained (or reused) once per dataset and configuration and recorded as method
    ``joint`` at the last step of ``cfg.task`` / ``cfg.setting``, with that task's old/new classes,
    so it sits in the same old/new/all tables as the incremental methods.
    """
    jcfg = joint_config(cfg)
    out = train_step(jcfg, step=0, method="offline", notebook=notebook, progress=progress, evaluate_now=False)
    last = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).num_steps - 1
    target = IncrementalSplit(cfg.dataset, cfg.task, last, cfg.setting)
    _, val_base = base_datasets(jcfg, out.split)
    log.info(f"[joint as {cfg.task} {cfg.setting}]")
    rec = evaluate_step(
        cfg,
        out.model,
        out.split,
        val_base,
        method="joint",
        notebook=notebook,
        history=out.history,
        checkpoint=out.checkpoint,
        progress=progress,
        record=record,
        report_as=target,
    )
    return StepOutcome(out.model, target, out.history, rec, out.checkpoint, jcfg)


def weak_joint_step(
    cfg: RunConfig,
    seam: SeamConfig,
    *,
    source: str = "mib",
    notebook: str = "",
    progress: bool = True,
    record: bool = True,
) -> StepOutcome:
    """Joint-S, the weakly supervised upper bound of the seed project's table: Joint (offline on every
    class of ``cfg.task`` at once) where the images of the steps >= 1 carry pseudo-labels instead of
    masks, and every other image its mask.

    The pseudo-labels are those ``source``'s weak run trained on (:func:`.sources.find_pseudo_labels`;
    for ``mib``, SEAM's new classes fused with the old model's old classes), so Joint-S differs from
    MiB-S only in learning every class at once; an image of a new step keeps its pseudo-label even
    where it also belongs to an earlier step (its new-class pixels have no mask). Recorded as
    ``joint-s`` at the last step of ``cfg.task`` (like Joint), trained as long as Joint; the
    checkpoint is keyed by Joint's training key plus the pseudo-labels' keys.

    Raises:
        FileNotFoundError: ``source`` has not been trained on pseudo-labels yet (run its weak steps first).
    """
    jcfg = joint_config(cfg)
    last = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).num_steps - 1
    labels = {step: find_pseudo_labels(cfg, step, source, seam) for step in range(1, last + 1)}
    masks = {n: pl.folder / "masks" / f"{n}.png" for pl in labels.values() for n in pl.manifest["ids"]}
    split = IncrementalSplit(jcfg.dataset, jcfg.task, 0, jcfg.setting)
    train_base, val_base = base_datasets(jcfg, split)
    full = split.train_dataset(
        train_base, jcfg.checkpoint_path / "splits", progress=progress, void_label=jcfg.void_label
    )
    keep = [i for i, n in enumerate(full.ids) if n not in masks]
    weak_idx = [i for i, n in enumerate(train_base.ids) if n in masks]
    weak_view = train_base.subset(weak_idx)._view(
        mask_paths=[masks[train_base.ids[i]] for i in weak_idx],
        raw_lut=class_id_lut(train_base.info),
        target_lut=split.train_lut(jcfg.void_label),
    )
    transforms = train_transforms(jcfg.crop_size)
    train_set = ConcatDataset([full.subset(keep).with_transforms(transforms), weak_view.with_transforms(transforms)])
    ckpt, key = keys.joint_weak_checkpoint(jcfg, labels)
    torch.manual_seed(jcfg.seed)
    model = step_network(jcfg, split)
    options = fit_options(jcfg, 0)
    log.info(
        f"[{cfg.dataset} Joint-S ({cfg.task} {cfg.setting})] {len(keep)} images with masks + {len(weak_idx)} "
        f"with pseudo-labels, lr {options['schedule'].lr}, {options['schedule'].epochs} epochs"
    )
    history = fit(
        model,
        train_set,
        **options,
        saving=saving(jcfg, ckpt, key),
        log_dir=Path(cfg.run_dir) / "tensorboard" / f"{cfg.dataset}-{cfg.task}-joint-s-{key_digest(key)}",
        progress=progress,
    )
    target = IncrementalSplit(cfg.dataset, cfg.task, last, cfg.setting)
    extra = {
        "variant": seam.tag,
        "joint_weak": {
            "source": keys.joint_weak_run_name(source, seam),
            "masked_images": len(keep),
            "pseudo_images": len(weak_idx),
        },
    }
    rec = evaluate_step(
        cfg,
        model,
        split,
        val_base,
        method="joint-s",
        notebook=notebook,
        history=history,
        checkpoint=ckpt,
        progress=progress,
        record=record,
        report_as=target,
        extra=extra,
    )
    return StepOutcome(model.eval(), target, history, rec, ckpt, jcfg)
