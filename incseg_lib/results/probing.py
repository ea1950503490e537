"""Notebook 07's tables from the records: a run's old-class mIoU beside its linear probe's after
every step, and EWF's weight slider (old against new mIoU per weight)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..config import step0_name
from ..runs import probe_name
from .labels import display_name
from .records import select


def probe_frame(
    records: Iterable[Mapping], dataset: str, task: str, setting: str, methods: Sequence[str], part: str = "old"
):
    """``part`` mIoU (%) after every step of each of ``methods`` and of its probe: DataFrame, rows
    ``FT``, ``FT (probe)``, ... (display names), columns the steps (ints); step 0 is the step-0
    model the method started from (``step0``; DFT*'s own) and its probe (``step0|probe``); NaN
    where a step has no record. ``part``: ``old``, ``new`` or ``all``.

    Raises:
        ValueError: an unknown ``part``.
    """
    import pandas as pd

    if part not in ("old", "new", "all"):
        raise ValueError(f"part {part!r}; choose old, new or all")
    recs = select(records, dataset, task, setting)
    value = {(r.method, r.step): r.get(f"miou_{part}") for r in recs}
    steps = sorted({r.step for r in recs})
    rows = {}
    for m in methods:
        first = step0_name(m)  # the step 0 the run started from (DFT*'s has every head pre-allocated)
        for name, step0 in ((m, first), (probe_name(m), probe_name(first))):
            row = {s: value.get((name if s > 0 else step0, s)) for s in steps}
            if any(v is not None for k, v in row.items() if k > 0):
                rows[display_name(name)] = {s: (100 * v if v is not None else float("nan")) for s, v in row.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=steps)


def fusion_frame(records: Iterable[Mapping], dataset: str, task: str, setting: str, method: str = "mib"):
    """EWF's slider on ``<method>+ewf``: one row per weight of the new model ``w`` (ascending), columns
    ``w``, ``old``, ``new``, ``all`` (mIoU %) and ``default`` (EWF's own weight); empty when no
    sweep ran."""
    import pandas as pd

    prefix = f"{method}+ewf|w="
    recs = [r for r in select(records, dataset, task, setting) if str(r.method).startswith(prefix)]
    rows = [
        {
            "w": float(r["ewf_w"]),
            "old": 100 * (r.miou_old or 0.0),
            "new": 100 * (r.miou_new or 0.0),
            "all": 100 * (r.miou_all or 0.0),
            "default": bool(r.get("ewf_default")),
        }
        for r in recs
        if r.get("ewf_w") is not None
    ]
    frame = pd.DataFrame(rows, columns=["w", "old", "new", "all", "default"])
    return frame.sort_values("w").reset_index(drop=True)
