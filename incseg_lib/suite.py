"""The headless suite runner: execute the numbered notebooks with papermill, then an HTML report.

``incseg suite`` (profile ``demo``; ``--profile smoke`` in CI) runs every ``notebooks/NN_*.ipynb`` present into a
new run folder, in order (two at a time for the small profiles, ``--jobs``, longest first: see
:data:`START_FIRST`; notebook 06 last)::

    $INCSEG_HOME/runs/<date>-<time>-<profile>/     (INCSEG_HOME: the checkout by default)
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
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

from .config import runs_root

SUITE_PARAMETERS = ("profile", "dataset", "data_root", "run_dir", "smoke")
# The kernel logs only errors: its "running over TCP without encryption" warning (the kernel listens
# on 127.0.0.1 only) would otherwise clutter every run log.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
# Notebooks that read every other notebook's records: they run after the others.
COLLECTORS = ("06",)
# When notebooks run several at a time, these start first, in this order: 02 is the longest and trains
# the step-0 model that 03, 04 and 05 reuse; 01 trains the offline model that 02's Joint row reuses;
# 05 is the next longest. The rest follow in numeric order. (Demo suite, two lanes: 02 | 01 then 05.)
START_FIRST = ("02", "01", "05")
# Profiles whose notebooks run two at a time by default (small models: one core each is nearly as fast as two).
PARALLEL_PROFILES = ("demo", "smoke")


def launch_order(notebooks: list[Path], jobs: int) -> list[Path]:
    """The order in which ``notebooks`` are started: as given with one lane; with several, those
    of :data:`START_FIRST` first (longest and most reused, so no lane idles at the end), the
    others after them in their given order."""
    if jobs <= 1:
        return list(notebooks)
    rank = {p: i for i, p in enumerate(START_FIRST)}
    return sorted(notebooks, key=lambda nb: rank.get(nb.name[:2], len(START_FIRST)))


class SuiteError(RuntimeError):
    """A notebook failed or a parameter does not exist (the message names notebook and cell).

    Attributes:
        notebook: the failing notebook's file name, ``""`` when no notebook ran.
    """

    def __init__(self, message: str, notebook: str = ""):
        super().__init__(message)
        self.notebook = notebook


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


def declared_parameters(notebook: Path) -> dict[str, dict]:
    """The notebook's ``parameters`` cell as papermill reads it: name -> {inferred_type_name, default, help}.

    Raises:
        SuiteError: the notebook has no cell tagged ``parameters``.
    """
    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    if not declared:
        raise SuiteError(f"{notebook.name} has no cell tagged 'parameters'")
    return declared


def route_parameters(notebooks: list[Path], params: dict[str, Any]) -> dict[Path, dict[str, Any]]:
    """The parameters each notebook gets: those of ``params`` it declares (suite-wide ``-p``).

    A name no selected notebook declares is an error naming close matches and where they are
    declared; a value whose type does not fit the declaration (``-p epochs abc``) is an error
    naming the parameter, the notebook and the expected type.

    Raises:
        SuiteError: as above.
    """
    import difflib

    declared = {nb: declared_parameters(nb) for nb in notebooks}
    known = sorted({n for d in declared.values() for n in d})
    for name in params:
        if not any(name in d for d in declared.values()):
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            where = "; ".join(f"{c!r} in {', '.join(nb.stem[:2] for nb, d in declared.items() if c in d)}"
                              for c in close)
            raise SuiteError(f"no selected notebook declares a parameter {name!r}"
                             + (f"; did you mean {where}?" if close else "")
                             + f" (`incseg suite --list-params` lists every notebook's parameters)")
    routed = {}
    for nb, d in declared.items():
        mine = {}
        for k, v in params.items():
            if k not in d:
                continue
            kind = d[k].get("inferred_type_name", "")
            if kind == "str" and not isinstance(v, str):
                v = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
            elif kind == "float" and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            fits = {"int": isinstance(v, int) and not isinstance(v, bool), "float": isinstance(v, float),
                    "bool": isinstance(v, bool)}.get(kind, True)
            if not fits:
                raise SuiteError(f"parameter {k}={v!r} does not fit {nb.name}, which declares {k}: {kind} "
                                 f"(default {d[k].get('default')}; {d[k].get('help', '')})")
            mine[k] = v
        routed[nb] = mine
    return routed


def list_parameters(notebooks: list[Path]) -> str:
    """Every notebook's parameters (name, type, default, help) as text, for ``--list-params``."""
    lines = []
    for nb in notebooks:
        lines.append(nb.stem)
        for name, d in declared_parameters(nb).items():
            lines.append(f"  {name}: {d.get('inferred_type_name', '?')} = {d.get('default', '')}"
                         f"  # {d.get('help', '')}")
    return "\n".join(lines)


