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
from collections.abc import Iterable
from pathlib import Path

from . import __version__, runs
from .config import step0_name
from .data import dataset_info
from .env import provenance, runs_root
from .metrics import harmonic_iou
from .store import create_new
from .tasks import get_task

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
    stem = "_".join(str(rec[k]).replace("/", "-") for k in ("notebook", "dataset", "task", "setting", "method"))
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


def records_table(
    records: list[dict],
    columns: Iterable[str] = (
        "notebook",
        "dataset",
        "task",
        "setting",
        "method",
        "variant",
        "step",
        "eval_protocol",
        "backbone",
        "lr",
        "batch_size",
        "miou_old",
        "miou_new",
        "miou_all",
        "pixel_acc",
        "train_seconds",
    ),
):
    """A pandas DataFrame of ``records`` with mIoU and accuracy as percentages (1 decimal, NaN if absent).

    ``variant`` (e.g. the memory of a replay run, ``5pc-class-balanced``) and ``eval_protocol`` tell
    apart records that share method and step; absent values are left empty.
    """
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

    rows = {
        " ".join(str(r.get(k)) for k in label_keys): {
            c: (None if v is None else round(100 * v, 1)) for c, v in r["iou"].items()
        }
        for r in records
    }
    df = pd.DataFrame.from_dict(rows, orient="index")
    return df[class_order(records[0].get("dataset", ""), df.columns)] if records and len(df.columns) else df


def _device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


# ---------------------------------------------------------------------- incremental tables
display_name = runs.display_name  # the field's name for a recorded run (``smib`` -> ``SMiB``)


# ---------------------------------------------------------------------- labels a person reads
_SKIPPED_CONFIG = {"run_dir", "data_root", "checkpoint_dir", "device", "num_workers", "profile"}


def _describe(r: dict) -> list[tuple[str, str]]:
    """What tells ``r`` apart from other records of its method, most telling first: ``(key, text)``."""
    parts: list[tuple[str, str]] = []
    rep = r.get("replay") or {}
    if rep:
        per_class = rep.get("mode", "per-class") == "per-class"
        parts.append(("memory", f"{rep.get('budget')}/class" if per_class else f"{rep.get('budget')} in total"))
        parts.append(("selection", str(rep.get("strategy", "class-balanced"))))
        parts.append(("share", f"replay share {rep.get('share', 0.5):g}"))
        parts.append(("old labels", "old labels kept" if rep.get("old_labels_on_new") else "new labels only"))
    syn = (r.get("synthetic") or {}).get("settings") or {}
    if r.get("synthetic"):
        aggregation = syn.get("aggregation", "lse")
        parts.append(("aggregation", "LSE" if aggregation == "lse" else aggregation))
        parts.append(("images", f"{syn.get('images_per_class', '?')} image(s)/class"))
        parts.append(("labels", "unlabelled" if syn.get("replay_labels") == "none" else "pseudo-labelled"))
    seam = (r.get("weak") or {}).get("seam") or {}
    if isinstance(seam, dict) and seam:
        parts.append(("cams", f"{str(seam.get('cam_source', 'pcm')).upper()} labels"))
        parts.append(("fusion", "fused with the old model" if seam.get("fuse_old", True) else "not fused"))
        parts.append(("threshold", f"background threshold {seam.get('bg_threshold')}"))
    backbone = str(r.get("backbone", ""))
    parts.append(("backbone", backbone.replace("resnet", "ResNet-") if backbone.startswith("resnet") else backbone))
    groups = {"replay": rep, "synthetic": syn, "weak": seam if isinstance(seam, dict) else {}}
    groups["config"] = {k: v for k, v in (r.get("config") or {}).items() if k not in _SKIPPED_CONFIG}
    for group, settings in groups.items():  # every other setting, shown only when nothing named tells apart
        for k, v in sorted(settings.items()):
            if isinstance(v, (int, float, str, bool)):
                parts.append((f"{group}.{k}", f"{k.replace('_', ' ')} {f'{v:g}' if isinstance(v, float) else v}"))
    return parts


