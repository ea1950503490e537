"""The headless suite runner: execute the numbered notebooks with papermill, then an HTML report.

``incseg suite`` (profile ``demo``; ``--profile smoke`` in CI) runs every ``notebooks/NN_*.ipynb`` present into a
new run folder, in order (two at a time for the small profiles, ``--jobs``, longest first: see
:data:`START_FIRST`; notebook 06 last)::

    $INCSEG_HOME/runs/<date>-<time>-<profile>/     (INCSEG_HOME: the checkout by default)
      notebooks/NN_name.ipynb     executed copies (the sources in notebooks/ are never written)
      results/*.json              one record per evaluation (incseg_lib.results)
      report/index.html           headline, findings and result tables per notebook (incseg_lib.report)
      report/NN_name.html         each executed notebook as HTML; the folder reads offline

Parameter names are checked against each notebook's ``parameters`` cell before anything runs
(papermill itself only warns about unknown names).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from .. import findings
from ..env import provenance, runs_root, software_line
from ..log import get_logger
from ..profiles import PROFILES
from ..report import findings_summary, write_report
from ..store import atomic_write_json, atomic_write_text
from .errors import SuiteError, SuiteInterrupted
from .kernels import signal_kernels, stop_signals_interrupt
from .parameters import coerce, declared_parameters, list_parameters, route_parameters

log = get_logger(__name__)

__all__ = [
    "SuiteError",
    "SuiteInterrupted",
    "coerce",
    "declared_parameters",
    "find_notebooks",
    "launch_order",
    "list_parameters",
    "new_run_dir",
    "notebooks_dir",
    "print_findings",
    "route_parameters",
    "run_calibration",
    "run_suite",
    "stop_signals_interrupt",
    "write_executed_notebook",
]

SUITE_PARAMETERS = ("profile", "dataset", "data_root", "run_dir", "smoke")
# The kernel's own log stays quiet: its "running over TCP without encryption" warning (the kernel
# listens on 127.0.0.1 only) and the "KeyboardInterrupt caught in kernel" line that jupyter_client's
# shutdown (an interrupt, then the shutdown request) provokes in every run would clutter the output.
# A notebook's errors are reported by papermill, not by this log.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]
# Notebooks that read every other notebook's records: they run after the others.
COLLECTORS = ("06",)
# When notebooks run several at a time, these start first, in this order: 02 is the longest and trains
# the step-0 model that 03, 04 and 05 reuse; 01 trains the offline model that 02's Joint row reuses;
# 05 is the next longest; 03, then 07 (which reuses 02's FT and MiB: a step 02 is still training is
# waited for, not trained twice, by its checkpoint's lock) before 04, so that the demo's second lane
# takes 07 while the first runs 02 then 04 (docs/results.md, "Time"). The rest follow in numeric order.
START_FIRST = ("02", "01", "05", "03", "07")
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


def notebooks_dir() -> Path:
    """The folder of numbered notebooks: the repository's ``notebooks/`` (or ``$INCSEG_NOTEBOOKS``)."""
    env = os.environ.get("INCSEG_NOTEBOOKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "notebooks"


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
            raise SuiteError(
                f"--only {sorted(unknown)}: no such notebook in {folder}; present: {[p.name[:2] for p in found]}"
            )
        found = [p for p in found if p.name[:2] in want]
    return found


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
        if not os.access(path, os.W_OK | os.X_OK):
            raise SuiteError(f"run folder {path} is not writable; choose a writable --out")
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


class _SuiteRun:
    """One suite run: its folder, its ``suite.json`` (state, provenance, each notebook's status) and
    the papermill call that executes a notebook into it."""

    def __init__(self, run_dir: Path, info: dict, parameters: dict[Path, dict]):
        self.run_dir, self.info, self.parameters = run_dir, info, parameters
        self.lock = threading.Lock()
        self.stop = threading.Event()  # set by Ctrl-C: running notebooks are reported as interrupted

    def set_status(self, name: str | None = None, status: str = "", **fields) -> None:
        with self.lock:  # notebooks of parallel lanes report from their threads
            if name is not None:
                self.info["status"][name] = status
            self.info.update(fields)
            atomic_write_json(self.run_dir / "suite.json", self.info, what="the suite's status", indent=1)

    def execute(self, nb: Path) -> None:
        """Run ``nb`` into the run folder; its status says done, failed, died or interrupted.

        Raises:
            SuiteError (SuiteInterrupted after Ctrl-C): the notebook did not finish (names it, the cell
                and the error; the partly executed notebook is kept).
        """
        import papermill as pm

        target = self.run_dir / "notebooks" / nb.name
        t0 = time.perf_counter()
        log.info(f"running {nb.name} ({self.info['profile']}) ...")
        self.set_status(nb.name, "running")
        try:
            pm.execute_notebook(
                str(nb),
                str(target),
                parameters=self.parameters[nb],
                progress_bar=False,
                kernel_name="python3",
                log_output=False,
                extra_arguments=KERNEL_ARGUMENTS,
            )
        except Exception as e:  # noqa: BLE001  a cell's error, the kernel died (DeadKernelError), Ctrl-C ...
            if self.stop.is_set():
                self.set_status(nb.name, f"interrupted after {time.perf_counter() - t0:.0f}s")
                raise SuiteInterrupted(f"{nb.name} interrupted", nb.name) from None
            if isinstance(e, pm.PapermillExecutionError):
                self.set_status(nb.name, f"failed in cell {e.cell_index}: {e.ename}: {e.evalue}")
                raise SuiteError(
                    f"{nb.name} failed in cell {e.cell_index} (execution count {e.exec_count}): "
                    f"{e.ename}: {e.evalue}\n  executed notebook kept at {target}",
                    nb.name,
                ) from None
            dead = type(e).__name__ == "DeadKernelError"
            why = (
                "its kernel died, most likely killed for lack of memory (lower batch_size or crop_size, "
                "or close other programs)"
                if dead
                else f"{type(e).__name__}: {e}"
            )
            self.set_status(nb.name, f"{'died' if dead else 'failed'}: {why}")
            raise SuiteError(
                f"{nb.name} did not finish: {why}\n  results of the notebooks that finished "
                f"are in {self.run_dir / 'report' / 'index.html'}",
                nb.name,
            ) from None
        self.set_status(nb.name, f"done in {time.perf_counter() - t0:.0f}s")
        log.info(f"  {nb.name} done in {time.perf_counter() - t0:.0f}s")


def _run_lanes(run: _SuiteRun, order: list[Path], n_jobs: int) -> list[SuiteError]:
    """Execute ``order``, ``n_jobs`` at a time, stopping at the first failure; the failures.

    Ctrl-C, SIGTERM or SIGHUP interrupts the running kernels (SIGINT: the cell stops at its next
    Python line, within seconds) and starts nothing more; a second one kills them. Either way the
    running notebooks end as ``interrupted`` and :class:`SuiteInterrupted` is among the failures.
    """
    import signal

    failures: list[SuiteError] = []
    queue = list(order)
    caught: dict = {}
    with stop_signals_interrupt(caught), ThreadPoolExecutor(max_workers=n_jobs) as pool:
        pending: dict = {}
        while queue or pending:
            try:
                while queue and len(pending) < n_jobs and not failures:
                    nb = queue.pop(0)
                    pending[pool.submit(run.execute, nb)] = nb
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                run.stop.set()
                queue.clear()
                running = ", ".join(nb.name for nb in pending.values())
                what = caught.get("signal", "Ctrl-C")
                run.info["signal"] = what
                log.info(f"\n{what}: interrupting {running or 'the suite'} (again to kill at once) ...")
                signal_kernels(signal.SIGINT)
                with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: kill below
                    wait(pending, timeout=60)
                if not all(f.done() for f in pending):  # a second Ctrl-C, or a kernel deaf to SIGINT
                    signal_kernels(signal.SIGKILL)
                continue
            for fut in done:
                pending.pop(fut)
                if fut.exception() is not None:
                    failures.append(fut.exception())
    if run.stop.is_set() and not any(isinstance(f, SuiteInterrupted) for f in failures):
        failures.append(SuiteInterrupted("suite interrupted"))
    return failures


def check_profile(profile: str) -> None:
    """Raise :class:`SuiteError` naming the profiles when ``profile`` is not one."""
    if profile not in PROFILES:
        raise SuiteError(f"unknown profile {profile!r}; choose one of {PROFILES}")


def _prepare(profile: str, dataset: str, data_root: str, only, out, extra: dict, notebooks) -> tuple:
    """Check the options and parameters (before any folder exists), then make the run folder.

    Returns:
        ``(notebooks, run_dir, per-notebook parameters, the suite's parameters)``.
    """

    check_profile(profile)
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
    suite_params = {
        "profile": profile,
        **({"dataset": dataset} if dataset else {}),
        **({"data_root": str(Path(data_root).expanduser().resolve())} if data_root else {}),
    }
    routed = route_parameters(nbs, {**suite_params, "run_dir": "", **extra})  # checks before any folder exists
    run_dir = new_run_dir(out, profile).resolve()
    per_notebook = {nb: {**p, **({"run_dir": str(run_dir)} if "run_dir" in p else {})} for nb, p in routed.items()}
    return nbs, run_dir, per_notebook, {**suite_params, "run_dir": str(run_dir), **extra}


def _lanes_and_threads(profile: str, jobs: int, threads: int, n_parallel: int) -> tuple[int, int]:
    """Notebooks at a time and PyTorch threads per kernel (see :func:`run_suite`'s ``jobs``/``threads``)."""
    cores = os.cpu_count() or 1
    n_jobs = int(jobs) if jobs else (min(2, cores) if profile in PARALLEL_PROFILES else 1)
    n_jobs = max(1, min(n_jobs, n_parallel or 1))
    n_threads = int(threads) if threads else int(os.environ.get("OMP_NUM_THREADS") or 0) or max(1, cores // n_jobs)
    return n_jobs, n_threads


def run_suite(
    profile: str = "demo",
    *,
    dataset: str = "",
    data_root: str = "",
    only: list[str] | None = None,
    out: str | Path | None = None,
    extra: dict[str, Any] | None = None,
    notebooks: Path | None = None,
    report: bool = True,
    threads: int = 0,
    jobs: int = 0,
) -> Path:
    """Run the numbered notebooks headlessly; return the run folder.

    Args:
        profile: demo, smoke, cpu, colab or paper (passed to each notebook's ``profile`` parameter).
        dataset, data_root: overrides passed to every notebook ("" = the profile's default).
        only: notebook numbers to run, e.g. ``["01"]``.
        jobs: notebooks run at the same time, each in its own kernel; 0 = two for the ``demo`` and
            ``smoke`` profiles on a machine with two cores or more (their small models use one core
            almost as well as two, so two notebooks at once take about half the time), else one.
            Notebooks needing the same checkpoint never train it twice: the first trains it under a
            lock (:func:`~incseg_lib.store.checkpoint_lock`), the other waits and reuses it.
            Notebook 06 (it collects every record) runs after the others.
        threads: PyTorch (OpenMP) threads of each notebook kernel; 0 = ``$OMP_NUM_THREADS`` if set,
            else the CPU cores divided by ``jobs``. On a machine shared by several suites (a lab server), give
            each suite ``cores / suites`` threads: two suites with all cores each run many times
            slower than with half each (docs/teaching.md, "Shared machines").
        extra: further ``-p NAME VALUE`` parameters: each goes to the notebooks that declare it
            (a name no selected notebook declares is an error); ``-p dataset``/``-p data_root``
            act as ``dataset``/``data_root`` (a relative path is resolved against the current
            folder, not the run folder); ``profile``, ``run_dir`` and ``smoke`` are refused (use the
            options).

    Raises:
        SuiteError: an unknown parameter, or a failing notebook (names the notebook, the cell
            and the error; the partly executed notebook is kept in the run folder).
        SuiteInterrupted: Ctrl-C (the running notebooks are interrupted within seconds, the report
            marks them, ``suite.json``'s state is ``interrupted``).
    """
    import papermill as pm

    nbs, run_dir, per_notebook, params_all = _prepare(
        profile, dataset, data_root, only, out, dict(extra or {}), notebooks
    )
    (run_dir / "notebooks").mkdir(exist_ok=True)
    parallel = [nb for nb in nbs if nb.name[:2] not in COLLECTORS]  # 06 waits for the others
    n_jobs, n_threads = _lanes_and_threads(profile, jobs, threads, len(parallel))
    # the kernels' threads, not this process's: every notebook computes with n_threads
    info = {
        "profile": profile,
        "parameters": params_all,
        "notebooks": [p.name for p in nbs],
        "state": "running",
        "status": {nb.name: "pending" for nb in nbs},
        "provenance": {**provenance(), "threads": n_threads, "jobs": n_jobs},
    }
    run = _SuiteRun(run_dir, info, per_notebook)
    run.set_status()
    log.info(
        f"{len(nbs)} notebook(s), profile {profile}, {n_jobs} at a time, {n_threads} PyTorch thread(s) "
        f"per kernel ({os.cpu_count() or 1} CPU cores; --jobs, --threads or OMP_NUM_THREADS to change)"
    )
    log.info(f"software and machine: {software_line(info['provenance'])}")
    home = os.getcwd()
    previous = {k: os.environ.get(k) for k in ("INCSEG_PROGRESS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ["INCSEG_PROGRESS"] = "0"  # headless: one-line summaries instead of empty tqdm widgets
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n_threads)  # the kernels inherit it
    # papermill also keeps a process-wide folder in its local file handler, which every
    # execute_notebook saves and restores around itself: two lanes restore each other's saved value
    # out of order and leave a folder behind, which later writes chdir into (once a test's temporary
    # folder is deleted: FileNotFoundError). Pinned to the run folder for the whole suite, every save
    # and restore in between sees the same value; the caller's value comes back at the end.
    handler = pm.iorw.papermill_io.get_handler("local")
    handler_cwd = handler.cwd(str(run_dir))
    # papermill writes the executed notebook with a plain open("w") after every cell: a full disk
    # would leave half a JSON file. Through the atomic writer a failed write keeps the last whole
    # copy and names the folder that is full.
    handler.write = lambda buf, path: write_executed_notebook(buf, Path(run_dir) / path)
    t_suite = time.perf_counter()
    try:
        # Every kernel starts in the run folder. The process changes folder once here, not in each
        # papermill call: papermill's cwd= is a process-wide chdir that two threads would undo in the
        # wrong order, leaving the caller in a run folder (and, once that is deleted, nowhere).
        os.chdir(run_dir)
        failures = _run_lanes(run, launch_order(parallel, n_jobs), n_jobs)
        if not failures:  # notebooks that collect every record run after the others
            failures = _run_lanes(run, [nb for nb in nbs if nb not in parallel], 1)
    finally:
        os.chdir(home)
        handler.cwd(handler_cwd)
        del handler.write  # the class's own method again
        for k, v in previous.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return _finish(run, failures, time.perf_counter() - t_suite, report)


def write_executed_notebook(text: str, path: Path) -> None:
    """Papermill's write of an executed notebook, atomically (:func:`~incseg_lib.store.atomic_write_text`)."""
    atomic_write_text(path, text, what=f"the executed notebook {path.name}")


def _finish(run: _SuiteRun, failures: list[SuiteError], seconds: float, report: bool) -> Path:
    """Write the final state and the report; print the findings, or raise the first failure."""
    interrupted = any(isinstance(f, SuiteInterrupted) for f in failures)
    for name, status in list(run.info["status"].items()):
        if status == "pending" and failures:
            run.info["status"][name] = (
                "not run (interrupted)" if interrupted else "not run (an earlier notebook failed)"
            )
    state = "interrupted" if interrupted else ("failed" if failures else "done")
    index = None
    try:
        run.set_status(state=state, seconds=round(seconds, 1))
        index = write_report(run.run_dir) if report else None
    except OSError as e:  # a full disk: say so, and still say how the suite ended
        log.info(f"could not write the suite's final state or report: {e}")
        if not failures:
            raise
    if interrupted:
        by = run.info.get("signal")
        raise SuiteInterrupted(
            f"interrupted{f' ({by})' if by else ''} after {seconds:.0f}s; what finished is in {run.run_dir}"
            + (f" (report: {index})" if index else "")
            + ". Running the suite again reuses "
            "every finished checkpoint, so it continues where this run stopped"
        )
    if failures:
        raise failures[0]
    log.info(f"suite done in {seconds:.0f}s")
    if index:
        log.info(f"report: {index}")
    print_findings(run.run_dir)
    return run.run_dir


def run_calibration(
    profile: str = "demo",
    seeds: list[int] = (0, 1, 2),
    *,
    out: str | Path | None = None,
    extra: dict[str, Any] | None = None,
    **suite_options,
) -> dict:
    """The profile's whole plan once per seed (``<out>/seed-<k>/``, each a full suite run), then the
    findings' calibration over them (:func:`~incseg_lib.findings.calibrate`), written to
    ``<out>/calibration.json`` and, as a table, ``<out>/calibration.md``.

    Copy ``calibration.json`` to ``incseg_lib/calibration/<profile>-<dataset>.json`` (or pass
    several folders, e.g. also a run under another PyTorch, to ``incseg calibrate``) to make it the
    profile's calibration.

    Raises:
        SuiteError: ``-p seed`` given too, a seed given twice, fewer than two seeds, a bad parameter
            (all before anything runs or any folder is made), a notebook fails, or ``out`` is not a
            new folder.
    """

    extra = dict(extra or {})
    if "seed" in extra:
        raise SuiteError("-p seed and --seeds both given: --seeds runs the suite once per seed; drop -p seed")
    seeds = [int(s) for s in seeds]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise SuiteError(f"--seeds names seed {', '.join(map(str, twice))} twice: each seed once (e.g. --seeds 0,1,2)")
    if len(seeds) < 2:
        raise SuiteError(f"--seeds {','.join(map(str, seeds))}: a calibration needs at least two runs")
    check_profile(profile)
    nbs = find_notebooks(suite_options.get("notebooks"), suite_options.get("only"))
    route_parameters(nbs, {"profile": profile, "run_dir": "", **extra, "seed": seeds[0]})  # before any folder
    base = new_run_dir(out, f"{profile}-calibration").resolve()
    runs = []
    for seed in seeds:
        log.info(f"=== calibration run, seed {seed} ===")
        runs.append(
            run_suite(
                profile,
                out=base / f"seed-{seed}",
                extra={**extra, "seed": int(seed)},
                **suite_options,
            )
        )
    cal = findings.calibrate(runs)
    atomic_write_json(base / "calibration.json", cal, indent=1)
    text = findings.calibration_table(cal)
    atomic_write_text(base / "calibration.md", text + "\n")
    log.info(text)
    log.info(f"calibration of {len(runs)} runs: {base / 'calibration.json'}")
    return cal


def print_findings(run_dir: Path) -> None:
    """Print every notebook's expected findings (reproduced or not, with their numbers and calibrated ranges)."""

    found = findings.load(run_dir)
    if not found:
        return
    log.info(findings_summary(found))
    notebook = None
    for r, line in zip(found, findings.format_lines(found)):
        if r.notebook != notebook:
            notebook = r.notebook
            log.info(f"  {notebook}")
        log.info(f"    {line}")
