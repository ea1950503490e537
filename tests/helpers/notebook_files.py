"""Small notebooks for the suite's tests: a parameters cell (``profile``, ``run_dir``) and code cells."""

from __future__ import annotations

from pathlib import Path


def write_notebook(path: Path, *cells: str) -> Path:
    """A notebook at ``path`` whose first cell is tagged ``parameters`` and whose other cells are ``cells``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile = "smoke"\nrun_dir = ""', metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return Path(path)