def display_labels(records: list[dict], *, shown_elsewhere: Iterable[str] = ()) -> list[str]:
    """A label per record for one table or figure: the method's name (:func:`display_name`), and where
    two records share a method what tells them apart (``SMiB (1/class)``, ``MiB+DI (scale-aware)``).

    A replay run always shows its memory; other settings only when they differ between records of
    the same method: a named setting (memory, selection, aggregation, SEAM's labels, backbone ...)
    when the named ones tell the records apart, else every setting that differs. Internal run
    codes (``variant``, such as ``di-1pc-60+30it-64px``) never appear. Records alike in everything
    are numbered (``FT #1``, ``FT #2``).

    Args:
        records: results records; only ``method`` is required (``replay``, ``synthetic``, ``weak``,
            ``backbone`` and ``config`` tell records apart).
        shown_elsewhere: keys of :func:`_describe` the caller shows beside the label (a memory
            column: ``("memory", "selection")``): left out of the labels, and records that differ
            in them need not be told apart by the label.

    Returns:
        One label per record, in the order of ``records``.
    """
    hidden = set(shown_elsewhere)
    described = [dict(_describe(r)) for r in records]
    elsewhere = [tuple(str(d.get(k)) for k in sorted(hidden)) for d in described]
    labels = []
    for i, r in enumerate(records):
        mine = {k: v for k, v in described[i].items() if k not in hidden}
        same = [
            described[j] for j, o in enumerate(records) if o["method"] == r["method"] and elsewhere[j] == elsewhere[i]
        ]
        differ = [k for k in mine if len({str(d.get(k)) for d in same}) > 1]
        named = [k for k in differ if "." not in k]  # a named difference says enough; other settings if needed
        keys = named if named and _tells_apart(same, named) else differ
        extra = [v for k, v in mine.items() if k in keys or k == "memory"]  # a replay run always shows its memory
        labels.append(display_name(r["method"]) + (f" ({', '.join(extra)})" if extra else ""))
    tagged = list(zip(labels, elsewhere))
    alike = {t for t in tagged if tagged.count(t) > 1}  # a re-run with the same settings: numbered
    seen: dict[tuple, int] = {}
    for i, t in enumerate(tagged):
        if t in alike:
            seen[t] = seen.get(t, 0) + 1
            labels[i] = f"{labels[i]} #{seen[t]}"
    return labels


def _tells_apart(described: list[dict], keys: list[str]) -> bool:
    """Whether the values of ``keys`` differ between every two of ``described``."""
    values = [tuple(str(d.get(k)) for k in keys) for d in described]
    return len(set(values)) == len(values)


def run_labels(records: list[dict], *, shown_elsewhere: Iterable[str] = ()) -> list[str]:
    """A label per record, the same for every record of one run whatever its task or step.

    A run is a method with its variant (a memory, a synthetic set, SEAM's labels: ``smib`` with 1
    and with 5 exemplars per class are two runs). Each run is labelled by :func:`display_labels`
    of its newest record among ``records``, so a table over several tasks gets one row per run
    (``SMiB (1/class)``), never an internal run code.

    Args:
        records: results records (``method``; ``variant`` and the fields of :func:`display_labels`).
        shown_elsewhere: as in :func:`display_labels`.

    Returns:
        One label per record, in the order of ``records``.
    """
    runs = [_row_name(r) for r in records]
    newest: dict[str, dict] = {}
    for r, run in zip(records, runs):
        if run not in newest or r.get("created_ns", 0) >= newest[run].get("created_ns", 0):
            newest[run] = r
    named = dict(zip(newest, display_labels(list(newest.values()), shown_elsewhere=shown_elsewhere)))
    return [named[run] for run in runs]


