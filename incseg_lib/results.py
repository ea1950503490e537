"""The results registry: one JSON record per evaluation, under ``<run dir>/results/``.

Records are written atomically and never overwritten (each gets a unique name; creating an
existing name fails). Notebook 06 and the HTML report read them back with :func:`load`.
"""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from pathlib import Path
from typing import Iterable

REQUIRED = ("notebook", "dataset", "task", "setting", "method", "step", "backbone", "iou", "miou_all",
            "miou_old", "miou_new", "pixel_acc")


def record(run_dir: str | Path, **fields) -> Path:
    """Append one result record to ``run_dir/results/`` and return its path.

    Required fields: notebook, dataset, task, setting, method, step, backbone, iou (per-class IoU
    by class name), miou_all, miou_old, miou_new, pixel_acc. Useful extras: config, train_seconds,
    images_per_second, eval_images_per_second. Added automatically: device (if not given),
    library version, timestamp, hostname-free platform string.

    Raises:
        ValueError: a required field is missing.
    """
    from . import __version__

    missing = [k for k in REQUIRED if k not in fields]
    if missing:
        raise ValueError(f"result record is missing {missing}")
    rec = dict(fields)
    rec.setdefault("device", _device_name())
    rec["version"] = __version__
    rec["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    rec["created_ns"] = time.time_ns()  # orders records written within one second
    rec["platform"] = f"{platform.system()} {platform.machine()} python {platform.python_version()}"
    folder = Path(run_dir) / "results"
    folder.mkdir(parents=True, exist_ok=True)
    stem = "_".join(str(rec[k]).replace("/", "-") for k in ("notebook", "dataset", "task", "setting", "method"))
    name = f"{time.strftime('%Y%m%d-%H%M%S')}_{stem}_step{rec['step']}_{uuid.uuid4().hex[:8]}.json"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(json.dumps(rec, indent=1, sort_keys=True, default=str))
    final = folder / name
    try:
        os.link(tmp, final)  # fails if ``final`` exists: never overwrite
        tmp.unlink()
    except FileExistsError:
        tmp.unlink()
        raise
    except OSError:  # no hard links (e.g. a Google Drive mount): the uuid keeps the name unique
        if final.exists():
            tmp.unlink()
            raise FileExistsError(f"result record {final} already exists") from None
        os.replace(tmp, final)
    return final


def load(run_dirs: str | Path | Iterable[str | Path]) -> list[dict]:
    """Every record under ``run_dir/results`` (one folder or several), oldest first.

    Each record gets ``_file`` (its path) and ``_run`` (its run folder's name).
    """
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    out = []
    for rd in run_dirs:
        for p in sorted((Path(rd) / "results").glob("*.json")):
            rec = json.loads(p.read_text())
            rec["_file"], rec["_run"] = str(p), Path(rd).name
            out.append(rec)
    return sorted(out, key=lambda r: (r.get("created_ns", 0), r.get("created", ""), r["_file"]))


def table(records: list[dict], columns: Iterable[str] = ("notebook", "dataset", "task", "setting", "method", "step",
                                                         "backbone", "lr", "batch_size", "miou_old", "miou_new",
                                                         "miou_all", "pixel_acc", "train_seconds")):
    """A pandas DataFrame of ``records`` with mIoU and accuracy as percentages (1 decimal, NaN if absent)."""
    import pandas as pd

    rows = []
    for r in records:
        row = {c: r.get(c) for c in columns}
        for c in ("miou_old", "miou_new", "miou_all", "pixel_acc"):
            if c in row:
                row[c] = float("nan") if row[c] is None else round(100 * row[c], 1)
        if row.get("train_seconds") is not None:
            row["train_seconds"] = round(row["train_seconds"], 1)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(columns))


def iou_table(records: list[dict], label_keys=("method", "task", "setting", "step")):
    """Per-class IoU (%) as a DataFrame: one row per record, one column per class."""
    import pandas as pd

    rows = {" ".join(str(r.get(k)) for k in label_keys): {c: (None if v is None else round(100 * v, 1))
                                                           for c, v in r["iou"].items()} for r in records}
    return pd.DataFrame.from_dict(rows, orient="index")


def _device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
