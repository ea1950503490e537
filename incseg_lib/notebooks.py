"""Keep each notebook's jupytext source (``notebooks/NN_name.py``) and its ``.ipynb`` in sync.

The ``.py`` (py:percent) file is the source of truth; the ``.ipynb`` is generated without
outputs and with metadata reduced to cell tags (what Colab opens).
"""

from __future__ import annotations

from pathlib import Path

from .suite import notebooks_dir


def to_notebook(source: Path):
    """Read a py:percent file and return the clean ``nbformat`` notebook."""
    import jupytext

    nb = jupytext.read(source)
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        cell.metadata = {"tags": tags} if tags else {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.pop("id", None)
    return nb


def render(source: Path) -> str:
    import nbformat

    nb = to_notebook(source)
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nbformat.writes(nb) + "\n"


def sync_all(folder: Path | None = None) -> list[Path]:
    """Regenerate every ``NN_*.ipynb`` from its ``.py``; return the paths written."""
    folder = Path(folder or notebooks_dir())
    written = []
    for src in sorted(folder.glob("[0-9][0-9]_*.py")):
        out = src.with_suffix(".ipynb")
        text = render(src)
        if not out.is_file() or out.read_text() != text:
            out.write_text(text)
            written.append(out)
    return written
