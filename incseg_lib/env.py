"""What this run is made of: the software, the machine and the threads (a leaf: imports nothing of incseg).

Every results record, ``suite.json``, findings file and report header carries :func:`provenance`, so
that a number can be traced to what produced it: a run on another machine, another PyTorch or
another thread count may differ, and the provenance says which of these changed.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def source_revision() -> dict[str, Any]:
    """The incseg source this process runs: ``{"version", "commit", "dirty"}``.

    ``commit`` is the git commit of the checkout the package is imported from (``dirty`` True when
    tracked files differ from it), else the commit pip recorded for a ``git+...@ref`` install
    (Colab: PEP 610's ``direct_url.json``), else ``""`` (``dirty`` None: unknown).
    """
    from . import __version__

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
    return {"incseg": rev["version"], "commit": rev["commit"], "dirty": rev["dirty"],
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": tv,
            "numpy": numpy.__version__, "platform": f"{platform.system()} {platform.machine()}",
            "device": device_description(device), "threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "")}


def software_line(prov: dict[str, Any]) -> str:
    """One line a person reads: ``incseg 0.1.0 (abc1234, modified) · torch 2.14.1 · cpu: ... · 1 thread``."""
    commit = (prov.get("commit") or "")[:7]
    state = "" if not commit else (f" ({commit}, modified)" if prov.get("dirty") else f" ({commit})")
    threads = prov.get("threads")
    parts = [f"incseg {prov.get('incseg', '?')}{state}", f"Python {prov.get('python', '?')}",
             f"torch {prov.get('torch', '?')}", f"torchvision {prov.get('torchvision', '?')}",
             f"numpy {prov.get('numpy', '?')}", str(prov.get("device", "?"))]
    if threads is not None:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    return " · ".join(parts)