def _method_rank(method: str) -> tuple:
    return runs.run_rank(method)


def latest(
    records: list[dict], keys=("dataset", "task", "setting", "method", "step", "backbone", "eval_protocol", "variant")
) -> list[dict]:
    """Keep the newest record per ``keys`` (a re-run notebook supersedes its earlier records)."""
    out: dict = {}
    for r in sorted(records, key=lambda r: (r.get("created_ns", 0), r.get("_file", ""))):
        out[tuple(str(r.get(k)) for k in keys)] = r
    return list(out.values())


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


def record_hiou(record: dict) -> float | None:
    """A record's hIoU in [0, 1]: the harmonic mean of its old- and new-class mIoU
    (:func:`~incseg_lib.metrics.harmonic_iou`); None without both."""
    return harmonic_iou(record.get("miou_old"), record.get("miou_new"))


def hiou_percent(record: dict) -> float:
    """:func:`record_hiou` in % (1 decimal; NaN without both old and new mIoU), as the tables show it."""
    h = record_hiou(record)
    return float("nan") if h is None else round(100 * h, 1)


def incremental_table(records: list[dict], protocol: str = "full", with_time: bool = False):
    """The old/new/all table of MiB's papers: mIoU (%) at the last step, methods x (task, setting).

    Rows are methods in the field's order (FT ... MiB, SMiB, Joint last; runs of a method with a
    memory or another variant after it), named by :func:`run_labels` (``SMiB (1/class)``, never a
    run code); columns ``(dataset, task, setting, old|new|all|hIoU)`` (hIoU: the harmonic mean of
    old and new, :func:`~incseg_lib.metrics.harmonic_iou`), NaN where a method did not run.
    With ``with_time`` a ``train s`` column per (dataset, task, setting) adds the training seconds
    of the last step.
    """
    import pandas as pd

    final = final_steps(records, protocol)
    label_of = dict(zip(map(_row_name, final), run_labels(final)))
    rows: dict = {}
    for r in final:
        col = (r["dataset"], r["task"], r["setting"])
        row = rows.setdefault(_row_name(r), {})
        for part in ("old", "new", "all"):
            v = r.get(f"miou_{part}")
            row[col + (part,)] = float("nan") if v is None else round(100 * v, 1)
        row[col + ("hIoU",)] = hiou_percent(r)
        if with_time:
            row[col + ("train s",)] = round(r.get("train_seconds") or 0.0, 1)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.columns = pd.MultiIndex.from_tuples(df.columns, names=["dataset", "task", "setting", "mIoU"])
    df = df[sorted(df.columns, key=lambda c: (c[0], c[1], c[2], ["old", "new", "all", "hIoU", "train s"].index(c[3])))]
    df = df.loc[sorted(df.index, key=_method_rank)]
    df.index = [label_of[m] for m in df.index]
    return df


def _row_name(r: dict) -> str:
    """A run: a table row per method, and per memory for replay runs: ``smib`` with 1 and 5 exemplars
    per class are two rows (``smib|1pc-class-balanced``), shown as ``SMiB (1/class)``."""
    tagged = r.get("replay") or r.get("synthetic") or r.get("weak") or r.get("joint_weak")
    return r["method"] + (f"|{r['variant']}" if r.get("variant") and tagged else "")


