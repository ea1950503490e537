"""The tables notebooks 02-06 and the report show, built from records: old / new / all / hIoU after the
last step, mIoU per step and per class, forgetting, memory sizes, pseudo-labels, provenance."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .. import runs
from ..config import step0_name
from .labels import display_labels, display_name, row_name, run_labels
from .records import Record, as_records, class_order, final_steps, latest, select

# records_table's columns: (record key, header a reader sees); mIoU and accuracy in %.
RECORD_COLUMNS = (
    ("notebook", "notebook"),
    ("dataset", "dataset"),
    ("task", "task"),
    ("setting", "setting"),
    ("method", "method"),
    ("step", "step"),
    ("eval_protocol", "evaluated on"),
    ("backbone", "backbone"),
    ("lr", "learning rate"),
    ("batch_size", "batch"),
    ("miou_old", "old (%)"),
    ("miou_new", "new (%)"),
    ("miou_all", "all (%)"),
    ("pixel_acc", "pixel accuracy (%)"),
    ("train_seconds", "training (s)"),
)
_PERCENT = ("miou_old", "miou_new", "miou_all", "pixel_acc")


def records_table(records: Iterable[Mapping], columns: Iterable[str] = tuple(k for k, _ in RECORD_COLUMNS)):
    """A pandas DataFrame of ``records``, one row each, with the headers of :data:`RECORD_COLUMNS`.

    ``method`` is the display label (:func:`display_labels` over the records shown: ``SMiB
    (5/class)``, never a run code such as ``5pc-class-balanced``); mIoU and pixel accuracy are
    percentages (1 decimal), an absent value NaN (:func:`shown` draws it as an empty cell).

    Args:
        records: results records.
        columns: record keys to show, of :data:`RECORD_COLUMNS`.

    Raises:
        ValueError: a column that is not one of :data:`RECORD_COLUMNS` (names the choices).
    """
    import pandas as pd

    header = dict(RECORD_COLUMNS)
    unknown = [c for c in columns if c not in header]
    if unknown:
        raise ValueError(f"records_table: unknown column(s) {unknown}; choose from {list(header)}")
    records = as_records(records)
    labels = display_labels(records)
    rows = []
    for r, label in zip(records, labels):
        row = {c: (label if c == "method" else r.get(c)) for c in columns}
        for c in _PERCENT:
            if c in row:
                row[c] = float("nan") if row[c] is None else round(100 * row[c], 1)
        if row.get("train_seconds") is not None:
            row["train_seconds"] = round(row["train_seconds"], 1)
        for c in ("step", "lr", "batch_size"):  # as written (0.001, not a float rounded to 0.0); absent: empty
            if c in row:
                row[c] = "" if row[c] is None else f"{row[c]:g}"
        rows.append(row)
    return pd.DataFrame(rows, columns=list(columns)).rename(columns=header)


def iou_table(records: Iterable[Mapping], label_keys=("method", "task", "setting", "step")):
    """Per-class IoU (%) as a DataFrame: one row per record, one column per class."""
    import pandas as pd

    records = as_records(records)
    rows = {
        " ".join(str(r.get(k)) for k in label_keys): {
            c: (None if v is None else round(100 * v, 1)) for c, v in r.iou.items()
        }
        for r in records
    }
    df = pd.DataFrame.from_dict(rows, orient="index")
    return df[class_order(records[0].dataset, df.columns)] if records and len(df.columns) else df


def record_hiou(record: Mapping) -> float | None:
    """A record's hIoU in [0, 1]: the harmonic mean of its old- and new-class mIoU
    (:func:`~incseg_lib.metrics.harmonic_iou`); None without both."""
    return Record.from_dict(record).hiou


def hiou_percent(record: Mapping) -> float:
    """:func:`record_hiou` in % (1 decimal; NaN without both old and new mIoU), as the tables show it."""
    h = record_hiou(record)
    return float("nan") if h is None else round(100 * h, 1)


def incremental_table(records: Iterable[Mapping], protocol: str = "full", with_time: bool = False):
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
    label_of = dict(zip(map(row_name, final), run_labels(final)))
    rows: dict = {}
    for r in final:
        col = (r.dataset, r.task, r.setting)
        row = rows.setdefault(row_name(r), {})
        for part in ("old", "new", "all"):
            v = r.get(f"miou_{part}")
            row[col + (part,)] = float("nan") if v is None else round(100 * v, 1)
        row[col + ("hIoU",)] = hiou_percent(r)
        if with_time:
            row[col + ("train s",)] = round(r.train_seconds or 0.0, 1)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.columns = pd.MultiIndex.from_tuples(df.columns, names=["dataset", "task", "setting", "mIoU"])
    df = df[sorted(df.columns, key=lambda c: (c[0], c[1], c[2], ["old", "new", "all", "hIoU", "train s"].index(c[3])))]
    df = df.loc[sorted(df.index, key=runs.run_rank)]
    df.index = [label_of[m] for m in df.index]
    return df


def miou_by_step(
    records: Iterable[Mapping], dataset: str, task: str, setting: str, metric: str = "miou_all", protocol: str = "full"
):
    """mIoU (%) after every step, one row per run (step 0 shared, Joint left out): DataFrame.

    Rows are named by :func:`run_labels` (``MiB``, ``SMiB (5/class)``) in the field's order; columns
    are the steps (ints), NaN where a run has no record.
    """
    import pandas as pd

    recs = [r for r in select(records, dataset, task, setting, protocol) if r.method != "joint"]
    base = _step0_records(recs)
    later = [r for r in recs if r.step > 0]
    label_of = dict(zip(map(row_name, later), run_labels(later)))
    table = {}
    for run in sorted(label_of, key=runs.run_rank):
        mine = [r for r in later if row_name(r) == run]
        b = _step0_of(mine[0], base)
        row = {0: round(100 * (b[metric] or 0), 1)} if b else {}
        for r in mine:
            if r.get(metric) is not None:
                row[r.step] = round(100 * r[metric], 1)
        table[label_of[run]] = row
    return pd.DataFrame.from_dict(table, orient="index").sort_index(axis=1)


def training_curves(records: Iterable[Mapping], dataset: str, task: str, setting: str, protocol: str = "full") -> dict:
    """What each run of ``task`` / ``setting`` trained on, step by step (Joint and step 0 left out):
    ``{label: {"epochs": [1, 2, ...], "terms": {term: [loss per epoch]}, "steps": [1, 1, 2, ...],
    "miou": {"old": [...], "new": [...], "all": [...]} (%, after each step 1..T)}}``, the epochs
    numbered through the steps. Records written before each term was kept give their total only
    (``loss``). Runs are in the field's order, labelled by :func:`run_labels`."""
    recs = [r for r in select(records, dataset, task, setting, protocol) if r.step > 0 and r.method != "joint"]
    label_of = dict(zip(map(row_name, recs), run_labels(recs)))
    out = {}
    for run in sorted(label_of, key=runs.run_rank):
        mine = sorted((r for r in recs if row_name(r) == run), key=lambda r: r.step)
        curves = {"epochs": [], "terms": {}, "steps": [], "miou": {"old": [], "new": [], "all": []}, "step_ids": []}
        for r in mine:
            terms = dict(r.loss_terms or {})
            terms = {"loss": r.loss_history or [], **terms}
            n = len(terms["loss"])
            start = len(curves["epochs"])
            for name, values in terms.items():
                series = curves["terms"].setdefault(name, [float("nan")] * start)
                series += [float(v) for v in values[:n]] + [float("nan")] * (n - len(values[:n]))
            for series in curves["terms"].values():  # a term this step did not log
                series += [float("nan")] * (start + n - len(series))
            curves["epochs"] += list(range(start + 1, start + n + 1))
            curves["steps"] += [r.step] * n
            curves["step_ids"].append(r.step)
            for part in ("old", "new", "all"):
                v = r.get(f"miou_{part}")
                curves["miou"][part].append(float("nan") if v is None else 100 * v)
        out[label_of[run]] = curves
    return out


