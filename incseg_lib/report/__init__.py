"""The suite's HTML report, readable offline: ``<run dir>/report/index.html`` and one page per notebook.

``index.html`` opens with a headline (profile, dataset, how many expected findings were reproduced,
the software and machine from ``suite.json``), lists the notebooks with their status, then gives
one section per notebook: its expected findings (claim, status, numbers, calibrated
range) and its results, one table per task (methods after the last step: old / new / all mIoU and
training time). A model that several notebooks evaluate (notebook 03 re-evaluates notebook 02's
MiB) is listed once, under the notebook that trained it.

Every page works from a USB stick in a lab without internet: links are relative, and nothing is
loaded from elsewhere. The notebook pages are nbconvert's ``lab`` template without its remote
scripts (require.js, MathJax, mermaid, the widget renderer), and their formulas are written as
MathML when the page is made (``latex2mathml``), which browsers draw themselves.
"""

from __future__ import annotations

import html
import json
import urllib.parse
from pathlib import Path

from .. import findings, results
from ..env import software_line
from ..store import atomic_write_text
from .pages import (
    HIDDEN_TAGS,
    REPORT_TAG,
    dangling_links,
    figures_section,
    notebook_title,
    offline_exporter,
    private_paths,
    public,
    report_figures,
    tex_to_mathml,
)
from .tables import (
    MIOU_PARTS,
    STATUS_STYLE,
    duration,
    findings_summary,
    findings_table,
    records_by_notebook,
    result_tables,
    row_labels,
)

__all__ = [
    "HIDDEN_TAGS",
    "MIOU_PARTS",
    "REPORT_TAG",
    "STATUS_STYLE",
    "dangling_links",
    "figures_section",
    "findings_summary",
    "findings_table",
    "notebook_title",
    "private_paths",
    "public",
    "records_by_notebook",
    "report_figures",
    "result_tables",
    "row_labels",
    "tex_to_mathml",
    "write_report",
]

# ---------------------------------------------------------------------- index.html
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em auto; max-width: 1100px;
  padding: 0 1em; color: #1d1d1d; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.8em;
  border-bottom: 1px solid #ddd; padding-bottom: 0.2em; } h3 { font-size: 1.05em; margin: 1.1em 0 0.4em; }