def miou_by_step(
    records: list[dict], dataset: str, task: str, setting: str, metric: str = "miou_all", protocol: str = "full"
):
    """mIoU (%) after every step, one row per run (step 0 shared, Joint left out): DataFrame.

    Rows are named by :func:`run_labels` (``MiB``, ``SMiB (5/class)``) in the field's order; columns
    are the steps (ints), NaN where a run has no record.
    """
    import pandas as pd

    recs = [
        r
        for r in latest(records)
        if r["dataset"] == dataset
        and r["task"] == task
        and r["setting"] == setting
        and r.get("eval_protocol", "full") == protocol
        and r["method"] != "joint"
    ]
    base = _step0_records(recs)
    later = [r for r in recs if r["step"] > 0]
    label_of = dict(zip(map(_row_name, later), run_labels(later)))
    table = {}
    for run in sorted(label_of, key=_method_rank):
        mine = [r for r in later if _row_name(r) == run]
        b = _step0_of(mine[0], base)
        row = {0: round(100 * (b[metric] or 0), 1)} if b else {}
        for r in mine:
            if r.get(metric) is not None:
                row[r["step"]] = round(100 * r[metric], 1)
        table[label_of[run]] = row
    return pd.DataFrame.from_dict(table, orient="index").sort_index(axis=1)


def class_order(dataset: str, names) -> list[str]:
    """``names`` sorted by class id (records store their per-class IoU by name, keys sorted by JSON)."""

    try:
        ids = {n: i for i, n in enumerate(dataset_info(dataset, incremental=True).class_names)}
    except ValueError:
        return list(names)
    return sorted(names, key=lambda n: (ids.get(n, len(ids)), n))


def class_iou(records: list[dict], dataset: str, task: str, setting: str, protocol: str = "full"):
    """Per-class IoU (%) at the last step: one row per run (Joint included), one column per class.

    Rows in the field's method order, named by :func:`display_labels` (one row per memory size:
    ``SMiB (1/class)``, ``SMiB (5/class)``); columns in class-id order (background first).
    """
    import pandas as pd

    recs = _final_of(records, dataset, task, setting, protocol)
    rows = {
        label: {c: (float("nan") if v is None else round(100 * v, 1)) for c, v in r["iou"].items()}
        for label, r in zip(display_labels(recs), recs)
    }
    df = pd.DataFrame.from_dict(rows, orient="index")
    return df[class_order(dataset, df.columns)] if len(df.columns) else df


def _final_of(records: list[dict], dataset: str, task: str, setting: str, protocol: str) -> list[dict]:
    """The last-step records of one (dataset, task, setting), in the field's method order."""
    recs = [
        r
        for r in final_steps(records, protocol)
        if r["dataset"] == dataset and r["task"] == task and r["setting"] == setting
    ]
    return sorted(recs, key=lambda r: _method_rank(_row_name(r)))


def _step0_records(recs: list[dict]) -> dict[str, dict]:
    """The step-0 record of each step-0 family (``step0``, ``step0-bce``) among ``recs``."""
    return {r["method"]: r for r in recs if r["step"] == 0}


def _step0_of(rec: dict, base: dict[str, dict]) -> dict | None:
    """The step-0 record ``rec`` started from (its ``step0`` field; LwF-MC: its BCE step 0), else any step 0."""
    family = rec.get("step0") or step0_name(rec["method"])  # records made before the field: by method name
    return base.get(family) or base.get("step0") or next(iter(base.values()), None)


def class_forgetting(before: dict, after: dict) -> dict:
    """Forgetting of each class in ``before``: ``100 * (IoU before - IoU after)`` in points.

    ``before``/``after`` map class names to IoU in [0, 1] (``None`` or NaN: not measured); a class
    missing from ``after`` or unmeasured on either side gives NaN. Positive = forgotten.
    """
    out = {}
    for c, b in before.items():
        a = after.get(c)
        ok = b is not None and a is not None and b == b and a == a
        out[c] = 100 * (b - a) if ok else float("nan")
    return out


