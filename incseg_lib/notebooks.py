"""The notebooks' files: each jupytext source (``notebooks/NN_name.py``) and its ``.ipynb``, kept in sync
both ways; every notebook's Colab setup cell; student copies of the exercises.

* :func:`sync_all` (``make notebooks``): for each pair, the side changed since the last sync wins
  and the other is regenerated (the ``.ipynb`` without outputs, metadata reduced to cell tags: what
  Colab opens); when both changed it refuses, naming the files. Without a record of the last sync
  (a fresh clone) the newer file wins, as jupytext's pairing does.
* :func:`setup_cell` renders the first code cell of every notebook from ``pyproject.toml`` (the
  repository URL and the release tag ``v<version>``): the one place that says where Colab installs
  the library from; ``$INCSEG_SOURCE`` overrides it at run time.
* :func:`student_copy` (``incseg student --out DIR``) replaces every ``# BEGIN SOLUTION`` ...
  ``# END SOLUTION`` block by ``raise NotImplementedError``, so the exercise's check cell raises
  :class:`~incseg_lib.exercises.ExerciseNotDone` until the student writes it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from .store import atomic_write_text
from .suite import notebooks_dir

SYNC_STATE = ".sync-state.json"  # in notebooks/, git-ignored: the hashes of each pair at the last sync
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"


class SyncConflict(RuntimeError):
    """Both the ``.py`` and the ``.ipynb`` of a notebook changed since the last sync."""


# ------------------------------------------------------------------------------ rendering
def to_notebook(source: Path | str, text: str | None = None):
    """Read a py:percent file (or its ``text``) and return the clean ``nbformat`` notebook."""
    import jupytext

    nb = jupytext.reads(text, fmt="py:percent") if text is not None else jupytext.read(source)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        cell.metadata = {"tags": tags} if tags else {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.pop("id", None)
    return nb


def _writes(nb) -> str:
    import nbformat

    nb.nbformat, nb.nbformat_minor = 4, 4
    return nbformat.writes(nb) + "\n"


def render(source: Path, text: str | None = None) -> str:
    """The ``.ipynb`` text of a py:percent source (no outputs, only cell tags as metadata)."""
    return _writes(to_notebook(source, text))


def to_source(ipynb_text: str) -> str:
    """The py:percent text of an ``.ipynb`` (outputs dropped; the inverse of :func:`render`)."""
    import jupytext

    nb = jupytext.reads(ipynb_text, fmt="ipynb")
    nb.metadata = {
        "jupytext": {"text_representation": {"extension": ".py", "format_name": "percent"}},
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    }
    text = jupytext.writes(nb, fmt="py:percent")
    # jupytext adds its version to the header; the sources keep the header stable across versions
    return re.sub(r"^#\s+(format_version|jupytext_version): .*\n", "", text, flags=re.M)


# ------------------------------------------------------------------------------ the setup cell
def _pyproject(root: Path) -> tuple[str, str]:
    """(repository URL, version) of ``root/pyproject.toml`` (``[project.urls] Repository``, and the
    version of ``incseg_lib/__init__.py``).

    Raises:
        ValueError: no Repository URL declared (names the file and the table to add).
    """
    text = (root / "pyproject.toml").read_text()
    try:
        import tomllib

        url = tomllib.loads(text).get("project", {}).get("urls", {}).get("Repository", "")
    except ImportError:  # Python 3.10
        m = re.search(r'^\s*Repository\s*=\s*"([^"]+)"', text, re.M)
        url = m.group(1) if m else ""
    if not url:
        raise ValueError(
            f"{root / 'pyproject.toml'} declares no [project.urls] Repository: add the repository "
            "the notebooks install from on Colab"
        )
    m = re.search(r'^__version__\s*=\s*"([^"]+)"', (root / "incseg_lib" / "__init__.py").read_text(), re.M)
    return url.rstrip("/"), m.group(1)


def default_source(root: Path | None = None) -> str:
    """The pip requirement the notebooks install on Colab: ``git+<Repository>@v<version>``."""
    url, version = _pyproject(Path(root) if root else notebooks_dir().parent)
    return f"git+{url}@v{version}"


def setup_cell(root: Path | None = None) -> str:
    """The first code cell of every notebook (py:percent), rendered from ``pyproject.toml``."""
    return f'''# %% tags=["setup"]
USE_DRIVE = False  # Colab: True keeps data, checkpoints and results on Google Drive (INCSEG_HOME)
SOURCE = "{default_source(root)}"  # from pyproject.toml (`make notebooks`)
import os, subprocess, sys  # noqa: E401,E402

try:
    import google.colab  # noqa: F401  (exists on Colab only; elsewhere this cell does nothing)
except ImportError:
    pass
else:
    SOURCE = os.environ.get("INCSEG_SOURCE") or SOURCE  # a course's fork: git URL@ref, wheel or folder
    if subprocess.run([sys.executable, "-m", "pip", "install", "-q", SOURCE]).returncode:
        raise RuntimeError(
            f"could not install incseg from {{SOURCE!r}}: set INCSEG_SOURCE to a reachable git "
            "URL with @ref, a wheel or a folder (os.environ['INCSEG_SOURCE'] = ...)"
        )
    from incseg_lib.colab import setup

    setup(SOURCE, drive=USE_DRIVE)
'''


_SETUP_RE = re.compile(r'^# %% tags=\["setup"\]\n.*?(?=^# %%)', re.S | re.M)


def with_setup_cell(text: str, root: Path | None = None) -> str:
    """``text`` (a py:percent source) with its setup cell replaced by :func:`setup_cell`.

    Raises:
        ValueError: the source has no cell tagged ``setup`` before another cell.
    """
    if not _SETUP_RE.search(text):
        raise ValueError("no cell tagged 'setup' found; every notebook starts with the setup cell")
    return _SETUP_RE.sub(lambda m: setup_cell(root) + "\n", text, count=1)


# ------------------------------------------------------------------------------ two-way sync
def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _cells_digest(ipynb_text: str) -> str:
    """Hash of an ``.ipynb``'s cells (type, tags, source): outputs and execution counts do not count
    as a change, so running a notebook in Jupyter and saving it is not an edit."""
    nb = json.loads(ipynb_text)
    cells = [
        (
            c["cell_type"],
            c.get("metadata", {}).get("tags", []),
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"],
        )
        for c in nb["cells"]
    ]
    return _digest(json.dumps(cells))


def sync_all(folder: Path | None = None, prefer: str = "") -> list[Path]:
    """Sync every ``NN_*.py`` with its ``NN_*.ipynb``, in whichever direction changed; return the paths written.

    The setup cell of every source is first re-rendered from ``pyproject.toml``. For each pair:
    in sync (same cells) -> nothing; only one side changed since the last sync -> it wins; no record
    of the last sync -> the newer file wins (jupytext's pairing rule); both changed -> refused unless
    ``prefer`` (``py`` or ``ipynb``) says which wins. An ``.ipynb`` without a ``.py`` gets one.
    Writes are atomic.

    Raises:
        SyncConflict: both files of a pair changed (names them and the way out).
        ValueError: bad ``prefer``.
    """
    if prefer not in ("", "py", "ipynb"):
        raise ValueError(f"prefer={prefer!r}; choose 'py' or 'ipynb'")
    folder = Path(folder or notebooks_dir())
    state_file = folder / SYNC_STATE
    try:
        state = json.loads(state_file.read_text())
    except (OSError, json.JSONDecodeError):
        state = {}
    written: list[Path] = []
    conflicts: list[str] = []
    stems = sorted(
        {p.stem for p in folder.glob("[0-9][0-9]_*.py")} | {p.stem for p in folder.glob("[0-9][0-9]_*.ipynb")}
    )
    for stem in stems:
        py, nb = folder / f"{stem}.py", folder / f"{stem}.ipynb"
        if py.is_file():
            text = py.read_text()
            fixed = with_setup_cell(text, folder.parent)
            if fixed != text:
                _atomic_write(py, fixed)
                written.append(py)
        if not py.is_file():
            _atomic_write(py, with_setup_cell(to_source(nb.read_text()), folder.parent))
            written.append(py)
        py_text = py.read_text()
        want_nb = render(py, py_text)
        if not nb.is_file():
            _atomic_write(nb, want_nb)
            written.append(nb)
        nb_text = nb.read_text()
        h_py, h_nb = _digest(py_text), _cells_digest(nb_text)
        if _cells_digest(want_nb) == h_nb:  # same cells
            if nb_text != want_nb:  # outputs or metadata only: strip them
                _atomic_write(nb, want_nb)
                written.append(nb)
        else:
            last = state.get(stem, {})
            py_changed = last.get("py") != h_py if last else None
            nb_changed = last.get("ipynb") != h_nb if last else None
            if last and py_changed and nb_changed and not prefer:
                conflicts.append(stem)
                continue
            if prefer:
                winner = prefer
            elif last:
                winner = "py" if py_changed else "ipynb"
            else:
                winner = "py" if py.stat().st_mtime >= nb.stat().st_mtime else "ipynb"
            if winner == "py":
                _atomic_write(nb, want_nb)
                written.append(nb)
            else:
                py_text = with_setup_cell(to_source(nb_text), folder.parent)
                _atomic_write(py, py_text)
                _atomic_write(nb, render(py, py_text))
                written += [py, nb]
        state[stem] = {"py": _digest(py.read_text()), "ipynb": _cells_digest(nb.read_text())}
    _atomic_write(state_file, json.dumps(state, indent=1, sort_keys=True) + "\n")
    if conflicts:
        names = ", ".join(f"{s}.py / {s}.ipynb" for s in conflicts)
        raise SyncConflict(
            f"both files changed since the last sync: {names}; keep one side with "
            "`incseg sync-notebooks --prefer py` or `--prefer ipynb` (the other is overwritten), "
            "or merge the edits by hand first"
        )
    return written


def _atomic_write(path: Path, text: str) -> None:

    atomic_write_text(path, text)


# ------------------------------------------------------------------------------ student copies
_MARKER = re.compile(r"^\s*#\s*(BEGIN|END)\s+SOLUTION\b", re.IGNORECASE)
# what a copy is checked against: anything that looks like a marker, misspelt ones included
_LOOSE_MARKER = re.compile(r"#\s*(BEGIN|END)[\s_-]*SOLUTION", re.IGNORECASE)


def _marker(line: str) -> str:
    """``BEGIN`` or ``END`` when ``line`` is a solution marker, with or without a note after it
    (``# BEGIN SOLUTION (exercise 1)``, ``#begin solution``), else ``""``."""
    m = _MARKER.match(line)
    return m.group(1).upper() if m else ""


def strip_solutions(text: str, name: str = "") -> str:
    """``text`` with each ``# BEGIN SOLUTION`` .. ``# END SOLUTION`` block (markers included, with or
    without a note after them) replaced by ``raise NotImplementedError(...)`` at the marker's
    indentation.

    Raises:
        ValueError: unbalanced markers (names ``name``, the notebook, and the line).
    """
    where = f"{name}: " if name else ""
    out, inside, start = [], False, 0
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        kind = _marker(line)
        if kind == "BEGIN":
            if inside:
                raise ValueError(f"{where}line {n}: {BEGIN} inside the solution block opened at line {start}")
            inside, start = True, n
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f'{indent}raise NotImplementedError("exercise: write this part")\n')
        elif kind == "END":
            if not inside:
                raise ValueError(f"{where}line {n}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}line {start}: {BEGIN} without {END}")
    return "".join(out)


def solution_lines(text: str) -> list[str]:
    """The lines inside ``text``'s solution blocks that give something away: stripped, at least 12
    characters, not comments, and not also written outside a block (``return out`` may be both)."""
    inside, sol, rest = False, set(), set()
    for line in text.splitlines():
        kind = _marker(line)
        if kind:
            inside = kind == "BEGIN"
            continue
        (sol if inside else rest).add(line.strip())
    return sorted(x for x in sol - rest if len(x) >= 12 and not x.startswith("#"))


def student_copy(source: Path) -> str:
    """The ``.ipynb`` text of the student copy of ``source`` (a py:percent notebook), checked to hold
    no solution marker and no line of a solution.

    Raises:
        ValueError: unbalanced markers, or a copy that still holds a solution (names the notebook
            and the line).
    """
    source = Path(source)
    text = source.read_text()
    copy = render(source, strip_solutions(text, source.name))
    code = "\n".join(
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in json.loads(copy)["cells"]
        if c["cell_type"] == "code"
    )
    lines = code.splitlines()
    shown = {x.strip() for x in lines}
    left = [line for line in lines if _LOOSE_MARKER.search(line)] + [x for x in solution_lines(text) if x in shown]
    if left:
        raise ValueError(
            f"{source.name}: the student copy would still hold a solution ({left[0].strip()!r}); "
            "mark every solution with a '# BEGIN SOLUTION' / '# END SOLUTION' pair"
        )
    return copy


def check_in_sync(folder: Path | None = None) -> None:
    """Refuse when a notebook's ``.py`` and ``.ipynb`` hold different cells: student copies are made
    from the ``.py``, so an edit made only in the ``.ipynb`` would be missing from them.

    Raises:
        SyncConflict: names the notebooks and the command that syncs them.
    """
    folder = Path(folder or notebooks_dir())
    stale = []
    for py in sorted(folder.glob("[0-9][0-9]_*.py")):
        nb = py.with_suffix(".ipynb")
        if nb.is_file() and _cells_digest(nb.read_text()) != _cells_digest(render(py)):
            stale.append(nb.name)
    if stale:
        raise SyncConflict(
            f"{', '.join(stale)} differ from their .py sources, which the student copies are made from; "
            "run `make notebooks` (incseg sync-notebooks) first"
        )


def exercise_cells(nb_text: str) -> list[tuple[str, str]]:
    """``(exercise source, check source)`` pairs of an ``.ipynb``: each ``exercise`` cell with the
    ``check`` cell after it.

    Raises:
        ValueError: an exercise cell not followed by a check cell.
    """
    cells = json.loads(nb_text)["cells"]
    src = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells]
    tags = [c.get("metadata", {}).get("tags", []) for c in cells]
    pairs = []
    for i, t in enumerate(tags):
        if "exercise" in t:
            j = next((k for k in range(i + 1, len(cells)) if cells[k]["cell_type"] == "code"), None)
            if j is None or "check" not in tags[j]:
                raise ValueError(f"exercise cell {i} is not followed by a cell tagged 'check'")
            pairs.append((src[i], src[j]))
    return pairs


def write_student_copies(out: Path, folder: Path | None = None, force: bool = False) -> list[Path]:
    """Write the student copy of every numbered notebook into ``out``; return the paths.

    Raises:
        FileExistsError: copies exist already and ``force`` is off (names them; nothing is written).
        SyncConflict: a ``.ipynb`` differs from its ``.py`` (:func:`check_in_sync`).
        ValueError: a copy would keep a solution (:func:`student_copy`).
    """
    folder = Path(folder or notebooks_dir())
    out = Path(out)
    check_in_sync(folder)
    sources = sorted(folder.glob("[0-9][0-9]_*.py"))
    copies = [student_copy(src) for src in sources]  # every copy made and checked before the first is written
    out.mkdir(parents=True, exist_ok=True)
    targets = [out / f"{src.stem}.ipynb" for src in sources]
    existing = [t for t in targets if t.exists()]
    if existing and not force:  # all or nothing: never half a set of copies beside older ones
        raise FileExistsError(
            f"{len(existing)} student copies exist already in {out} ({', '.join(t.name for t in existing)}); "
            "choose a new --out folder or pass --force to overwrite them"
        )
    for target, text in zip(targets, copies):
        _atomic_write(target, text)
    return targets
