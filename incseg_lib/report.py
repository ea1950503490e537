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

import base64
import html
import json
import re
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from . import findings, results, runs
from .env import default_home, software_line
from .store import atomic_write_bytes, atomic_write_text

# What a finding's status looks like: (text colour, background).
STATUS_STYLE = {
    findings.REPRODUCED: ("#0a5d1e", "#d8f5dd"),
    findings.NOT_REPRODUCED: ("#8f1111", "#fbdada"),
    findings.VARIES: ("#6b4e00", "#fcefc2"),
    findings.NO_DATA: ("#444", "#e8e8e8"),
}
MIOU_PARTS = ("old", "new", "all")
# A notebook cell tagged REPORT_TAG gives its figures (and the lines printed under them) to the top of
# index.html, in notebook order: notebook 02's prediction after each step, notebook 06's galleries.
REPORT_TAG = "report"
# Cells a reader of a finished run does not need on its page: Colab's install cell and the parameters
# (papermill's injected cell holds this machine's paths; the headline names the profile).
HIDDEN_TAGS = ("setup", "parameters", "injected-parameters")


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
def records_by_notebook(records: list[dict]) -> dict[str, list[dict]]:
    """``records`` grouped by the notebook that trained their model: notebook name -> records.

    A notebook reusing another's checkpoint re-evaluates it and writes a record of its own with the
    same ``checkpoint``; of the records sharing ``(checkpoint, task, setting, step, eval_protocol,
    method)`` only those of the lowest-numbered notebook (the one that trained it) are kept. A record
    without a checkpoint is kept where it is.
    """

    def key(r: dict) -> tuple:
        if not r.get("checkpoint"):
            return ("file", r.get("_file", id(r)))
        return tuple(str(r.get(k)) for k in ("checkpoint", "task", "setting", "step", "eval_protocol", "method"))

    first: dict[tuple, str] = {}
    for r in records:
        nb = str(r.get("notebook", ""))
        first[key(r)] = min(first.get(key(r), nb), nb)
    out: dict[str, list[dict]] = {}
    for r in records:
        if str(r.get("notebook", "")) == first[key(r)]:
            out.setdefault(str(r.get("notebook", "")), []).append(r)
    return out


# ---------------------------------------------------------------------- a row's name a person reads
# The label of each row: the method's name and what tells two records of it apart (``SMiB (1/class)``),
# never a run code. It lives in results (a lower layer) so that the tables and figures use it too.
row_labels = results.display_labels


# ---------------------------------------------------------------------- tables
def _pct(v: Any) -> str:
    return "–" if v is None or v != v else f"{100 * float(v):.1f}"


def _duration(seconds: Any) -> str:
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


def result_tables(records: list[dict], several_datasets: bool = False) -> list[str]:
    """One notebook's result tables as HTML: one per (dataset, task, setting, evaluation), rows the
    methods after the task's last step, columns old / new / all mIoU (%) and the last step's
    training time; offline models (notebook 01) in a table of their own."""
    out = []
    protocols = sorted({r.get("eval_protocol", "full") for r in records}, key=lambda p: (p != "full", p))
    for protocol in protocols:
        final = results.final_steps(records, protocol)
        groups: dict[tuple, list[dict]] = {}
        for r in final:
            groups.setdefault((r["dataset"], r["task"], r["setting"]), []).append(r)
        offline = results.latest(
            [r for r in records if r.get("setting") == "offline" and r.get("eval_protocol", "full") == protocol],
            keys=("dataset", "method", "checkpoint", "eval_protocol"),
        )
        for r in offline:
            groups.setdefault((r["dataset"], "offline", "offline"), []).append(r)
        started: dict[tuple, int] = {}  # tasks in the order the notebook trained them
        for r in records:
            k = (r["dataset"], "offline" if r.get("setting") == "offline" else r["task"], r["setting"])
            started[k] = min(started.get(k, r.get("created_ns", 0)), r.get("created_ns", 0))
        for (dataset, task, setting), recs in sorted(groups.items(), key=lambda kv: (started.get(kv[0], 0), kv[0])):
            recs = sorted(recs, key=lambda r: runs.run_rank(r["method"]))
            labels = row_labels(recs)
            where = f" on {html.escape(str(dataset))}" if several_datasets else ""
            how = "" if protocol == "full" else f", evaluated on {html.escape(str(protocol).replace('-', ' '))}"
            if task == "offline":
                caption = f"Offline{where}: every class learned at once, mIoU (%){how}"
                header = ["model", "all", "pixel accuracy", "training"]
                rows = [
                    [
                        html.escape(lab),
                        _pct(r.get("miou_all")),
                        _pct(r.get("pixel_acc")),
                        _duration(r.get("train_seconds")),
                    ]
                    for lab, r in zip(labels, recs)
                ]
            else:
                last = max(r["step"] for r in recs)
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
                        _duration(r.get("train_seconds")),
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