def forgetting(records: list[dict], dataset: str, task: str, setting: str, protocol: str = "full"):
    """Forgetting per old class: IoU after step 0 minus IoU at the last step (points), per method.

    Only the step-0 classes (background included) are shown; a positive value is what the
    method forgot, a negative one what it improved. Rows are named as in :func:`class_iou` (one
    per memory size); values are rounded to 0.1 point, with no ``-0.0``.
    """
    import pandas as pd

    recs = [
        r
        for r in latest(records)
        if r["dataset"] == dataset
        and r["task"] == task
        and r["setting"] == setting
        and r.get("eval_protocol", "full") == protocol
    ]
    base = _step0_records(recs)
    if not base:
        return pd.DataFrame()
    final = _final_of(records, dataset, task, setting, protocol)
    rows = {}
    for label, r in zip(display_labels(final), final):
        b = (_step0_of(r, base) or {}).get("iou", {})
        after = {c: r["iou"][c] for c in b if c in r["iou"]}
        rows[label] = class_forgetting({c: b[c] for c in after}, after)
    out = pd.DataFrame.from_dict(rows, orient="index")
    return (out[class_order(dataset, out.columns)].round(1) + 0.0) if len(out.columns) else out  # + 0.0: no -0.0


def find_runs(root: str | Path = "") -> list[Path]:
    """Run folders under ``root`` (itself included; default :func:`~incseg_lib.config.runs_root`)
    that hold a ``results/`` folder, sorted by name."""

    root = Path(root) if root else runs_root()
    found = [p.parent for p in root.glob("**/results") if p.is_dir()]
    return sorted(set(found))


def memory_table(records: list[dict], protocol: str = "full"):
    """Rehearsal results after the last step (like the SMiB report's Table III).

    Rows ``(method, exemplars per class or total)``, MiB without memory first, the method named by
    :func:`run_labels` without its memory (``SMiB``, ``FT + memory``; a selection other than
    class-balanced joins the memory's column); columns ``(dataset, task, setting, old|new|all)`` in
    %, plus memory images and MB of the last step.
    """
    import pandas as pd

    rows: dict = {}
    kept = [r for r in final_steps(records, protocol) if r["method"] == "mib" or runs.is_replay(r["method"])]
    for r, label in zip(kept, run_labels(kept, shown_elsewhere=("memory", "selection"))):
        rep = r.get("replay") or {}
        size = "-" if not rep else (f"{rep['budget']}" if rep["mode"] == "per-class" else f"{rep['budget']} total")
        if rep.get("strategy") and rep["strategy"] != "class-balanced":
            size += f" ({rep['strategy']})"
        key = (label, size)
        row = rows.setdefault(key, {})
        col = (r["dataset"], r["task"], r["setting"])
        for part in ("old", "new", "all"):
            v = r.get(f"miou_{part}")
            row[col + (part,)] = float("nan") if v is None else round(100 * v, 1)
        row[col + ("hIoU",)] = hiou_percent(r)
        if rep:
            row[col + ("memory images",)] = (r.get("memory") or {}).get("images")
            row[col + ("memory MB",)] = round(((r.get("memory") or {}).get("bytes") or 0) / 1e6, 2)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(rows, orient="index")
    order = ["old", "new", "all", "hIoU", "memory images", "memory MB"]
    df = df[sorted(df.columns, key=lambda c: (c[:3], order.index(c[3])))]
    df.columns = pd.MultiIndex.from_tuples(df.columns, names=["dataset", "task", "setting", ""])

    def rank(k):
        size = k[1].split(" ")[0]
        return (k[0] != "MiB", k[0], int(size) if size.isdigit() else -1, k[1])

    df = df.loc[sorted(df.index, key=rank)]
    df.index = pd.MultiIndex.from_tuples(df.index, names=["method", "exemplars"])
    return df