.headline { font-size: 1.1em; margin: 0.3em 0; } .muted { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 14px; margin: 0.2em 0 1em; }
.cap { font-weight: 600; margin: 0.8em 0 0.2em; font-size: 14px; }
th, td { border: 1px solid #d4d4d4; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } .l { text-align: left; } tbody tr:nth-child(even) { background: #fafafa; }
.st { padding: 1px 6px; border-radius: 3px; white-space: nowrap; font-weight: 600; }
ul.nbs { padding-left: 1.2em; } ul.nbs li { margin: 0.15em 0; }
figure { margin: 0.8em 0 1.6em; overflow-x: auto; } figure img { max-width: none; display: block; }
figcaption { font-size: 14px; margin-top: 0.3em; max-width: 900px; }
"""


def _status_span(state: str) -> str:
    """A notebook's status from ``suite.json`` (done / failed / died / interrupted / not run), coloured."""
    if not state:
        return ""
    if state.startswith("done"):
        fg, bg = STATUS_STYLE[findings.REPRODUCED]
    elif state.startswith(("failed", "died")):
        fg, bg = STATUS_STYLE[findings.NOT_REPRODUCED]
    elif "interrupted" in state:
        fg, bg = STATUS_STYLE[findings.VARIES]
    else:
        fg, bg = STATUS_STYLE[findings.NO_DATA]
    return f'<span class="st" style="color:{fg};background:{bg}">{html.escape(state)}</span>'


def _load_findings(run_dir: Path) -> tuple[list, list[dict]]:
    """Every notebook's findings and the files' meta (profile, dataset, calibration); unreadable files skipped."""
    found, metas = [], []
    for p in sorted((run_dir / "findings").glob("*.json")):
        try:
            meta, res = findings.load_file(p)
        except (ValueError, TypeError, KeyError):
            continue  # findings.load warns about it when the suite prints them
        found += res
        metas.append(meta)
    return found, metas


def _headline(run_dir: Path, suite: dict, recs: list[results.Record], found: list, metas: list[dict]) -> str:
    profile = str(suite.get("profile") or next((m.get("profile") for m in metas if m.get("profile")), "?"))
    datasets = sorted({r.dataset for r in recs} | {str(m["dataset"]) for m in metas if m.get("dataset")})
    if not datasets and (suite.get("parameters") or {}).get("dataset"):
        datasets = [str(suite["parameters"]["dataset"])]
    state = str(suite.get("state", ""))
    took = f" in {duration(suite['seconds'])}" if suite.get("seconds") is not None else ""
    parts = [
        f"Profile <b>{html.escape(profile)}</b>",
        f"dataset{'s' if len(datasets) > 1 else ''} <b>{html.escape(', '.join(datasets) or 'not recorded')}</b>",
        f"<b>{html.escape(findings_summary(found))}</b>" if found else "no expected findings checked",
    ]
    out = f'<p class="headline">{" · ".join(parts)}</p>'
    if state:
        out += f'<p class="muted">Suite {_status_span(state + took)}</p>'
    prov = suite.get("provenance")
    if prov:
        jobs = prov.get("jobs", 1)
        out += (
            f'<p class="muted"><b>Software and machine:</b> {html.escape(software_line(prov))} · '
            f"{jobs} notebook{'s' if jobs != 1 else ''} at a time · {html.escape(str(prov.get('platform', '')))}</p>"
        )
    sources = sorted({str(m.get("calibration")) for m in metas if m.get("calibration")})
    if found:
        cal = None
        if sources and len(datasets) == 1:
            cal = findings.load_calibration(profile, datasets[0])
        line = findings.calibration_line(cal) if cal or not sources else ""
        if sources:
            line = f"Calibration {html.escape(', '.join(Path(s).name for s in sources))}. " + html.escape(line)
        else:
            line = html.escape(line)
        out += f'<p class="muted">{line}</p>'
    return out


_INTRO = (
    "<p>Each notebook's <b>expected findings</b> are comparisons on its own records. A finding is "
    "<b>reproduced</b> when its claim holds in this run and its calibration (the profile run over "
    "several seeds, thread counts and versions) found the effect bigger than the run-to-run noise; "
    "<b>not reproduced</b> when the claim does not hold here; <b>varies</b> when the calibration found it "
    "inside the noise, so one run cannot settle it; <b>no data</b> when its records are missing. "
    "Beside each gap the <b>calibrated</b> range is shown, and a gap outside it is flagged (information: "
    "another machine, thread count or version moved the number).</p>"
    "<p><b>Results</b> are mIoU (%) after the last step of each task: <i>old</i> over the classes of "
    "step 0 (background included), <i>new</i> over the classes added later, <i>all</i> over every class. "
    "Each model is listed once, under the notebook that trained it (later notebooks re-evaluate it as "
    "a reference); training is the time of its last step.</p>"
    '<p class="muted">Folders of the machine that ran it are written &lt;run&gt; (this run\'s folder), '
    "$INCSEG_HOME (data and checkpoints), &lt;python&gt;, &lt;tmp&gt; and ~ (the home folder).</p>"
)


def _notebook_pages(run_dir: Path, rep: Path, paths) -> tuple[dict, dict, list]:
    """Export each executed notebook of ``run_dir`` to ``rep/<stem>.html``; returns ``(pages,
    titles, executed)``: notebook stem -> its page's file name (or why there is none), stem ->
    title, the executed notebooks' paths."""
    pages: dict[str, str] = {}
    titles: dict[str, str] = {}
    exporter = None
    executed = sorted((run_dir / "notebooks").glob("*.ipynb"))
    for nb in executed:
        exporter = exporter or offline_exporter()
        titles[nb.stem] = notebook_title(nb)
        try:
            body, _ = exporter.from_filename(str(nb))
        except Exception as e:  # noqa: BLE001  one unreadable notebook must not cost the whole report
            pages[nb.stem] = public(f"not converted: {type(e).__name__}: {e}"[:300], paths, escaped=False)
            continue
        atomic_write_text(rep / f"{nb.stem}.html", public(body, paths), what="the report")
        pages[nb.stem] = f"{nb.stem}.html"
    return pages, titles, executed


def _notebook_section(name: str, title: str, page: str, state: str, mine: list, tables: list) -> tuple[str, str]:
    """One notebook's line in the list and its section (findings table, result tables), as HTML."""
    if page.endswith(".html"):
        link = f'<a href="{urllib.parse.quote(page)}">{html.escape(title)}</a>'
    else:
        link = html.escape(title) + (f' <span class="muted">({html.escape(page)})</span>' if page else "")
    file = f' <span class="muted">{html.escape(name)}</span>' if title != name else ""
    body = f'<h2 id="{html.escape(name)}">{link} {state}</h2>'
    if mine:
        body += f"<h3>Expected findings: {html.escape(findings_summary(mine))}</h3>{findings_table(mine)}"
    if tables:
        body += "<h3>Results of the models this notebook trained</h3>" + "".join(tables)
    if not mine and not tables:
        body += '<p class="muted">No expected findings and no results of its own.</p>'
    return f"<li>{link}{file} {state}</li>", body


def write_report(run_dir: str | Path) -> Path:
    """Write ``<run_dir>/report/``: each executed notebook as HTML and ``index.html`` (headline, the
    notebooks with their status, per notebook its expected findings and result tables). The whole
    folder is readable offline and can be moved anywhere (relative links only).

    Returns:
        The path of ``index.html``.
    """
    run_dir = Path(run_dir)
    rep = run_dir / "report"
    rep.mkdir(exist_ok=True)
    suite = json.loads((run_dir / "suite.json").read_text()) if (run_dir / "suite.json").is_file() else {}
    status = suite.get("status") or {}
    paths = private_paths(run_dir)
    pages, titles, executed = _notebook_pages(run_dir, rep, paths)
    pictures = figures_section(run_dir, rep, executed, titles)

    recs = results.load(run_dir)
    by_notebook = records_by_notebook(recs)
    found, metas = _load_findings(run_dir)
    names = sorted(
        {Path(n).stem for n in suite.get("notebooks", [])}
        | {Path(n).stem for n in status}
        | set(pages)
        | set(by_notebook)
        | {r.notebook for r in found if r.notebook}
    )
    several_datasets = len({r.dataset for r in recs}) > 1
    toc, sections = [], []
    for name in names:
        line, body = _notebook_section(
            name,
            titles.get(name, name),
            pages.get(name, ""),
            _status_span(str(status.get(f"{name}.ipynb", ""))),
            [r for r in found if r.notebook == name],
            result_tables(by_notebook.get(name, []), several_datasets),
        )
        toc.append(line)
        sections.append(body)

    title = f"incseg run {html.escape(run_dir.name)}"
    index = rep / "index.html"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{_CSS}</style></head><body>
<h1>{title}</h1>
{_headline(run_dir, suite, recs, found, metas)}
{"<h2>At a glance</h2>" + pictures if pictures else ""}
<h2>Notebooks</h2><ul class="nbs">{"".join(toc) or "<li>none ran</li>"}</ul>
{_INTRO if (found or recs) else "<p>No results recorded.</p>"}
{"".join(sections)}
</body></html>
"""
    atomic_write_text(index, public(page, paths), what="the report")
    return index
