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

from . import __version__
from .config import step0_name
from .data import dataset_info
from .env import provenance, runs_root
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
    a readable record (truncated, edited by hand) is skipped with a warning naming it, so one bad
    file never stops notebook 06 or the report.
    """
    import warnings

    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    out = []
    for rd in run_dirs:
        for p in sorted((Path(rd) / "results").glob("*.json")):
            try:
                rec = json.loads(p.read_text())
                missing = [k for k in REQUIRED if k not in rec]
                if missing:
                    raise ValueError(f"missing {missing}")
            except (ValueError, OSError, UnicodeDecodeError) as e:
                warnings.warn(f"results record {p} is unreadable ({str(e)[:100]}); skipped", stacklevel=2)
                continue
            rec["_file"], rec["_run"] = str(p), Path(rd).name
            out.append(rec)
    return sorted(out, key=lambda r: (r.get("created_ns", 0), r.get("created", ""), r["_file"]))


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
METHOD_ORDER = (
    "step0",
    "step0-bce",
    "ft",
    "lwf",
    "lwf-mc",
    "ilt",
    "ewc",
    "pi",
    "rw",
    "mib",
    "plop",
    "sdr",
    "sdr-only",
    "smib",
    "joint",
)
DISPLAY_NAMES = {
    "step0": "step 0",
    "step0-bce": "step 0 (BCE)",
    "ft": "FT",
    "lwf": "LwF",
    "lwf-mc": "LwF-MC",
    "ilt": "ILT",
    "ewc": "EWC",
    "pi": "PI",
    "rw": "RW",
    "mib": "MiB",
    "plop": "PLOP",
    "sdr": "SDR",
    "sdr-only": "SDR without MiB",
    "smib": "SMiB",
    "joint": "Joint",
    "offline": "offline",
    "ft+mem": "FT + memory",
    "mib+di": "MiB+DI",
    "ft+di": "FT+DI",
    "mib-s": "MiB-S",
    "ft-s": "FT-S",
    "joint-s": "Joint-S",
}


def display_name(method: str) -> str:
    """The field's name for a method id (``mib`` -> ``MiB``; ``smib|5pc-class-balanced`` ->
    ``SMiB (5pc-class-balanced)``); unknown ids are returned as given."""
    base, _, variant = method.partition("|")
    name = DISPLAY_NAMES.get(base, base)
    return f"{name} ({variant})" if variant else name


def _method_rank(method: str) -> tuple:
    base = method.split("|")[0].split("+")[0]
    if base.endswith("-s") and base[:-2] in METHOD_ORDER:  # SEAM runs (mib-s) right after their method
        base = base[:-2]
    return (METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER) - 1, method)


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


def incremental_table(records: list[dict], protocol: str = "full", with_time: bool = False):
    """The old/new/all table of MiB's papers: mIoU (%) at the last step, methods x (task, setting).

    Rows are methods in the field's order (FT ... MiB, SMiB, Joint last; variants such as
    ``smib+5`` after their method); columns ``(dataset, task, setting, old|new|all)``. With
    ``with_time`` a ``train s`` column per (dataset, task, setting) adds the training seconds of the
    last step.
    """
    import pandas as pd

    rows: dict = {}
    for r in final_steps(records, protocol):
        col = (r["dataset"], r["task"], r["setting"])
        row = rows.setdefault(_row_name(r), {})
        for part in ("old", "new", "all"):
            v = r.get(f"miou_{part}")
            row[col + (part,)] = float("nan") if v is None else round(100 * v, 1)
        if with_time:
            row[col + ("train s",)] = round(r.get("train_seconds") or 0.0, 1)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.columns = pd.MultiIndex.from_tuples(df.columns, names=["dataset", "task", "setting", "mIoU"])
    df = df[sorted(df.columns, key=lambda c: (c[0], c[1], c[2], ["old", "new", "all", "train s"].index(c[3])))]
    df = df.loc[sorted(df.index, key=_method_rank)]
    df.index = [display_name(m) for m in df.index]
    return df


def _row_name(r: dict) -> str:
    """A table row per method, and per memory for replay runs: ``smib`` with 1 and 5 exemplars per
    class are two rows (``smib|1pc-class-balanced``), shown as ``SMiB (1pc-class-balanced)``."""
    tagged = r.get("replay") or r.get("synthetic") or r.get("weak") or r.get("joint_weak")
    return r["method"] + (f"|{r['variant']}" if r.get("variant") and tagged else "")


def miou_by_step(
    records: list[dict], dataset: str, task: str, setting: str, metric: str = "miou_all", protocol: str = "full"
):
    """mIoU (%) after every step, one row per method (step 0 shared, Joint left out): DataFrame."""
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
    methods = sorted({r["method"] for r in recs if r["step"] > 0}, key=_method_rank)
    table = {}
    for m in methods:
        b = _step0_of(next(r for r in recs if r["method"] == m and r["step"] > 0), base)
        row = {0: round(100 * (b[metric] or 0), 1)} if b else {}
        for r in recs:
            if r["method"] == m and r["step"] > 0 and r.get(metric) is not None:
                row[r["step"]] = round(100 * r[metric], 1)
        table[display_name(m)] = row
    return pd.DataFrame.from_dict(table, orient="index").sort_index(axis=1)


def class_order(dataset: str, names) -> list[str]:
    """``names`` sorted by class id (records store their per-class IoU by name, keys sorted by JSON)."""

    try:
        ids = {n: i for i, n in enumerate(dataset_info(dataset, incremental=True).class_names)}
    except ValueError:
        return list(names)
    return sorted(names, key=lambda n: (ids.get(n, len(ids)), n))


def class_iou(records: list[dict], dataset: str, task: str, setting: str, protocol: str = "full"):
    """Per-class IoU (%) at the last step: one row per method (Joint included), one column per class.

    Rows in the field's method order, columns in class-id order (background first).
    """
    import pandas as pd

    recs = [
        r
        for r in final_steps(records, protocol)
        if r["dataset"] == dataset and r["task"] == task and r["setting"] == setting
    ]
    recs = sorted(recs, key=lambda r: _method_rank(r["method"]))
    rows = {
        display_name(r["method"]): {c: (float("nan") if v is None else round(100 * v, 1)) for c, v in r["iou"].items()}
        for r in recs
    }
    df = pd.DataFrame.from_dict(rows, orient="index")
    return df[class_order(dataset, df.columns)] if len(df.columns) else df


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
    method forgot, a negative one what it improved.
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
    final = class_iou(records, dataset, task, setting, protocol)
    by_name = {display_name(r["method"]): r for r in recs if r["step"] > 0}
    rows = {}
    for name in final.index:
        b = (_step0_of(by_name.get(name, {"method": name}), base) or {}).get("iou", {})
        after = {c: final.loc[name, c] / 100 for c in b if c in final.columns}
        rows[name] = class_forgetting({c: b[c] for c in after}, after)
    out = pd.DataFrame.from_dict(rows, orient="index")
    return out[class_order(dataset, out.columns)].round(1) if len(out.columns) else out


def find_runs(root: str | Path = "") -> list[Path]:
    """Run folders under ``root`` (itself included; default :func:`~incseg_lib.config.runs_root`)
    that hold a ``results/`` folder, sorted by name."""

    root = Path(root) if root else runs_root()
    found = [p.parent for p in root.glob("**/results") if p.is_dir()]
    return sorted(set(found))


def memory_table(records: list[dict], protocol: str = "full"):
    """Rehearsal results after the last step (like the SMiB report's Table III).

    Rows ``(method, exemplars per class or total)``, MiB without memory first; columns
    ``(dataset, task, setting, old|new|all)`` in %, plus memory images and MB of the last step.
    """
    import pandas as pd

    rows: dict = {}
    for r in final_steps(records, protocol):
        if r["method"] not in ("mib", "smib") and not r["method"].endswith("+mem"):
            continue
        rep = r.get("replay") or {}
        size = "-" if not rep else (f"{rep['budget']}" if rep["mode"] == "per-class" else f"{rep['budget']} total")
        if rep.get("strategy") and rep["strategy"] != "class-balanced":
            size += f" ({rep['strategy']})"
        key = (display_name(r["method"]), size)
        row = rows.setdefault(key, {})
        col = (r["dataset"], r["task"], r["setting"])
        for part in ("old", "new", "all"):
            v = r.get(f"miou_{part}")
            row[col + (part,)] = float("nan") if v is None else round(100 * v, 1)
        if rep:
            row[col + ("memory images",)] = (r.get("memory") or {}).get("images")
            row[col + ("memory MB",)] = round(((r.get("memory") or {}).get("bytes") or 0) / 1e6, 2)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(rows, orient="index")
    order = ["old", "new", "all", "memory images", "memory MB"]
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

    The MiB record without memory comes with ``exemplars`` 0 (the reference line).
    """
    import pandas as pd

    rows = []
    for r in final_steps(records, protocol):
        if (r["dataset"], r["task"], r["setting"]) != (dataset, task, setting):
            continue
        rep = r.get("replay") or {}
        if r["method"] == "mib" and not rep:
            size = 0
        elif rep and rep.get("mode") == "per-class":
            size = rep["budget"]
        else:
            continue
        for part in ("old", "new", "all"):
            v = r.get(f"miou_{part}")
            rows.append(
                {
                    "method": display_name(r["method"]),
                    "exemplars": size,
                    "part": part,
                    "mIoU %": float("nan") if v is None else 100 * v,
                }
            )
    return pd.DataFrame(rows)


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
