"""Wall time of one smoke notebook alone against two copies running at once, per thread setting.

On a shared machine (a lab server, a 2-core laptop running two things) PyTorch's default of one
intra-op thread per core makes concurrent runs oversubscribe the cores. This prints one JSON line
per scenario: alone with all cores, two at once with all cores each, two at once with
``cores / 2`` threads each (``incseg suite --threads``)::

    python benchmarks/concurrent_suites.py            # notebook 01, smoke profile
    python benchmarks/concurrent_suites.py --only 02 --profile smoke
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def launch(only: str, profile: str, threads: int, home: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "INCSEG_HOME": str(home)}
    env.pop("OMP_NUM_THREADS", None)
    cmd = [sys.executable, "-m", "incseg_lib.cli", "suite", "--profile", profile, "--only", only, "--out", str(out)]
    if threads:
        cmd += ["--threads", str(threads)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def scenario(n: int, threads: int, only: str, profile: str, tmp: Path, tag: str) -> dict:
    procs, t0 = [], time.perf_counter()
    for k in range(n):
        # each run gets its own INCSEG_HOME: nothing is reused between runs, every run trains
        procs.append(launch(only, profile, threads, tmp / f"{tag}-home{k}", tmp / f"{tag}-run{k}"))
    walls = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"suite failed: {err[-2000:]}")
        walls.append(time.perf_counter() - t0)
    return {
        "benchmark": "concurrent_suites",
        "notebook": only,
        "profile": profile,
        "concurrent": n,
        "threads_per_kernel": threads or os.cpu_count(),
        "cores": os.cpu_count(),
        "wall_seconds_each": [round(w, 1) for w in walls],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="01")
    ap.add_argument("--profile", default="smoke")
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = [
            scenario(1, 0, a.only, a.profile, tmp, "alone"),
            scenario(2, 0, a.only, a.profile, tmp, "two-all-cores"),
            scenario(2, max(1, cores // 2), a.only, a.profile, tmp, "two-half-cores"),
        ]
    alone = rows[0]["wall_seconds_each"][0]
    for r in rows:
        r["slowdown_vs_alone"] = round(max(r["wall_seconds_each"]) / alone, 2)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
