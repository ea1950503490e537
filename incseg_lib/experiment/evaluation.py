"""Evaluating a step: the model on the validation images with the classes seen so far, recorded (and
reused when the same checkpoint was already evaluated with the same configuration)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import results
from ..config import RunConfig
from ..data import eval_split
from ..data.transforms import centre_crop_transforms, eval_transforms
from ..engine import evaluate, is_main
from ..env import provenance
from ..log import get_logger
from ..models import BiSeNet
from ..tasks import IncrementalSplit

log = get_logger(__name__)


def evaluate_step(
    cfg: RunConfig,
    model: BiSeNet,
    split: IncrementalSplit,
    val_base,
    *,
    method: str,
    notebook: str,
    history: dict | None = None,
    checkpoint: Path | None = None,
    progress: bool = True,
    record: bool = True,
    report_as: IncrementalSplit | None = None,
    extra: dict | None = None,
) -> results.Record:
    """Evaluate ``model`` on the validation images with the classes seen at ``split.step``.

    ``cfg.eval_unseen``: ``background`` scores every validation image, unseen classes counted as
    background; ``ignore`` is MiB's test protocol (fcdl94/MiB ``dataset/voc.py``, test split:
    only images holding a seen class, unseen classes ignored), recorded as ``eval_unseen``.

    Records one result (full images) and, if ``cfg.eval_crop``, a second one on MiB's
    resize + centre crop (field ``eval_protocol``). Returns the full-image record (a
    :class:`~incseg_lib.results.Record`, as :func:`~incseg_lib.results.load` reads it back).

    Args:
        report_as: record the result as this step of an incremental task (its task, setting,
            step and old/new classes); Joint uses it to sit in the incremental tables.
        extra: further fields for the record (e.g. the replay variant and memory size).
    """
    rep = report_as or split
    # the validation files by content: a relabelled mask makes an earlier evaluation stale
    extra = {**(extra or {}), "eval_data": val_base.content_fingerprint()}
    protocols = [("full", eval_transforms())]
    if cfg.eval_crop:
        protocols.append((f"centre-crop-{cfg.eval_crop}", centre_crop_transforms(cfg.eval_crop)))
    if record and checkpoint is not None and Path(checkpoint).is_file():
        # a re-run reusing a finished checkpoint also reuses its evaluation (same config, same
        # checkpoint file, recorded after the checkpoint was written): no second record, no waiting
        prior = results.load(cfg.run_dir) if Path(cfg.run_dir).is_dir() else []  # read once for every protocol
        match = dict(config=cfg.to_dict(), checkpoint=str(checkpoint), method=method, task=rep.task, step=rep.step)
        match.update(extra or {})
        since = Path(checkpoint).stat().st_mtime_ns
        found = [  # this notebook's own record first, else another notebook's
            results.find_record(prior, newer_than_ns=since, eval_protocol=protocol, notebook=notebook, **match)
            or results.find_record(prior, newer_than_ns=since, eval_protocol=protocol, **match)
            for protocol, _ in protocols
        ]
        if all(found):
            log.info(f"  eval reused from {Path(found[0].file).name}: mIoU {100 * (found[0].miou_all or 0):.1f}")
            if found[0].notebook != notebook:
                # another notebook of this run evaluated it first: this one keeps a copy of its own, so
                # that its tables and the report (the lowest-numbered notebook that uses a model lists
                # it) do not depend on which notebook of two lanes got there first
                return [_copy_record(rec, notebook, cfg.run_dir) for rec in found][0]  # every protocol's
            return found[0]
    first = None
    data = split.eval_dataset(val_base, unseen=cfg.eval_unseen, cache_dir=cfg.checkpoint_path / "splits")
    for protocol, tf in protocols:
        rec = _evaluate_once(
            cfg,
            model,
            split,
            rep,
            val_base,
            data.with_transforms(tf),
            protocol,
            method,
            notebook,
            history,
            checkpoint,
            progress,
            extra,
        )
        images = rec.pop("_images")
        if record and is_main():  # with several processes, rank 0 writes the record
            rec = _as_written(results.record(cfg.run_dir, **rec), cfg.run_dir)
        else:
            rec = results.Record.from_dict(rec)
        new_txt = "" if rec.miou_new is None else f"  new {100 * rec.miou_new:.1f}"
        log.info(
            f"  eval ({protocol}, {images} images): mIoU {100 * (rec.miou_all or 0):.1f}  old "
            f"{100 * (rec.miou_old or 0):.1f}{new_txt}  pixel acc {100 * (rec.pixel_acc or 0):.1f}"
        )
        first = first or rec
    return first


def _evaluate_once(
    cfg, model, split, rep, val_base, data, protocol, method, notebook, history, checkpoint, progress, extra
) -> dict:
    """One protocol's evaluation as a results record (not yet written); ``_images`` says how many."""
    device = cfg.torch_device()
    order = split.class_order[: split.num_seen]
    pos = {c: i for i, c in enumerate(order)}
    old, new = [pos[c] for c in rep.base_classes], [pos[c] for c in rep.added_classes]
    ev = evaluate(
        model,
        data,
        split.num_seen,
        device=device,
        batch_size=max(1, cfg.batch_size),
        num_workers=cfg.num_workers,
        amp=cfg.amp,
        progress=progress,
        desc=f"eval {protocol}",
    )
    summary = ev["confusion"].summary([val_base.info.class_names[c] for c in order], old, new if new else None)
    history = history or {}
    return dict(
        notebook=notebook,
        dataset=cfg.dataset,
        task=rep.task,
        setting=rep.setting if not rep.is_offline else "offline",
        method=method,
        step=rep.step,
        backbone=cfg.backbone,
        lr=(extra or {}).get("step_protocol", {}).get("lr", cfg.lr_at(split.step)),
        batch_size=cfg.batch_size,
        eval_protocol=protocol,
        eval_split=eval_split(cfg.dataset),
        eval_unseen=cfg.eval_unseen,
        config=cfg.to_dict(),
        **summary,
        train_seconds=history.get("train_seconds"),
        images_per_second=history.get("images_per_second"),
        eval_images_per_second=ev["images_per_second"],
        eval_seconds=ev["seconds"],
        loss_history=history.get("loss"),
        # each term of the method's loss per epoch, as fit logged it (the training-curve figures)
        loss_terms={k[len("loss_") :]: v for k, v in history.items() if k.startswith("loss_") and v} or None,
        checkpoint=str(checkpoint) if checkpoint else None,
        provenance=provenance(str(device)),
        decisions={"train": (history.get("decisions") or [None])[-1], "eval": ev["decisions"]},
        _images=ev["images"],
        **(extra or {}),
    )


def _copy_record(rec: results.Record, notebook: str, run_dir) -> results.Record:
    """``rec`` recorded again under ``notebook`` (the same numbers, no evaluation), naming the file it
    copies in ``reused_from``; returned as :func:`incseg_lib.results.load` reads it."""
    automatic = ("version", "created", "created_ns", "platform")
    fields = {k: v for k, v in rec.data.items() if k not in automatic}
    path = results.record(run_dir, **{**fields, "notebook": notebook, "reused_from": Path(rec.file).name})
    return _as_written(path, run_dir)


def _as_written(path: Path, run_dir) -> results.Record:
    """The record just written to ``path``, as :func:`incseg_lib.results.load` reads it."""
    return results.Record.from_dict(json.loads(path.read_text()), file=str(path), run=Path(run_dir).name)