def coerce(value: str) -> Any:
    """Parse a ``-p NAME VALUE`` string: JSON if it parses (numbers, true/false, lists), else the text."""
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        if value in ("True", "False"):
            return value == "True"
        return value


def new_run_dir(out: str | Path | None, profile: str) -> Path:
    """A fresh run folder, created exclusively (results are never overwritten, and two suites
    started in the same second get two folders).

    Raises:
        SuiteError: ``out`` exists and is not empty, is a file, or cannot be created (names it).
    """
    if out:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise SuiteError(f"--out {path} is a file; give a new folder")
        if path.exists() and any(path.iterdir()):
            raise SuiteError(f"run folder {path} already exists and is not empty; choose a new --out")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SuiteError(f"cannot create run folder {path}: {e.strerror}; choose a writable --out") from None
        return path
    base = runs_root() / f"{time.strftime('%Y%m%d-%H%M%S')}-{profile}"
    path, k = base, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)  # exclusive: a concurrent suite takes the next name
            return path
        except FileExistsError:
            path, k = Path(f"{base}-{k}"), k + 1
        except OSError as e:
            raise SuiteError(f"cannot create run folder {path}: {e.strerror}; pass a writable --out") from None


def run_suite(profile: str = "demo", *, dataset: str = "", data_root: str = "", only: list[str] | None = None,
              out: str | Path | None = None, extra: dict[str, Any] | None = None,
              notebooks: Path | None = None, report: bool = True, threads: int = 0, jobs: int = 0,
              print_fn: Callable = print) -> Path:
    """Run the numbered notebooks headlessly; return the run folder.

    Args:
        profile: demo, smoke, cpu, colab or paper (passed to each notebook's ``profile`` parameter).
        dataset, data_root: overrides passed to every notebook ("" = the profile's default).
        only: notebook numbers to run, e.g. ``["01"]``.
        jobs: notebooks run at the same time, each in its own kernel; 0 = two for the ``demo`` and
            ``smoke`` profiles on a machine with two cores or more (their small models use one core
            almost as well as two, so two notebooks at once take about half the time), else one.
            Notebooks needing the same checkpoint never train it twice: the first trains it under a
            lock (:func:`~incseg_lib.engine.checkpoint_lock`), the other waits and reuses it.
            Notebook 06 (it collects every record) runs after the others.
        threads: PyTorch (OpenMP) threads of each notebook kernel; 0 = ``$OMP_NUM_THREADS`` if set,
            else the CPU cores divided by ``jobs``. On a machine shared by several suites (a lab server), give
            each suite ``cores / suites`` threads: two suites with all cores each run many times
            slower than with half each (README, "Shared machines").
        extra: further ``-p NAME VALUE`` parameters: each goes to the notebooks that declare it
            (a name no selected notebook declares is an error); ``-p dataset``/``-p data_root``
            act as ``dataset``/``data_root`` (a relative path is resolved against the current
            folder, not the run folder); ``profile``, ``run_dir`` and ``smoke`` are refused (use the
            options).

    Raises:
        SuiteError: an unknown parameter, or a failing notebook (names the notebook, the cell
            and the error; the partly executed notebook is kept in the run folder).
    """
    import papermill as pm

    from .config import PROFILES

    if profile not in PROFILES:
        raise SuiteError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    extra = dict(extra or {})
    for name, option in (("profile", "--profile"), ("run_dir", "--out"), ("smoke", "--profile smoke")):
        if name in extra:
            raise SuiteError(f"-p {name} would silently override the suite's {option}; use {option} instead")
    for name, given in (("dataset", dataset), ("data_root", data_root)):
        if name in extra:
            if given:
                raise SuiteError(f"both --{name.replace('_', '-')} and -p {name} given; keep one")
            value = extra.pop(name)
            dataset, data_root = (value, data_root) if name == "dataset" else (dataset, str(value))
    nbs = [nb.resolve() for nb in find_notebooks(notebooks, only)]
    suite_params = {"profile": profile, **({"dataset": dataset} if dataset else {}),
                    **({"data_root": str(Path(data_root).expanduser().resolve())} if data_root else {})}
    routed = route_parameters(nbs, {**suite_params, "run_dir": "", **extra})  # checks before any folder exists
    run_dir = new_run_dir(out, profile).resolve()
    per_notebook = {nb: {**p, **({"run_dir": str(run_dir)} if "run_dir" in p else {})} for nb, p in routed.items()}
    params_all = {**suite_params, "run_dir": str(run_dir), **extra}
    (run_dir / "notebooks").mkdir(exist_ok=True)
    suite_info = {"profile": profile, "parameters": params_all, "notebooks": [p.name for p in nbs], "status": {},
                  "state": "running"}

    status_lock = threading.Lock()

    def set_status(name: str, status: str) -> None:
        with status_lock:  # notebooks of parallel lanes report from their threads
            suite_info["status"][name] = status
            tmp = run_dir / ".suite.json.tmp"
            tmp.write_text(json.dumps(suite_info, indent=1))
            os.replace(tmp, run_dir / "suite.json")

    set_status(nbs[0].name, "pending")
    home = os.getcwd()
    previous = {k: os.environ.get(k) for k in ("INCSEG_PROGRESS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ["INCSEG_PROGRESS"] = "0"  # headless: one-line summaries instead of empty tqdm widgets
    cores = os.cpu_count() or 1
    n_jobs = int(jobs) if jobs else (min(2, cores) if profile in PARALLEL_PROFILES else 1)
    parallel = [nb for nb in nbs if nb.name[:2] not in COLLECTORS]  # 06 waits for the others
    n_jobs = max(1, min(n_jobs, len(parallel) or 1))
    n_threads = (int(threads) if threads else int(os.environ.get("OMP_NUM_THREADS") or 0)
                 or max(1, cores // n_jobs))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n_threads)  # the kernels inherit it
    print_fn(f"{len(nbs)} notebook(s), profile {profile}, {n_jobs} at a time, {n_threads} PyTorch thread(s) "
             f"per kernel ({cores} CPU cores; --jobs, --threads or OMP_NUM_THREADS to change)")
    from .env import provenance, software_line

    # the kernels' threads, not this process's: every notebook computes with n_threads
    suite_info["provenance"] = {**provenance(), "threads": n_threads, "jobs": n_jobs}
    print_fn(f"software and machine: {software_line(suite_info['provenance'])}")
    failures: list[SuiteError] = []

    def run_one(nb: Path) -> None:
        target = run_dir / "notebooks" / nb.name
        t0 = time.perf_counter()
        print_fn(f"running {nb.name} ({profile}) ...")
        set_status(nb.name, "running")
        try:
            pm.execute_notebook(str(nb), str(target), parameters=per_notebook[nb], progress_bar=False,
                                kernel_name="python3", log_output=False,
                                extra_arguments=KERNEL_ARGUMENTS)
        except pm.PapermillExecutionError as e:
            set_status(nb.name, f"failed in cell {e.cell_index}: {e.ename}: {e.evalue}")
            raise SuiteError(f"{nb.name} failed in cell {e.cell_index} (execution count {e.exec_count}): "
                             f"{e.ename}: {e.evalue}\n  executed notebook kept at {target}", nb.name) from None
        except Exception as e:  # the kernel died (nbclient's DeadKernelError), timed out, ...
            dead = type(e).__name__ == "DeadKernelError"
            why = ("its kernel died, most likely killed for lack of memory (lower batch_size or crop_size, "
                   "or close other programs)" if dead else f"{type(e).__name__}: {e}")
            set_status(nb.name, f"{'died' if dead else 'failed'}: {why}")
            raise SuiteError(f"{nb.name} did not finish: {why}\n  results of the notebooks that finished "
                             f"are in {run_dir / 'report' / 'index.html'}", nb.name) from None
        set_status(nb.name, f"done in {time.perf_counter() - t0:.0f}s")
        print_fn(f"  {nb.name} done in {time.perf_counter() - t0:.0f}s")

    # papermill also keeps a process-wide folder in its local file handler, which every
    # execute_notebook saves and restores around itself: two lanes restore each other's saved value
    # out of order and leave a folder behind, which later writes chdir into (once a test's temporary
    # folder is deleted: FileNotFoundError). Pinned to the run folder for the whole suite, every save
    # and restore in between sees the same value; the caller's value comes back at the end.
    handler = pm.iorw.papermill_io.get_handler("local")
    handler_cwd = handler.cwd(str(run_dir))
    try:
        t_suite = time.perf_counter()
        # Every kernel starts in the run folder. The process changes folder once here, not in each
        # papermill call: papermill's cwd= is a process-wide chdir that two threads would undo in the
        # wrong order, leaving the caller in a run folder (and, once that is deleted, nowhere).
        os.chdir(run_dir)
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            pending = {}
            queue = launch_order(parallel, n_jobs)
            while queue or pending:
                while queue and len(pending) < n_jobs and not failures:
                    nb = queue.pop(0)
                    pending[pool.submit(run_one, nb)] = nb
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    pending.pop(fut)
                    if fut.exception() is not None:
                        failures.append(fut.exception())
        for nb in nbs:  # notebooks that collect every record run after the others
            if nb not in parallel and not failures:
                try:
                    run_one(nb)
                except SuiteError as e:
                    failures.append(e)
        if failures:
            suite_info["state"] = "failed"
            set_status(failures[0].notebook or nbs[0].name, suite_info["status"].get(failures[0].notebook, "failed"))
            if report:
                write_report(run_dir)
            raise failures[0]
        suite_info["state"] = "done"
        suite_info["seconds"] = round(time.perf_counter() - t_suite, 1)
        set_status(nbs[-1].name, suite_info["status"].get(nbs[-1].name, "done"))
        print_fn(f"suite done in {time.perf_counter() - t_suite:.0f}s")
    finally:
        os.chdir(home)
        handler.cwd(handler_cwd)
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if report:
        index = write_report(run_dir)
        print_fn(f"report: {index}")
    print_findings(run_dir, print_fn)
    return run_dir


def run_calibration(profile: str = "demo", seeds: list[int] = (0, 1, 2), *, out: str | Path | None = None,
                    extra: dict[str, Any] | None = None, print_fn: Callable = print, **suite_options) -> dict:
    """The profile's whole plan once per seed (``<out>/seed-<k>/``, each a full suite run), then the
    findings' calibration over them (:func:`~incseg_lib.findings.calibrate`), written to
    ``<out>/calibration.json`` and, as a table, ``<out>/calibration.md``.

    Copy ``calibration.json`` to ``incseg_lib/calibration/<profile>-<dataset>.json`` (or pass
    several folders, e.g. also a run under another PyTorch, to ``incseg calibrate``) to make it the
    profile's margins.

    Raises:
        SuiteError: ``-p seed`` given too, a notebook fails, or ``out`` is not a new folder.
    """
    from . import findings

    extra = dict(extra or {})
    if "seed" in extra:
        raise SuiteError("-p seed and --seeds both given: --seeds runs the suite once per seed; drop -p seed")
    base = new_run_dir(out, f"{profile}-calibration").resolve()
    runs = []
    for seed in seeds:
        print_fn(f"=== calibration run, seed {seed} ===")
        runs.append(run_suite(profile, out=base / f"seed-{seed}", extra={**extra, "seed": int(seed)},
                              print_fn=print_fn, **suite_options))
    cal = findings.calibrate(runs)
    (base / "calibration.json").write_text(json.dumps(cal, indent=1))
    text = findings.calibration_table(cal)
    (base / "calibration.md").write_text(text + "\n")
    print_fn(text)
    print_fn(f"calibration of {len(runs)} runs: {base / 'calibration.json'}")
    return cal


def findings_summary(found: list) -> str:
    """``"23 of 25 expected findings reproduced (1 not, 1 varies between runs)"``."""
    from . import findings

    count = {st: sum(r.status == st for r in found) for st in
             (findings.REPRODUCED, findings.NOT_REPRODUCED, findings.VARIES, findings.NO_DATA)}
    rest = [f"{count[findings.NOT_REPRODUCED]} not"] if count[findings.NOT_REPRODUCED] else []
    rest += [f"{count[findings.VARIES]} varies between runs"] if count[findings.VARIES] else []
    rest += [f"{count[findings.NO_DATA]} without data"] if count[findings.NO_DATA] else []
    return (f"{count[findings.REPRODUCED]} of {len(found)} expected findings reproduced"
            + (f" ({', '.join(rest)})" if rest else ""))


def print_findings(run_dir: Path, print_fn: Callable = print) -> None:
    """Print every notebook's expected findings (reproduced or not, with their numbers and margins)."""
    from . import findings

    found = findings.load(run_dir)
    if not found:
        return
    print_fn(findings_summary(found))
    notebook = None
    for r, line in zip(found, findings.format_lines(found)):
        if r.notebook != notebook:
            notebook = r.notebook
            print_fn(f"  {notebook}")
        print_fn(f"    {line}")


def write_report(run_dir: Path) -> Path:
    """Convert the executed notebooks to HTML and write ``report/index.html`` with the result tables."""
    from nbconvert import HTMLExporter

    from . import findings, results

    run_dir = Path(run_dir)
    rep = run_dir / "report"
    rep.mkdir(exist_ok=True)
    exporter = HTMLExporter()
    links = []
    for nb in sorted((run_dir / "notebooks").glob("*.ipynb")):
        body, _ = exporter.from_filename(str(nb))
        (rep / f"{nb.stem}.html").write_text(body, encoding="utf-8")
        state = (json.loads((run_dir / "suite.json").read_text()).get("status", {}).get(nb.name, "")
                 if (run_dir / "suite.json").is_file() else "")
        mark = "" if not state or state.startswith("done") else f' <b style="color:#b00">{html.escape(state)}</b>'
        links.append(f'<li><a href="{html.escape(nb.stem)}.html">{html.escape(nb.stem)}</a>{mark}</li>')
    recs = results.load(run_dir)
    tables = results.table(recs).to_html(index=False, na_rep="") if recs else "<p>No results recorded.</p>"
    suite = json.loads((run_dir / "suite.json").read_text()) if (run_dir / "suite.json").is_file() else {}
    found = findings.load(run_dir)
    if found:
        colour = {findings.REPRODUCED: "#dfd", findings.NOT_REPRODUCED: "#fdd", findings.NO_DATA: "#eee",
                  findings.VARIES: "#ffd"}
        rows = "".join(f'<tr style="background:{colour[r.status]}"><td>{html.escape(r.notebook)}</td>'
                       f'<td style="text-align:left">{html.escape(r.claim)}</td><td>{html.escape(r.status)}</td>'
                       f'<td style="text-align:left">{html.escape(r.detail)}</td>'
                       f'<td style="text-align:left">{html.escape(r.calibrated_range())}</td></tr>' for r in found)
        finding_html = (f"<p>{html.escape(findings_summary(found))}. A finding is reproduced when it holds by its "
                        "margin, calibrated over several seeds; <i>varies</i> marks a comparison that flipped "
                        "between calibration runs.</p><table><tr><th>notebook</th><th>finding</th>"
                        f"<th>status</th><th>numbers (mIoU %)</th><th>calibrated</th></tr>{rows}</table>")
    else:
        finding_html = "<p>No notebook declared findings in this run.</p>"
    from .env import software_line

    prov = suite.get("provenance")
    prov_html = (f"<p><b>Software and machine:</b> {html.escape(software_line(prov))}; {prov.get('jobs', 1)} "
                 f"notebook(s) at a time; {html.escape(prov.get('platform', ''))}</p>" if prov else "")
    index = rep / "index.html"
    index.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>incseg run {html.escape(run_dir.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}</style></head><body>
<h1>incseg run {html.escape(run_dir.name)}</h1><p>profile: {html.escape(str(suite.get('profile', '?')))}</p>
{prov_html}
<h2>Expected findings</h2>{finding_html}
<h2>Notebooks</h2><ul>{''.join(links)}</ul>
<h2>Results (mIoU and pixel accuracy in %)</h2>{tables}</body></html>""", encoding="utf-8")
    return index
