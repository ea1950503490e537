"""The report's tables: a notebook's result tables (methods after the last step, old / new / all /
hIoU) and its expected findings (status, claim, numbers, calibrated range), as HTML; which record
goes under which notebook."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from .. import findings, results, runs

STATUS_STYLE = {
    findings.REPRODUCED: ("#0a5d1e", "#d8f5dd"),
    findings.NOT_REPRODUCED: ("#8f1111", "#fbdada"),
    findings.VARIES: ("#6b4e00", "#fcefc2"),
    findings.NO_DATA: ("#444", "#e8e8e8"),
}
MIOU_PARTS = ("old", "new", "all")


def findings_summary(found: list) -> str:
    """``"23 of 25 expected findings reproduced (1 not, 1 varies between runs); 2 gaps outside the
    calibrated range"`` (the last part only where a calibration exists)."""

    count = {
        st: sum(r.status == st for r in found)
        for st in (findings.REPRODUCED, findings.NOT_REPRODUCED, findings.VARIES, findings.NO_DATA)
    }
    rest = [f"{count[findings.NOT_REPRODUCED]} not"] if count[findings.NOT_REPRODUCED] else []
    rest += [f"{count[findings.VARIES]} varies between runs"] if count[findings.VARIES] else []
    rest += [f"{count[findings.NO_DATA]} without data"] if count[findings.NO_DATA] else []
    outside = sum(bool(getattr(r, "outside", False)) for r in found)
    text = f"{count[findings.REPRODUCED]} of {len(found)} expected findings reproduced" + (
        f" ({', '.join(rest)})" if rest else ""
    )
    if any(getattr(r, "calibration", None) for r in found):
        text += f"; {outside} gap{'' if outside == 1 else 's'} {findings.OUTSIDE}"
    return text


# ---------------------------------------------------------------------- which record goes where
def records_by_notebook(records: Iterable[Mapping]) -> dict[str, list[results.Record]]:
    """``records`` grouped by the notebook that trained their model: notebook name -> records.

    A notebook reusing another's checkpoint re-evaluates it and writes a record of its own with the
    same ``checkpoint``; of the records sharing ``(checkpoint, task, setting, step, eval_protocol,
    method)`` only those of the lowest-numbered notebook (the one that trained it) are kept. A record
    without a checkpoint is kept where it is.
    """

    def key(r: results.Record) -> tuple:
        if not r.checkpoint:
            return ("file", r.file or id(r))
        return (r.checkpoint, r.task, r.setting, r.step, r.eval_protocol, r.method)

    records = results.as_records(records)
    first: dict[tuple, str] = {}
    for r in records:
        nb = r.notebook
        first[key(r)] = min(first.get(key(r), nb), nb)
    out: dict[str, list[results.Record]] = {}
    for r in records:
        if r.notebook == first[key(r)]:
            out.setdefault(r.notebook, []).append(r)
    return out


# ---------------------------------------------------------------------- a row's name a person reads
# The label of each row: the method's name and what tells two records of it apart (``SMiB (1/class)``),
# never a run code. It lives in results (a lower layer) so that the tables and figures use it too.
row_labels = results.display_labels


# ---------------------------------------------------------------------- tables
def _pct(v: Any) -> str:
    return "–" if v is None or v != v else f"{100 * float(v):.1f}"


def duration(seconds: Any) -> str:
    """``"48 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``; ``"–"`` when unknown."""
    if seconds is None:
        return "–"
    s = round(float(seconds))
    if s < 120:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def _table(header: list[str], rows: list[list[str]], caption: str = "", first_left: int = 1) -> str:
    """A plain HTML table (cells already escaped); the first ``first_left`` columns left-aligned."""
    cls = ' class="l"'
    head = "".join(f"<th{cls if i < first_left else ''}>{h}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{cls if i < first_left else ''}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    cap = f'<p class="cap">{caption}</p>' if caption else ""
    return f"{cap}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _drop_empty(header: list[str], rows: list[list[str]]) -> tuple[list, list]:
    """Leave out the columns that are empty in every row (new mIoU of a table of offline models)."""
    keep = [i for i in range(len(header)) if any(row[i] != "–" for row in rows)]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


def result_tables(records: Iterable[Mapping], several_datasets: bool = False) -> list[str]:
    """One notebook's result tables as HTML: one per (dataset, task, setting, evaluation), rows the
    methods after the task's last step, columns old / new / all mIoU (%) and the last step's
    training time; offline models (notebook 01) in a table of their own."""
    out = []
    records = results.as_records(records)
    protocols = sorted({r.eval_protocol for r in records}, key=lambda p: (p != "full", p))
    for protocol in protocols:
        final = results.final_steps(records, protocol)
        groups: dict[tuple, list[results.Record]] = {}
        for r in final:
            groups.setdefault((r.dataset, r.task, r.setting), []).append(r)
        offline = results.latest(
            [r for r in records if r.setting == "offline" and r.eval_protocol == protocol],
            keys=("dataset", "method", "checkpoint", "eval_protocol"),
        )
        for r in offline:
            groups.setdefault((r.dataset, "offline", "offline"), []).append(r)
        started: dict[tuple, int] = {}  # tasks in the order the notebook trained them
        for r in records:
            k = (r.dataset, "offline" if r.setting == "offline" else r.task, r.setting)
            started[k] = min(started.get(k, r.created_ns), r.created_ns)
        for (dataset, task, setting), recs in sorted(groups.items(), key=lambda kv: (started.get(kv[0], 0), kv[0])):
            recs = sorted(recs, key=lambda r: runs.run_rank(r.method))
            labels = row_labels(recs)
            where = f" on {html.escape(str(dataset))}" if several_datasets else ""
            how = "" if protocol == "full" else f", evaluated on {html.escape(str(protocol).replace('-', ' '))}"
            if task == "offline":
                caption = f"Offline{where}: every class learned at once, mIoU (%){how}"
                header = ["model", "all", "pixel accuracy", "training"]
                rows = [
                    [
                        html.escape(lab),
                        _pct(r.miou_all),
                        _pct(r.pixel_acc),
                        duration(r.train_seconds),
                    ]
                    for lab, r in zip(labels, recs)
                ]
            else:
                last = max(r.step for r in recs)
                caption = (
                    f"{html.escape(str(task))} {html.escape(str(setting))}{where}: mIoU (%) after step "
                    f"{html.escape(str(last))}, the last{how}"
                )
                header = ["method", *MIOU_PARTS, "hIoU", "training (last step)"]
                rows = [
                    [
                        html.escape(lab),
                        *(_pct(r.get(f"miou_{p}")) for p in MIOU_PARTS),
                        _pct(results.record_hiou(r)),
                        duration(r.train_seconds),
                    ]
                    for lab, r in zip(labels, recs)
                ]
            header, rows = _drop_empty(header, rows)
            out.append(_table(header, rows, caption))
    return out


def findings_table(found: list) -> str:
    """One notebook's expected findings: status (coloured), claim, numbers, calibrated
    range (left out when none is calibrated: the headline says so)."""
    calibrated = any(r.calibration for r in found)
    rows = []
    for r in found:
        fg, bg = STATUS_STYLE.get(r.status, ("#000", "#fff"))
        status = f'<span class="st" style="color:{fg};background:{bg}">{html.escape(r.status)}</span>'
        rows.append([status, html.escape(r.claim), html.escape(r.detail)])
        rows[-1] += [html.escape(r.calibrated_range())] if calibrated else []
    header = ["status", "expected finding", "numbers (mIoU %)"] + (["calibrated"] if calibrated else [])
    return _table(header, rows, first_left=4)