def class_iou(records: Iterable[Mapping], dataset: str, task: str, setting: str, protocol: str = "full"):
    """Per-class IoU (%) at the last step: one row per run (Joint included), one column per class.

    Rows in the field's method order, named by :func:`display_labels` (one row per memory size:
    ``SMiB (1/class)``, ``SMiB (5/class)``); columns in class-id order (background first).
    """
    import pandas as pd

    recs = _final_of(records, dataset, task, setting, protocol)
    rows = {
        label: {c: (float("nan") if v is None else round(100 * v, 1)) for c, v in r.iou.items()}
        for label, r in zip(display_labels(recs), recs)
    }
    df = pd.DataFrame.from_dict(rows, orient="index")
    return df[class_order(dataset, df.columns)] if len(df.columns) else df


def _final_of(records: Iterable[Mapping], dataset: str, task: str, setting: str, protocol: str) -> list[Record]:
    """The last-step records of one (dataset, task, setting), in the field's method order."""
    recs = [
        r for r in final_steps(records, protocol) if r.dataset == dataset and r.task == task and r.setting == setting
    ]
    return sorted(recs, key=lambda r: runs.run_rank(row_name(r)))


def _step0_records(recs: list[Record]) -> dict[str, Record]:
    """The step-0 record of each step-0 family (``step0``, ``step0-bce``) among ``recs``."""
    return {r.method: r for r in recs if r.step == 0}


