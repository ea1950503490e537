"""Results records: one JSON record per evaluation under <run dir>/results/, written atomically and
never overwritten; read back defensively (a malformed record is named and skipped) as typed
:class:`Record` objects; the newest per run, one task's records, the last step of each."""

from __future__ import annotations

import json
import os
import platform
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from .. import __version__
from ..data import dataset_info
from ..env import provenance, runs_root
from ..metrics import harmonic_iou
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


@dataclass(frozen=True, eq=False)
class Record(Mapping):
    """One evaluation of one model: the typed form of a results record (:func:`load`,
    :func:`as_records`).

    The readers use the attributes: the run's identity (``notebook`` that recorded it, ``dataset``,
    ``task`` such as ``15-5``, ``setting`` overlapped / disjoint / offline, ``method`` its run name,
    ``step`` 0..n-1, ``backbone``, ``variant`` or None), the mIoU fractions in [0, 1] or None
    (``miou_all``, ``miou_old``, ``miou_new``, ``pixel_acc``; ``iou`` per class name, in class-id
    order: :func:`class_order`), how it was evaluated (``eval_protocol``: ``full`` images or MiB's
    ``centre-crop-<size>``; ``checkpoint``), and what produced it (``config``, ``provenance``,
    ``train_seconds``, ``created_ns``, the training curves). Every other field a notebook recorded
    (``pseudo_new``, ``probe_of``, ``ewf_w`` ...) is read with :meth:`get`, as is the whole record:
    a Record is also a read-only mapping over the fields as written in the JSON file (plus
    ``_file`` and ``_run``), so code written for the dictionaries keeps working.
    """

    notebook: str
    dataset: str
    task: str
    setting: str
    method: str
    step: int
    backbone: str
    iou: dict
    miou_all: float | None
    miou_old: float | None
    miou_new: float | None
    pixel_acc: float | None
    eval_protocol: str = "full"
    variant: str | None = None
    checkpoint: str | None = None
    config: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    train_seconds: float | None = None
    created: str = ""
    created_ns: int = 0
    loss_history: list | None = None
    loss_terms: dict | None = None
    file: str = ""  # the JSON file it was read from ("" for one not written)
    run: str = ""  # the name of its run folder
    data: dict = field(default_factory=dict, repr=False)  # every field as written

    @classmethod
    def from_dict(cls, rec: Mapping, *, file: str = "", run: str = "") -> Record:
        """The Record of a record's JSON object (``_file`` / ``_run`` in it, or given).

        Raises:
            ValueError: ``rec`` is not a record (:func:`check_record` names the field).
        """
        if isinstance(rec, Record):
            return rec
        rec = check_record(dict(rec) if isinstance(rec, Mapping) else rec)
        data = {k: v for k, v in rec.items() if k not in ("_file", "_run")}
        typed = {k: data[k] for k in REQUIRED}
        typed["iou"] = {n: data["iou"][n] for n in class_order(data["dataset"], data["iou"])}  # JSON sorts by name
        typed.update((k, data[k]) for k in _TYPED if k in data and k not in typed and data[k] is not None)
        return cls(
            **typed,
            file=str(rec.get("_file", file) or ""),
            run=str(rec.get("_run", run) or ""),
            data=data,
        )

    @property
    def hiou(self) -> float | None:
        """hIoU in [0, 1]: the harmonic mean of old- and new-class mIoU
        (:func:`~incseg_lib.metrics.harmonic_iou`); None without both."""
        return harmonic_iou(self.miou_old, self.miou_new)

    def to_dict(self) -> dict:
        """The record as its JSON object (with ``_file`` and ``_run`` where known)."""
        return dict(self)

    # the mapping view: the fields as written, then where it was read from
    def _view(self) -> dict:
        extra = {k: v for k, v in (("_file", self.file), ("_run", self.run)) if v}
        return {**self.data, **extra}

    def __getitem__(self, key: str) -> Any:
        return self._view()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())

    def __contains__(self, key: object) -> bool:
        return key in self._view()


_TYPED = {f.name for f in dataclass_fields(Record)} - {"data", "file", "run"}


