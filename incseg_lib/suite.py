"""The headless suite runner: execute the numbered notebooks with papermill, then an HTML report.

``incseg suite --profile smoke`` runs every ``notebooks/NN_*.ipynb`` present, in order, into a
new run folder::

    runs/<date>-<time>-<profile>/
      notebooks/NN_name.ipynb     executed copies (the sources in notebooks/ are never written)
      results/*.json              one record per evaluation (incseg_lib.results)
      report/index.html           result tables + links to each executed notebook as HTML
      report/NN_name.html

Parameter names are checked against each notebook's ``parameters`` cell before anything runs
(papermill itself only warns about unknown names).
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

SUITE_PARAMETERS = ("profile", "dataset", "data_root", "run_dir", "smoke")


class SuiteError(RuntimeError):
    """A notebook failed or a parameter does not exist (the message names notebook and cell)."""


def notebooks_dir() -> Path:
    """The folder of numbered notebooks: the repository's ``notebooks/`` (or ``$INCSEG_NOTEBOOKS``)."""
    env = os.environ.get("INCSEG_NOTEBOOKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "notebooks"


def find_notebooks(folder: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks (``NN_*.ipynb``) in order, optionally only those whose number is in ``only``.

    Raises:
        SuiteError: no notebook found, or a requested number matches none.
    """
    folder = Path(folder or notebooks_dir())
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise SuiteError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    if only:
        want = {o.strip().zfill(2) for o in only}
        unknown = want - {p.name[:2] for p in found}
        if unknown:
            raise SuiteError(f"--only {sorted(unknown)}: no such notebook in {folder}; present: "
                             f"{[p.name[:2] for p in found]}")
        found = [p for p in found if p.name[:2] in want]
    return found


def check_parameters(notebook: Path, params: dict[str, Any]) -> None:
    """Raise :class:`SuiteError` if ``params`` names a parameter the notebook does not declare."""
    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    if not declared:
        raise SuiteError(f"{notebook.name} has no cell tagged 'parameters'")
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise SuiteError(f"{notebook.name} has no parameter(s) {unknown}; it declares: {sorted(declared)}")


def coerce(value: str) -> Any:
    """Parse a ``-p NAME VALUE`` string: JSON if it parses (numbers, true/false, lists), else the text."""
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        if value in ("True", "False"):
            return value == "True"
        return value


def new_run_dir(out: str | Path | None, profile: str) -> Path:
    """A fresh run folder (never an existing one: results are never overwritten)."""
    if out:
        path = Path(out)
        if path.exists() and any(path.iterdir()):
            raise SuiteError(f"run folder {path} already exists and is not empty; choose a new --out")
    else:
        base = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{profile}"
        path, k = base, 1
        while path.exists():
            path, k = Path(f"{base}-{k}"), k + 1
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_suite(profile: str = "smoke", *, dataset: str = "", data_root: str = "", only: list[str] | None = None,
              out: str | Path | None = None, extra: dict[str, Any] | None = None,
              notebooks: Path | None = None, report: bool = True, print_fn: Callable = print) -> Path:
    """Run the numbered notebooks headlessly; return the run folder.

    Args:
        profile: smoke, cpu, colab or paper (passed to each notebook's ``profile`` parameter).
        dataset, data_root: overrides passed to every notebook ("" = the profile's default).
        only: notebook numbers to run, e.g. ``["01"]``.
        extra: further ``-p NAME VALUE`` parameters (checked against each notebook).

    Raises:
        SuiteError: an unknown parameter, or a failing notebook (names the notebook, the cell
            and the error; the partly executed notebook is kept in the run folder).
    """
    import papermill as pm

    from .config import PROFILES

    if profile not in PROFILES:
        raise SuiteError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    nbs = find_notebooks(notebooks, only)
    run_dir = new_run_dir(out, profile).resolve()
    params_all = {"profile": profile, "run_dir": str(run_dir), **({"dataset": dataset} if dataset else {}),
                  **({"data_root": str(Path(data_root).expanduser().resolve())} if data_root else {}),
                  **(extra or {})}
    for nb in nbs:  # check every notebook before running any
        check_parameters(nb, params_all)
    (run_dir / "notebooks").mkdir(exist_ok=True)
    (run_dir / "suite.json").write_text(json.dumps({"profile": profile, "parameters": params_all,
                                                    "notebooks": [p.name for p in nbs]}, indent=1))
    previous = os.environ.get("INCSEG_PROGRESS")
    os.environ["INCSEG_PROGRESS"] = "0"  # headless: one-line summaries instead of empty tqdm widgets
    try:
        for nb in nbs:
            target = run_dir / "notebooks" / nb.name
            t0 = time.perf_counter()
            print_fn(f"running {nb.name} ({profile}) ...")
            try:
                pm.execute_notebook(str(nb), str(target), parameters=params_all, progress_bar=False,
                                    cwd=str(run_dir), kernel_name="python3", log_output=False)
            except pm.PapermillExecutionError as e:
                if report:
                    write_report(run_dir)
                raise SuiteError(f"{nb.name} failed in cell {e.cell_index} (execution count {e.exec_count}): "
                                 f"{e.ename}: {e.evalue}\n  executed notebook kept at {target}") from None
            print_fn(f"  {nb.name} done in {time.perf_counter() - t0:.0f}s")
    finally:
        if previous is None:
            os.environ.pop("INCSEG_PROGRESS", None)
        else:
            os.environ["INCSEG_PROGRESS"] = previous
    if report:
        index = write_report(run_dir)
        print_fn(f"report: {index}")
    return run_dir


def write_report(run_dir: Path) -> Path:
    """Convert the executed notebooks to HTML and write ``report/index.html`` with the result tables."""
    from nbconvert import HTMLExporter

    from . import results

    run_dir = Path(run_dir)
    rep = run_dir / "report"
    rep.mkdir(exist_ok=True)
    exporter = HTMLExporter()
    links = []
    for nb in sorted((run_dir / "notebooks").glob("*.ipynb")):
        body, _ = exporter.from_filename(str(nb))
        (rep / f"{nb.stem}.html").write_text(body, encoding="utf-8")
        links.append(f'<li><a href="{html.escape(nb.stem)}.html">{html.escape(nb.stem)}</a></li>')
    recs = results.load(run_dir)
    tables = results.table(recs).to_html(index=False, na_rep="") if recs else "<p>No results recorded.</p>"
    suite = json.loads((run_dir / "suite.json").read_text()) if (run_dir / "suite.json").is_file() else {}
    index = rep / "index.html"
    index.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>incseg run {html.escape(run_dir.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}</style></head><body>
<h1>incseg run {html.escape(run_dir.name)}</h1><p>profile: {html.escape(str(suite.get('profile', '?')))}</p>
<h2>Notebooks</h2><ul>{''.join(links)}</ul>
<h2>Results (mIoU and pixel accuracy in %)</h2>{tables}</body></html>""", encoding="utf-8")
    return index