def _step0_of(rec: Record, base: dict[str, Record]) -> Record | None:
    """The step-0 record ``rec`` started from (its ``step0`` field; LwF-MC: its BCE step 0), else any step 0."""
    family = rec.get("step0") or step0_name(rec.method)  # records made before the field: by method name
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


def forgetting(records: Iterable[Mapping], dataset: str, task: str, setting: str, protocol: str = "full"):
    """Forgetting per old class: IoU after step 0 minus IoU at the last step (points), per method.

    Only the step-0 classes (background included) are shown; a positive value is what the
    method forgot, a negative one what it improved. Rows are named as in :func:`class_iou` (one
    per memory size); values are rounded to 0.1 point, with no ``-0.0``.
    """
    import pandas as pd

    recs = select(records, dataset, task, setting, protocol)
    base = _step0_records(recs)
    if not base:
        return pd.DataFrame()
    final = _final_of(records, dataset, task, setting, protocol)
    rows = {}
    for label, r in zip(display_labels(final), final):
        start = _step0_of(r, base)
        b = start.iou if start else {}
        after = {c: r.iou[c] for c in b if c in r.iou}
        rows[label] = class_forgetting({c: b[c] for c in after}, after)
    out = pd.DataFrame.from_dict(rows, orient="index")
    return (out[class_order(dataset, out.columns)].round(1) + 0.0) if len(out.columns) else out  # + 0.0: no -0.0


def memory_table(records: Iterable[Mapping], protocol: str = "full"):
    """Rehearsal results after the last step (like the SMiB report's Table III).

    Rows ``(method, exemplars per class or total)``, MiB without memory first, the method named by
    :func:`run_labels` without its memory (``SMiB``, ``FT + memory``; a selection other than
    class-balanced joins the memory's column); columns ``(dataset, task, setting, old|new|all)`` in
    %, plus memory images and MB of the last step.
    """
    import pandas as pd

    rows: dict = {}
    kept = [r for r in final_steps(records, protocol) if r.method == "mib" or runs.is_replay(r.method)]
    for r, label in zip(kept, run_labels(kept, shown_elsewhere=("memory", "selection"))):
        rep = r.get("replay") or {}
        size = "-" if not rep else (f"{rep['budget']}" if rep["mode"] == "per-class" else f"{rep['budget']} total")
        if rep.get("strategy") and rep["strategy"] != "class-balanced":
            size += f" ({rep['strategy']})"
        key = (label, size)
        row = rows.setdefault(key, {})
        col = (r.dataset, r.task, r.setting)
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


def miou_by_memory(records: Iterable[Mapping], dataset: str, task: str, setting: str, protocol: str = "full"):
    """Long DataFrame for the mIoU-vs-memory plot: method, exemplars, part (old/new/all), mIoU %.

    The MiB record without memory comes with ``exemplars`` 0 (the reference line). ``method`` is
    the run's label without its memory (:func:`run_labels`: ``SMiB``, ``FT + memory``), so each
    method is one line over its memory sizes.
    """
    import pandas as pd

    kept = []
    for r in final_steps(records, protocol):
        if (r.dataset, r.task, r.setting) != (dataset, task, setting):
            continue
        rep = r.get("replay") or {}
        if r.method == "mib" and not rep:
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


def shown(table, index: bool = True):
    """``table`` as a notebook shows it: one decimal, an empty cell where a method did not run (a
    pandas ``Styler``; the DataFrame itself when pandas cannot style it); ``index=False`` leaves out
    a row index that means nothing to a reader (:func:`records_table`'s 0, 1, 2 ...)."""
    try:
        styled = table.style.format(precision=1, na_rep="")
        return styled if index else styled.hide(axis="index")
    except ImportError:  # pragma: no cover - jinja2 comes with the notebooks' dependencies
        return table


def joint_ratio(table, method: str = "MiB") -> dict:
    """``method`` all / Joint all per (dataset, task, setting) of :func:`incremental_table`."""
    out = {}
    for col in [c for c in table.columns if c[3] == "all"]:
        if method in table.index and "Joint" in table.index and table.loc["Joint", col] > 0:
            out[" ".join(col[:3])] = round(float(table.loc[method, col] / table.loc["Joint", col]), 2)
    return out