def class_order(dataset: str, names) -> list[str]:
    """``names`` sorted by class id (records store their per-class IoU by name, keys sorted by JSON);
    names the dataset does not have come last, and an unknown dataset keeps the given order."""
    try:
        ids = {n: i for i, n in enumerate(dataset_info(dataset, incremental=True).class_names)}
    except ValueError:
        return list(names)
    return sorted(names, key=lambda n: (ids.get(n, len(ids)), n))


def as_records(records: Iterable[Mapping]) -> list[Record]:
    """``records`` as :class:`Record` objects (dictionaries are checked and converted, Records kept).

    Raises:
        ValueError: one of them is not a record; the message names the field.
    """
    return [Record.from_dict(r) for r in records]


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


def load(run_dirs: str | Path | Iterable[str | Path]) -> list[Record]:
    """Every record under ``run_dir/results`` (one folder or several), oldest first, as
    :class:`Record` objects.

    Each record knows its ``file`` (its path) and ``run`` (its run folder's name). A file that is not
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
                rec = Record.from_dict(json.loads(p.read_text()), file=str(p), run=Path(rd).name)
            except (ValueError, OSError, UnicodeDecodeError) as e:
                warnings.warn(f"results record {p} is unreadable ({str(e)[:100]}); skipped", stacklevel=2)
                continue
            out.append(rec)
    return sorted(out, key=lambda r: (r.created_ns, r.created, r.file))


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


def find_record(records: Iterable[Mapping], *, newer_than_ns: int = 0, **match) -> Record | None:
    """The newest of ``records`` (as :func:`load` returns them) whose fields equal ``match``, or None.

    ``match`` values are compared after a JSON round trip (a config dict with tuples matches its
    stored lists). ``newer_than_ns``: ignore records created before this time (ns since the
    epoch), e.g. before the checkpoint they evaluated was last written.
    """
    want = json.loads(json.dumps(match, sort_keys=True, default=str))
    for rec in reversed(as_records(records)):
        if rec.created_ns >= newer_than_ns and all(rec.get(k) == v for k, v in want.items()):
            return rec
    return None


def _device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def latest(
    records: Iterable[Mapping],
    keys=("dataset", "task", "setting", "method", "step", "backbone", "eval_protocol", "variant"),
) -> list[Record]:
    """Keep the newest record per ``keys`` (Record attributes or other recorded fields): a re-run
    notebook supersedes its earlier records."""
    out: dict = {}
    for r in sorted(as_records(records), key=lambda r: (r.created_ns, r.file)):
        out[tuple(str(_field(r, k)) for k in keys)] = r
    return list(out.values())


def _field(r: Record, key: str):
    """``r``'s attribute ``key`` (with its default) or, for a field Record does not type, the
    recorded value or None."""
    return getattr(r, key) if key in _TYPED else r.get(key)


def select(records: Iterable[Mapping], dataset: str, task: str, setting: str, protocol: str = "full") -> list[Record]:
    """The newest records (:func:`latest`) of one ``dataset`` / ``task`` / ``setting`` evaluated
    under ``protocol`` (``full`` or ``crop``; records without one are ``full``): every table of a
    task starts from these."""
    return [
        r
        for r in latest(records)
        if (r.dataset, r.task, r.setting, r.eval_protocol) == (dataset, task, setting, protocol)
    ]


def final_steps(records: Iterable[Mapping], protocol: str = "full") -> list[Record]:
    """The newest record of each method at the last step of its task (incremental tasks only)."""

    keep = []
    for r in latest(records):
        if r.setting == "offline" or r.eval_protocol != protocol:
            continue
        try:
            last = len(get_task(r.dataset, r.task)) - 1
        except ValueError:
            continue
        if r.step == last and r.method != "step0":
            keep.append(r)
    return keep


def find_runs(root: str | Path = "") -> list[Path]:
    """Run folders under ``root`` (itself included; default :func:`~incseg_lib.config.runs_root`)
    that hold a ``results/`` folder, sorted by name."""

    root = Path(root) if root else runs_root()
    found = [p.parent for p in root.glob("**/results") if p.is_dir()]
    return sorted(set(found))
