"""Results records: one JSON record per evaluation under <run dir>/results/, written atomically and
never overwritten; read back defensively (a malformed record is named and skipped); the newest per
run and the last step of each."""

from __future__ import annotations

import json
import os
import platform
import re
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from .. import __version__
from ..env import provenance, runs_root
from ..store import create_new
from ..tasks import get_task

REQUIRED = (
    "notebook",
    "dataset",
    "task",
    "setting",
    "method",
    "step",
    "backbone",
    "iou",
    "miou_all",
    "miou_old",
    "miou_new",
    "pixel_acc",
)


def record(run_dir: str | Path, **fields) -> Path:
    """Append one result record to ``run_dir/results/`` and return its path.

    Required fields: notebook, dataset, task, setting, method, step, backbone, iou (per-class IoU
    by class name), miou_all, miou_old, miou_new, pixel_acc. Useful extras: config, train_seconds,
    images_per_second, eval_images_per_second, decisions (memory layout and precision of training
    and evaluation). Added automatically: device (if not given), ``provenance``
    (:func:`incseg_lib.env.provenance`: incseg version and commit, Python, torch, torchvision, numpy,
    device, threads; if not given), library version, timestamp, hostname-free platform string.

    Raises:
        ValueError: a required field is missing.
    """

    missing = [k for k in REQUIRED if k not in fields]
    if missing:
        raise ValueError(f"result record is missing {missing}")

    rec = dict(fields)
    rec.setdefault("device", _device_name())
    rec.setdefault("provenance", provenance())
    rec["version"] = __version__
    rec["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    rec["created_ns"] = time.time_ns()  # orders records written within one second
    rec["platform"] = f"{platform.system()} {platform.machine()} python {platform.python_version()}"
    folder = Path(run_dir) / "results"
    folder.mkdir(parents=True, exist_ok=True)
    # a file name every file system takes (Windows and Drive refuse "|", ":" ...): the name is for a
    # person listing the folder; the record's fields, not its name, are what is read back
    stem = "_".join(
        re.sub(r"[^A-Za-z0-9._+=-]", "-", str(rec[k])) for k in ("notebook", "dataset", "task", "setting", "method")
    )
    name = f"{time.strftime('%Y%m%d-%H%M%S')}_{stem}_step{rec['step']}_{uuid.uuid4().hex[:8]}.json"
    final = folder / name
    create_new(final, json.dumps(rec, indent=1, sort_keys=True, default=str).encode(), what="a results record")
    return final


def load(run_dirs: str | Path | Iterable[str | Path]) -> list[dict]:
    """Every record under ``run_dir/results`` (one folder or several), oldest first.

    Each record gets ``_file`` (its path) and ``_run`` (its run folder's name). A file that is not
    a readable record (truncated, edited by hand, a field of the wrong type: :func:`check_record`)
    is skipped with a warning naming it and the field, and a run folder that does not exist is
    named, so one bad file never stops notebook 06, the report or the findings.
    """
    import warnings

    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    out = []
    for rd in run_dirs:
        if not Path(rd).is_dir():
            warnings.warn(f"run folder {rd} does not exist; no records from it", stacklevel=2)
            continue
        for p in sorted((Path(rd) / "results").glob("*.json")):
            try:
                rec = check_record(json.loads(p.read_text()))
            except (ValueError, OSError, UnicodeDecodeError) as e:
                warnings.warn(f"results record {p} is unreadable ({str(e)[:100]}); skipped", stacklevel=2)
                continue
            rec["_file"], rec["_run"] = str(p), Path(rd).name
            out.append(rec)
    return sorted(out, key=lambda r: (r.get("created_ns", 0), r.get("created", ""), r["_file"]))


_TEXT_FIELDS = ("notebook", "dataset", "task", "setting", "method", "backbone")
_OPTIONAL_TYPES = {
    "eval_protocol": str,
    "checkpoint": str,
    "config": dict,
    "provenance": dict,
    "variant": str,
    "train_seconds": (int, float),
    "created_ns": int,
    "loss_history": list,
    "loss_terms": dict,
}


def check_record(rec) -> dict:
    """``rec`` if it has a results record's shape: an object with every :data:`REQUIRED` field, text
    where text belongs, an integer step, mIoU and pixel accuracy numbers in [0, 1] or null, per-class
    IoU an object, and the optional fields notebook 06 and the report read of their type or null.

    Raises:
        ValueError: naming the first field that is off and what it holds.
    """
    if not isinstance(rec, dict):
        raise ValueError(f"not a record (a JSON object) but {type(rec).__name__}")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise ValueError(f"missing {missing}")
    for k in _TEXT_FIELDS:
        if not isinstance(rec[k], str):
            raise ValueError(f"field {k} is {rec[k]!r}, not text")
    if not isinstance(rec["step"], int) or isinstance(rec["step"], bool) or rec["step"] < 0:
        raise ValueError(f"field step is {rec['step']!r}, not a step number")
    for k in ("miou_all", "miou_old", "miou_new", "pixel_acc"):
        v = rec[k]
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1):
            raise ValueError(f"field {k} is {v!r}, not a number in [0, 1] or null")
    if not isinstance(rec["iou"], dict):
        raise ValueError(f"field iou is {type(rec['iou']).__name__}, not an object of per-class IoU")
    if "config" in rec and not isinstance(rec["config"], dict):  # written as an object, never null
        raise ValueError(f"field config is {rec['config']!r}, not an object")
    for k, kind in _OPTIONAL_TYPES.items():
        if rec.get(k) is not None and not isinstance(rec[k], kind):
            raise ValueError(f"field {k} is {rec[k]!r}, not {getattr(kind, '__name__', 'a number')}")
    return rec


