"""The report's notebook pages and pictures: each executed notebook as offline HTML (formulas as
MathML, no remote scripts, setup and parameter cells left out, this machine's folders named, not
spelled out), the figures of cells tagged ``report``, and the check that every relative link of
a page resolves."""

from __future__ import annotations

import base64
import html
import json
import re
import sys
import tempfile
import urllib.parse
from pathlib import Path

from ..env import default_home
from ..store import atomic_write_bytes

# A notebook cell tagged REPORT_TAG gives its figures (and the lines printed under them) to the top of
# index.html, in notebook order: notebook 02's prediction after each step, notebook 06's galleries.
REPORT_TAG = "report"
# Cells a reader of a finished run does not need on its page: Colab's install cell and the parameters
# (papermill's injected cell holds this machine's paths; the headline names the profile).
HIDDEN_TAGS = ("setup", "parameters", "injected-parameters")


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


def offline_exporter():
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
