"""Where a run lives and what it runs on: folders, Colab, progress bars, seeding, provenance.

A leaf of the library (it imports nothing of incseg but its version): the folders every run reads
and writes (``$INCSEG_HOME``: data, checkpoints, runs), whether this is Colab or a headless suite,
seeding, and :func:`provenance`, which every results record, ``suite.json``, findings file and
report header carries so that a number can be traced to what produced it (a run on another
machine, another PyTorch or another thread count may differ, and the provenance says which).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import random
import subprocess
from pathlib import Path
from typing import Any

from . import __version__

_PACKAGE_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def source_revision() -> dict[str, Any]:
    """The incseg source this process runs: ``{"version", "commit", "dirty"}``.

    ``commit`` is the git commit of the checkout the package is imported from (``dirty`` True when
    tracked files differ from it), else the commit pip recorded for a ``git+...@ref`` install
    (Colab: PEP 610's ``direct_url.json``), else ``""`` (``dirty`` None: unknown).
    """

    out: dict[str, Any] = {"version": __version__, "commit": "", "dirty": None}
    repo = _PACKAGE_DIR.parent
    if (repo / ".git").exists():
        try:
            run = functools.partial(subprocess.run, cwd=repo, capture_output=True, text=True, timeout=10, check=True)
            out["commit"] = run(["git", "rev-parse", "HEAD"]).stdout.strip()
            out["dirty"] = bool(run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip())
            return out
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        direct = json.loads(distribution("incseg").read_text("direct_url.json") or "{}")
        out["commit"] = (direct.get("vcs_info") or {}).get("commit_id", "")
        out["dirty"] = False if out["commit"] else None
    except (PackageNotFoundError, ValueError):
        pass
    return out


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; else what :mod:`platform` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: str | None = None) -> str:
    """``"cuda: <GPU name>"`` for a CUDA device, else ``"cpu: <model>, <n> cores"``."""
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    return f"cpu: {cpu_model()}, {os.cpu_count()} cores"


def provenance(device: str | None = None) -> dict[str, Any]:
    """The software, machine and threads of this process, as a flat JSON-able dict.

    Keys: ``incseg`` (version), ``commit``, ``dirty``, ``python``, ``torch``, ``torchvision``,
    ``numpy``, ``platform`` (OS and architecture), ``device`` (:func:`device_description` of
    ``device``, default CUDA when available), ``threads`` (PyTorch intra-op threads now),
    ``omp_num_threads`` (the environment's ``OMP_NUM_THREADS``, ``""`` when unset).
    The decisions a computation takes from these (memory layout, precision) are recorded beside it
    (``decisions`` in a results record).
    """
    import numpy
    import torch

    try:
        import torchvision

        tv = torchvision.__version__
    except ImportError:
        tv = ""
    rev = source_revision()
    return {
        "incseg": rev["version"],
        "commit": rev["commit"],
        "dirty": rev["dirty"],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": tv,
        "numpy": numpy.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "device": device_description(device),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
    }


def software_line(prov: dict[str, Any]) -> str:
    """One line a person reads: ``incseg 0.1.0 (abc1234, modified) · torch 2.14.1 · cpu: ... · 1 thread``."""
    commit = (prov.get("commit") or "")[:7]
    state = "" if not commit else (f" ({commit}, modified)" if prov.get("dirty") else f" ({commit})")
    threads = prov.get("threads")
    parts = [
        f"incseg {prov.get('incseg', '?')}{state}",
        f"Python {prov.get('python', '?')}",
        f"torch {prov.get('torch', '?')}",
        f"torchvision {prov.get('torchvision', '?')}",
        f"numpy {prov.get('numpy', '?')}",
        str(prov.get("device", "?")),
    ]
    if threads is not None:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    return " · ".join(parts)


# ---------------------------------------------------------------------- folders
def default_home() -> Path:
    """Root for data and checkpoints.

    ``$INCSEG_HOME`` if set; else the repository itself when the library runs from a checkout
    (``data/`` and ``checkpoints/`` beside ``pyproject.toml``, as docs/design.md lays out); else
    ``~/.cache/incseg`` (a pip install, e.g. on Colab); always absolute.

    Raises:
        ValueError: ``$INCSEG_HOME`` names a file (says so, and what to set instead).
    """
    env = os.environ.get("INCSEG_HOME")
    if env:
        # absolute, so that records, checkpoint paths and a suite that changes its working folder
        # all name the same files (a relative home stored as given points elsewhere later)
        home = Path(env).expanduser().resolve()
        if home.exists() and not home.is_dir():
            raise ValueError(f"INCSEG_HOME={env} is a file, not a folder; set INCSEG_HOME to a folder (or unset it)")
        return home
    repo = _PACKAGE_DIR.parent
    if (repo / "pyproject.toml").is_file() and (repo / "notebooks").is_dir():
        return repo
    return Path.home() / ".cache" / "incseg"


def runs_root() -> Path:
    """The one folder every run writes under: ``default_home() / "runs"``.

    Notebooks run by hand (Jupyter, Colab), by papermill and by ``incseg suite`` all resolve their
    results here rather than against their working directory, so notebook 06 finds them all. On
    Colab with ``INCSEG_HOME`` on Google Drive the results survive a disconnect.
    """
    return default_home() / "runs"


def notebook_run_dir(notebook: str, run_dir: str | Path = "") -> str:
    """``run_dir`` if given, else ``runs_root() / notebook`` (a notebook's default results folder)."""
    return str(run_dir) if run_dir else str(runs_root() / notebook)


def on_colab() -> bool:
    """True inside Google Colab (its ``google.colab`` module can be imported)."""
    import importlib.util
    import sys

    if "google.colab" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):  # no ``google`` package at all
        return False


def auto_fetch() -> bool:
    """Whether a missing VOC or CamVid is downloaded when a notebook opens it.

    ``$INCSEG_FETCH`` decides when set (``1`` yes, ``0`` no); otherwise yes on Colab (a fresh
    runtime has no data, and the notebook is the only interface) and no elsewhere (a 2 GB download
    should not start behind a typo in ``data_root``; ``incseg data voc`` fetches it explicitly).
    """
    env = os.environ.get("INCSEG_FETCH", "").strip()
    if env in ("0", "1"):
        return env == "1"
    if env:
        raise ValueError(f"INCSEG_FETCH={env!r} is not understood; set it to 1 (fetch missing data) or 0 (never)")
    return on_colab()


def default_data_root() -> Path:
    """Folder holding one subfolder per dataset (``shapes``, ``voc``, ``camvid``)."""
    return default_home() / "data"


def default_checkpoint_root() -> Path:
    """Folder of the checkpoint tree shared by all runs (reuse across notebooks)."""
    return default_home() / "checkpoints"


def cache_folders() -> list[Path]:
    """Writable places for caches a run can rebuild (file digests, class presence, split lists), in
    the order tried after the caller's own folder: ``$INCSEG_HOME/cache`` (or the checkout's), then
    ``$XDG_CACHE_HOME/incseg`` (default ``~/.cache/incseg``), so read-only data or checkpoints (a
    lab's shared folder) never stop a run."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return [default_home() / "cache", (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "incseg"]


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) for a reproducible run."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def show_progress(requested: bool = True) -> bool:
    """Whether to draw progress bars: ``requested`` unless ``$INCSEG_PROGRESS`` is ``0``.

    The suite runner sets ``INCSEG_PROGRESS=0`` for headless papermill runs, where a
    ``tqdm.auto`` bar would only store an empty widget; the one-line summaries still print.
    """
    return bool(requested) and not headless()


def headless() -> bool:
    """True in headless runs (the suite sets ``INCSEG_PROGRESS=0``): no interactive widgets there."""
    return os.environ.get("INCSEG_PROGRESS", "1") == "0"