def comparison_lines(table) -> list[str]:
    """Notebook 06's take-away, read from :func:`incremental_table`: per (dataset, task, setting),
    which incremental method ends highest on all classes, on the old classes and on hIoU after the
    last step, and how close the best comes to Joint. Joint and the step-0 rows are not candidates."""
    lines = []
    groups = sorted({c[:3] for c in table.columns})
    for group in groups:
        part = {
            c[3]: table[c].drop(index=["Joint", "Joint-S"], errors="ignore").dropna()
            for c in table.columns
            if c[:3] == group
        }
        if part.get("all") is None or part["all"].empty:
            continue
        best = {
            k: (part[k].idxmax(), float(part[k].max()))
            for k in ("all", "old", "hIoU")
            if k in part and not part[k].empty
        }
        text = f"{' '.join(group)}: highest on all classes {best['all'][0]} ({best['all'][1]:.1f})"
        text += "".join(f", on {k} {best[k][0]} ({best[k][1]:.1f})" for k in ("old", "hIoU") if k in best)
        joint = table.get(group + ("all",), {}).get("Joint") if "Joint" in table.index else None
        if joint is not None and joint == joint and joint > 0:
            ratio = best["all"][1] / joint
            text += (
                f"; Joint {joint:.1f}, so the best incremental run reaches {ratio:.0%} of it"
                if ratio <= 1
                else f"; above Joint ({joint:.1f}): Joint trained too little to be the ceiling here"
            )
        lines.append(text + ".")
    return lines


# How pseudo_label_table names the kinds of labels and what it measures of them.
PSEUDO_LABEL_NAMES = {"cam": "CAM", "pcm": "PCM", "pcm+fuse": "PCM + old model", "chance": "chance"}
PSEUDO_LABEL_QUANTITIES = {"miou": "mIoU (%)", "miou_new": "new classes (%)", "background": "background IoU (%)"}


def pseudo_label_table(records: Iterable[Mapping]):
    """Pseudo-label quality of every SEAM run (records with ``weak``): mIoU (%) of each kind of label
    against the masks it replaces (CAM, PCM, PCM + old model, chance), new-class and background IoU.

    Rows ``(task, setting, method, step)``; columns ``(labels, quantity)`` named for a reader
    (:data:`PSEUDO_LABEL_NAMES`, :data:`PSEUDO_LABEL_QUANTITIES`); a kind a run did not make (FT-S
    has no old model to fuse) is NaN, which :func:`shown` draws empty.
    """
    import pandas as pd

    rows = {}
    for r in latest(r for r in as_records(records) if r.get("weak") and r.eval_protocol == "full"):
        key = (r.task, r.setting, display_name(r.method), r.step)
        for variant, q in r["weak"]["quality"].items():
            for k, quantity in PSEUDO_LABEL_QUANTITIES.items():
                rows.setdefault(key, {})[(PSEUDO_LABEL_NAMES.get(variant, variant), quantity)] = q.get(k)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.names = ["task", "setting", "method", "step"]
    return df


def provenance_table(records: Iterable[Mapping]):
    """Where the numbers of each run folder come from: one row per run and software/machine, with the
    incseg version and commit, Python, torch, torchvision, numpy, device, threads, and the memory
    layout and precision its training and evaluation chose (records made before provenance was
    recorded show empty cells).

    Returns:
        DataFrame indexed by run folder name, with a ``records`` count.
    """
    import pandas as pd

    rows: dict[tuple, dict] = {}
    for r in as_records(records):
        p = r.provenance or {}
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
        key = (r.run, *row.values())
        rows.setdefault(key, {"run": r.run, **row, "records": 0})["records"] += 1
    return pd.DataFrame(list(rows.values())).set_index("run") if rows else pd.DataFrame()


def synthetic_vs_real_lines(table) -> list[str]:
    """Notebook 04's reading of its table (:func:`incremental_table`): per (dataset, task, setting),
    each MiB+DI run's old-class mIoU against SMiB with real exemplars (the fewest per class it ran),
    said in the direction the numbers point. Replay of real images is the course's reference for
    synthetic replay, and where synthetic images keep as much or more the line says so, not the
    reverse."""
    lines = []
    for group in sorted({c[:3] for c in table.columns}):
        col = (*group, "old")
        if col not in table.columns:
            continue
        olds = table[col].dropna()
        real = sorted((r for r in olds.index if str(r).startswith("SMiB")), key=lambda r: (len(str(r)), str(r)))
        synthetic = [r for r in olds.index if str(r).startswith("MiB+DI")]
        if not real or not synthetic:
            continue
        ref = real[0]
        for s in synthetic:
            gap, numbers = olds[s] - olds[ref], f"({olds[s]:.1f} against {olds[ref]:.1f})"
            verdict = (
                f"keeps {gap:.1f} points more of the old classes than {ref} {numbers}: "
                "here the synthetic images did at least as well as the same number of real ones"
                if gap >= 0
                else f"keeps {-gap:.1f} points less of the old classes than {ref} {numbers}"
            )
            lines.append(f"{' '.join(group)}: {s} {verdict}.")
    return lines