# ---------------------------------------------------------------------- notebook pages
_TEMPLATE_NAME = "incseg_offline.html.j2"
# nbconvert's lab template without anything loaded from elsewhere: require.js, MathJax (formulas are
# MathML already), mermaid and the widget renderer (a widget needs a kernel; its text is shown).
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style type="text/css">
math { font-size: 1.05em; font-family: "STIX Two Math", "Latin Modern Math", "Cambria Math", math; }
math[display="block"] { margin: 0.6em 0; }
.incseg-tex { font-family: var(--jp-code-font-family); background: #f4f4f4; }
.incseg-nav { max-width: 1100px; margin: 0.5em auto; font-family: var(--jp-ui-font-family); font-size: 14px; }
/* figures at their own size (100 dpi: 7-pt text is 9.7 px); a wide one scrolls instead of shrinking */
.jp-RenderedImage { overflow-x: auto; }
.jp-RenderedImage img { max-width: none; }
</style>
{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
<nav class="incseg-nav"><a href="index.html">&larr; the run's report</a></nav>
{%- endblock body_header -%}
{%- block data_widget_view scoped -%}
<div class="jp-OutputArea-output">
<pre>{{ output.data.get('text/plain', '(a widget: it needs Jupyter)') | escape }}</pre></div>
{%- endblock data_widget_view -%}
"""
_XMLNS = re.compile(r'\s+xmlns="http://www\.w3\.org/1998/Math/MathML"')
_UNKNOWN_NAME = re.compile(r"<mi>\\([A-Za-z]+)</mi>")  # a command latex2mathml does not know (\arg): its name, upright


def tex_to_mathml(tex: str, display: bool = False) -> str:
    """``tex`` as a MathML element (HTML5 needs no namespace); the TeX itself, marked, if it cannot be converted."""
    from latex2mathml.converter import convert

    try:
        mathml = convert(tex.strip(), display="block" if display else "inline")
        return _UNKNOWN_NAME.sub(r'<mi mathvariant="normal">\1</mi>', _XMLNS.sub("", mathml))
    except Exception:  # noqa: BLE001  latex2mathml raises many kinds for TeX it does not know
        delim = "$$" if display else "$"
        return f'<code class="incseg-tex">{html.escape(f"{delim}{tex}{delim}")}</code>'


def _exporter():
    """An ``HTMLExporter`` that writes pages loading nothing from elsewhere, formulas as MathML."""
    import jinja2
    from nbconvert import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class MathMLRenderer(IPythonRenderer):
        def inline_math(self, body: str) -> str:
            return tex_to_mathml(body)

        def block_math(self, body: str) -> str:
            return tex_to_mathml(body, display=True)

        def latex_environment(self, name: str, body: str) -> str:
            return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    class OfflineHTMLExporter(HTMLExporter):
        @jinja2.pass_context
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            renderer = MathMLRenderer(
                escape=False,
                attachments=cell.get("attachments", {}),
                embed_images=self.embed_images,
                path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                anchor_link_text=self.anchor_link_text,
                exclude_anchor_links=self.exclude_anchor_links,
                **self.lexer_options,
            )
            return MarkdownWithMath(renderer=renderer).render(source)

    from traitlets.config import Config

    config = Config({"TagRemovePreprocessor": {"enabled": True, "remove_cell_tags": list(HIDDEN_TAGS)}})
    return OfflineHTMLExporter(
        config=config,
        template_name="lab",
        template_file=_TEMPLATE_NAME,
        extra_loaders=[jinja2.DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
    )


# ---------------------------------------------------------------------- what a page may not show
def private_paths(run_dir: Path) -> list[tuple[str, str]]:
    """``(absolute path, what the report writes instead)`` for the folders of this machine a page can
    mention (the run folder, ``$INCSEG_HOME``, the Python environment, the temporary folder, the
    home folder), longest first so that the most specific one is replaced."""
    places = {
        run_dir: "<run>",
        run_dir.resolve(): "<run>",
        default_home(): "$INCSEG_HOME",
        Path(sys.prefix): "<python>",
        Path(sys.base_prefix): "<python>",
        Path(tempfile.gettempdir()): "<tmp>",
        Path.home(): "~",
    }
    out = {str(Path(p).absolute()): name for p, name in places.items() if str(p) not in ("", "/", ".")}
    return sorted(out.items(), key=lambda kv: -len(kv[0]))


def public(text: str, paths: list[tuple[str, str]], escaped: bool = True) -> str:
    """``text`` with every path of :func:`private_paths` replaced by its name (HTML-escaped when
    ``escaped``): a report moves to another machine, and this one's folders mean nothing there."""
    for path, name in paths:
        text = text.replace(path, html.escape(name) if escaped else name)
    return text


_HREF = re.compile(r'(href|src)="([^"#?][^"]*)"')


def dangling_links(page: str, folder: Path) -> list[str]:
    """The relative links and sources of ``page`` (a page of ``folder``) that name no file there."""
    out = []
    for _, target in _HREF.findall(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("/"):
            continue  # http:, https:, mailto:, data: ... and absolute paths (no page writes those)
        if not (folder / urllib.parse.unquote(target.split("#")[0])).exists():
            out.append(target)
    return out


# ---------------------------------------------------------------------- the figures that open the report
def report_figures(notebook: Path) -> list[dict]:
    """The figures of ``notebook``'s cells tagged :data:`REPORT_TAG`, in order: ``{"suffix": ".png"
    or ".svg", "data": bytes, "text": what the cell printed after the figure (its reading)}``."""
    try:
        cells = json.loads(Path(notebook).read_text()).get("cells", [])
    except (OSError, ValueError):
        return []
    found: list[dict] = []
    for cell in cells:
        if REPORT_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                raw = "".join(data["image/png"]) if isinstance(data["image/png"], list) else data["image/png"]
                found.append({"suffix": ".png", "data": base64.b64decode(raw), "text": ""})
            elif "image/svg+xml" in data:
                svg = data["image/svg+xml"]
                found.append({"suffix": ".svg", "data": "".join(svg).encode(), "text": ""})
            elif out.get("output_type") == "stream" and found:
                found[-1]["text"] += "".join(out.get("text", ""))
    return found


def figures_section(run_dir: Path, rep: Path, notebooks: list[Path], titles: dict[str, str]) -> str:
    """The report's first pictures: every :func:`report_figures` of ``notebooks``, written to
    ``report/figures/`` and shown with the lines printed under them and a link to their notebook's page."""
    paths = private_paths(run_dir)
    parts = []
    for nb in notebooks:
        for k, fig in enumerate(report_figures(nb)):
            name = f"figures/{nb.stem}-{k + 1}{fig['suffix']}"
            atomic_write_bytes(rep / name, fig["data"], what="the report")
            title = html.escape(titles.get(nb.stem, nb.stem))
            text = html.escape(public(fig["text"].strip(), paths, escaped=False))
            parts.append(
                f'<figure><img src="{urllib.parse.quote(name)}" alt="a figure of {title}">'
                f'<figcaption>{text + "<br>" if text else ""}<span class="muted">From '
                f'<a href="{urllib.parse.quote(nb.stem)}.html">{title}</a>.</span></figcaption></figure>'
            )
    return "".join(parts)


def notebook_title(path: Path) -> str:
    """The first heading of the notebook's first markdown cell (``02 · Learning classes in steps ...``),
    else the file's name."""
    try:
        cells = json.loads(Path(path).read_text()).get("cells", [])
    except (OSError, ValueError):
        return Path(path).stem
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", ""))
            m = re.search(r"^#+\s+(.+)$", source, re.MULTILINE)
            return m.group(1).strip() if m else Path(path).stem
    return Path(path).stem


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


def _headline(run_dir: Path, suite: dict, recs: list[dict], found: list, metas: list[dict]) -> str:
    profile = str(suite.get("profile") or next((m.get("profile") for m in metas if m.get("profile")), "?"))
    datasets = sorted({str(r["dataset"]) for r in recs} | {str(m["dataset"]) for m in metas if m.get("dataset")})
    if not datasets and (suite.get("parameters") or {}).get("dataset"):
        datasets = [str(suite["parameters"]["dataset"])]
    state = str(suite.get("state", ""))
    took = f" in {_duration(suite['seconds'])}" if suite.get("seconds") is not None else ""
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


def write_report(run_dir: str | Path) -> Path:
    """Write ``<run_dir>/report/``: each executed notebook as HTML and ``index.html`` (headline, the
    notebooks with their status, per notebook its expected findings and result tables). The whole
    folder is readable offline and can be moved anywhere (relative links only).

    Returns:
        The path of ``index.html``.
    """
    # One function, longer than the house limit: it reads the page top to bottom (headline,
    # notebook list, per-notebook sections, pages) in the order a reader sees it; the pieces it
    # composes (_headline, findings_table, result_tables, the exporter) are the parts worth reusing.
    run_dir = Path(run_dir)
    rep = run_dir / "report"
    rep.mkdir(exist_ok=True)
    suite = json.loads((run_dir / "suite.json").read_text()) if (run_dir / "suite.json").is_file() else {}
    status = suite.get("status") or {}

    pages: dict[str, str] = {}  # notebook stem -> its page, or why there is none
    titles: dict[str, str] = {}
    exporter = None
    paths = private_paths(run_dir)
    executed = sorted((run_dir / "notebooks").glob("*.ipynb"))
    for nb in executed:
        exporter = exporter or _exporter()
        titles[nb.stem] = notebook_title(nb)
        try:
            body, _ = exporter.from_filename(str(nb))
        except Exception as e:  # noqa: BLE001  one unreadable notebook must not cost the whole report
            pages[nb.stem] = public(f"not converted: {type(e).__name__}: {e}"[:300], paths, escaped=False)
            continue
        atomic_write_text(rep / f"{nb.stem}.html", public(body, paths), what="the report")
        pages[nb.stem] = f"{nb.stem}.html"
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
    several_datasets = len({r["dataset"] for r in recs}) > 1

    toc, sections = [], []
    for name in names:
        title = html.escape(titles.get(name, name))
        page = pages.get(name, "")
        state = _status_span(str(status.get(f"{name}.ipynb", "")))
        if page.endswith(".html"):
            link = f'<a href="{urllib.parse.quote(page)}">{title}</a>'
        else:
            link = title + (f' <span class="muted">({html.escape(page)})</span>' if page else "")
        file = f' <span class="muted">{html.escape(name)}</span>' if titles.get(name, name) != name else ""
        toc.append(f"<li>{link}{file} {state}</li>")
        mine = [r for r in found if r.notebook == name]
        tables = result_tables(by_notebook.get(name, []), several_datasets)
        body = f'<h2 id="{html.escape(name)}">{link} {state}</h2>'
        if mine:
            body += f"<h3>Expected findings: {html.escape(findings_summary(mine))}</h3>{findings_table(mine)}"
        if tables:
            body += "<h3>Results of the models this notebook trained</h3>" + "".join(tables)
        if not mine and not tables:
            body += '<p class="muted">No expected findings and no results of its own.</p>'
        sections.append(body)

    intro = (
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
    title = f"incseg run {html.escape(run_dir.name)}"
    index = rep / "index.html"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{_CSS}</style></head><body>
<h1>{title}</h1>
{_headline(run_dir, suite, recs, found, metas)}
{"<h2>At a glance</h2>" + pictures if pictures else ""}
<h2>Notebooks</h2><ul class="nbs">{"".join(toc) or "<li>none ran</li>"}</ul>
{intro if (found or recs) else "<p>No results recorded.</p>"}
{"".join(sections)}
</body></html>
"""
    atomic_write_text(index, public(page, paths), what="the report")
    return index
