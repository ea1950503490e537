"""One builder for the results records tests make by hand (tables, figures, findings)."""

from __future__ import annotations


def make_record(
    method: str,
    step: int,
    old: float | None,
    new: float | None = None,
    all_: float | None = None,
    *,
    dataset: str = "voc",
    task: str = "15-5",
    setting: str = "overlapped",
    created: int = 0,
    iou: dict | None = None,
    **fields,
) -> dict:
    """A record with the fields :func:`incseg_lib.results.record` writes and the readers use: mIoU as
    fractions (``all_`` defaults to ``old``), ``created_ns`` for ordering, IoU per class (default:
    background at ``old``); ``fields`` add or replace any other (``notebook``, ``replay``, ``_file`` ...)."""
    return {
        "notebook": "02_mib_incremental",
        "dataset": dataset,
        "task": task,
        "setting": setting,
        "method": method,
        "step": step,
        "backbone": "resnet18",
        "eval_protocol": "full",
        "miou_old": old,
        "miou_new": new,
        "miou_all": old if all_ is None else all_,
        "pixel_acc": 0.9,
        "created_ns": created,
        "iou": iou or {"background": old},
        "train_seconds": 10.0,
        **fields,
    }