def find_record(records: list[dict], *, newer_than_ns: int = 0, **match) -> dict | None:
    """The newest of ``records`` (as :func:`load` returns them) whose fields equal ``match``, or None.

    ``match`` values are compared after a JSON round trip (a config dict with tuples matches its
    stored lists). ``newer_than_ns``: ignore records created before this time (ns since the
    epoch), e.g. before the checkpoint they evaluated was last written.
    """
    want = json.loads(json.dumps(match, sort_keys=True, default=str))
    for rec in reversed(records):
        if rec.get("created_ns", 0) >= newer_than_ns and all(rec.get(k) == v for k, v in want.items()):
            return rec
    return None


def _device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def latest(
    records: list[dict], keys=("dataset", "task", "setting", "method", "step", "backbone", "eval_protocol", "variant")
) -> list[dict]:
    """Keep the newest record per ``keys`` (a re-run notebook supersedes its earlier records)."""
    out: dict = {}
    for r in sorted(records, key=lambda r: (r.get("created_ns", 0), r.get("_file", ""))):
        out[tuple(str(r.get(k)) for k in keys)] = r
    return list(out.values())


def select(records: list[dict], dataset: str, task: str, setting: str, protocol: str = "full") -> list[dict]:
    """The newest records (:func:`latest`) of one ``dataset`` / ``task`` / ``setting`` evaluated
    under ``protocol`` (``full`` or ``crop``; records without one are ``full``): every table of a
    task starts from these."""
    return [
        r
        for r in latest(records)
        if (r.get("dataset"), r.get("task"), r.get("setting")) == (dataset, task, setting)
        and r.get("eval_protocol", "full") == protocol
    ]


def final_steps(records: list[dict], protocol: str = "full") -> list[dict]:
    """The newest record of each method at the last step of its task (incremental tasks only)."""

    keep = []
    for r in latest([r for r in records if r.get("eval_protocol", "full") == protocol]):
        if r.get("setting") == "offline":
            continue
        try:
            last = len(get_task(r["dataset"], r["task"])) - 1
        except ValueError:
            continue
        if r["step"] == last and r["method"] != "step0":
            keep.append(r)
    return keep


def find_runs(root: str | Path = "") -> list[Path]:
    """Run folders under ``root`` (itself included; default :func:`~incseg_lib.config.runs_root`)
    that hold a ``results/`` folder, sorted by name."""

    root = Path(root) if root else runs_root()
    found = [p.parent for p in root.glob("**/results") if p.is_dir()]
    return sorted(set(found))