def miou_by_memory(records: list[dict], dataset: str, task: str, setting: str, protocol: str = "full"):
    """Long DataFrame for the mIoU-vs-memory plot: method, exemplars, part (old/new/all), mIoU %.

    The MiB record without memory comes with ``exemplars`` 0 (the reference line). ``method`` is
    the run's label without its memory (:func:`run_labels`: ``SMiB``, ``FT + memory``), so each
    method is one line over its memory sizes.
    """
    import pandas as pd

    kept = []
    for r in final_steps(records, protocol):
        if (r["dataset"], r["task"], r["setting"]) != (dataset, task, setting):
            continue
        rep = r.get("replay") or {}
        if r["method"] == "mib" and not rep:
            kept.append((r, 0))
        elif rep and rep.get("mode") == "per-class":
            kept.append((r, rep["budget"]))
    labels = run_labels([r for r, _ in kept], shown_elsewhere=("memory",))
    rows = []
    for (r, size), label in zip(kept, labels):
        for part in ("old", "new", "all"):
            v = r.get(f"miou_{part}")
            rows.append(
                {
                    "method": label,
                    "exemplars": size,
                    "part": part,
                    "mIoU %": float("nan") if v is None else 100 * v,
                }
            )
    return pd.DataFrame(rows)


def shown(table):
    """``table`` as a notebook shows it: one decimal, an empty cell where a method did not run (a
    pandas ``Styler``; the DataFrame itself when pandas cannot style it)."""
    try:
        return table.style.format(precision=1, na_rep="")
    except ImportError:  # pragma: no cover - jinja2 comes with the notebooks' dependencies
        return table


def joint_ratio(table, method: str = "MiB") -> dict:
    """``method`` all / Joint all per (dataset, task, setting) of :func:`incremental_table`."""
    out = {}
    for col in [c for c in table.columns if c[3] == "all"]:
        if method in table.index and "Joint" in table.index and table.loc["Joint", col] > 0:
            out[" ".join(col[:3])] = round(float(table.loc[method, col] / table.loc["Joint", col]), 2)
    return out


def pseudo_label_table(records: list[dict]):
    """Pseudo-label quality of every SEAM run (records with ``weak``): mIoU (%) of each variant against
    the masks it replaces (``cam``, ``pcm``, ``pcm+fuse``, ``chance``), new-class and background IoU.

    Rows ``(task, setting, method, variant)``, columns ``(variant, miou|miou_new|background)``.
    """
    import pandas as pd

    rows = {}
    for r in latest([r for r in records if r.get("weak") and r.get("eval_protocol", "full") == "full"]):
        key = (r["task"], r["setting"], display_name(r["method"]), r["step"])
        for variant, q in r["weak"]["quality"].items():
            for k in ("miou", "miou_new", "background"):
                rows.setdefault(key, {})[(variant, k)] = q.get(k)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.names = ["task", "setting", "method", "step"]
    return df


def provenance_table(records: list[dict]):
    """Where the numbers of each run folder come from: one row per run and software/machine, with the
    incseg version and commit, Python, torch, torchvision, numpy, device, threads, and the memory
    layout and precision its training and evaluation chose (records made before provenance was
    recorded show empty cells).

    Returns:
        DataFrame indexed by run folder name, with a ``records`` count.
    """
    import pandas as pd

    rows: dict[tuple, dict] = {}
    for r in records:
        p = r.get("provenance") or {}
        d = r.get("decisions") or {}
        layouts = sorted({"NHWC" if (x or {}).get("channels_last") else "NCHW" for x in d.values() if x})
        precisions = sorted({(x or {}).get("autocast", "") for x in d.values() if x})
        commit = (p.get("commit") or "")[:7] + (" (modified)" if p.get("dirty") else "")
        row = {
            "incseg": p.get("incseg", r.get("version", "")),
            "commit": commit,
            "python": p.get("python", ""),
            "torch": p.get("torch", ""),
            "torchvision": p.get("torchvision", ""),
            "numpy": p.get("numpy", ""),
            "device": p.get("device", r.get("device", "")),
            "threads": p.get("threads", ""),
            "layout": ", ".join(layouts),
            "precision": ", ".join(precisions),
        }
        key = (r.get("_run", ""), *row.values())
        rows.setdefault(key, {"run": r.get("_run", ""), **row, "records": 0})["records"] += 1
    return pd.DataFrame(list(rows.values())).set_index("run") if rows else pd.DataFrame()
