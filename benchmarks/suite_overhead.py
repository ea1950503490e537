"""Where the suite's wall time goes: per notebook, kernel start, the import cell, data preparation,
training, evaluation and the rest; plus the HTML report. One JSON line per notebook, then a total.

Runs the suite one notebook at a time (``--jobs 1``, so the phases add up) in a fresh INCSEG_HOME
(nothing reused) with ``INCSEG_TIMING_LOG`` set: ``engine.fit``/``evaluate`` and the experiment's data
steps append their seconds there, and the executed notebooks carry papermill's cell timings.

    python benchmarks/suite_overhead.py                      # the smoke suite
    python benchmarks/suite_overhead.py --profile demo --only 01,02
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--only", default="")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="incseg-overhead-"))
    log = home / "timing.jsonl"
    os.environ.update(INCSEG_HOME=str(home), INCSEG_TIMING_LOG=str(log))
    from incseg_lib.suite import run_suite, write_report

    lib = logging.getLogger("incseg_lib")  # the suite's lines to stderr, the figures alone on stdout
    lib.handlers[:] = [logging.StreamHandler(sys.stderr)]
    t0 = time.time()
    run = run_suite(
        a.profile,
        out=home / "run",
        only=[o for o in a.only.split(",") if o] or None,
        jobs=1,
        threads=a.threads,
    )
    wall = time.time() - t0
    t1 = time.perf_counter()
    write_report(run)
    report = time.perf_counter() - t1
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    totals: dict = {}
    for nb in sorted((run / "notebooks").glob("*.ipynb")):
        data = json.loads(nb.read_text())
        meta = data["metadata"]["papermill"]
        start, end = _ts(meta["start_time"]), _ts(meta["end_time"])
        code = [
            c
            for c in data["cells"]
            if c["cell_type"] == "code" and c["metadata"].get("papermill", {}).get("start_time")
        ]
        first = _ts(code[0]["metadata"]["papermill"]["start_time"]) if code else end
        src = ["".join(c["source"]) for c in code]
        dur = [c["metadata"]["papermill"].get("duration") or 0.0 for c in code]
        tags = [c["metadata"].get("tags", []) for c in code]
        # the first cell that imports the library after the setup and parameters cells: torch, torchvision
        imports = next(
            (
                d
                for d, s_, t in zip(dur, src, tags)
                if "from incseg_lib" in s_ and not {"setup", "parameters", "injected-parameters"} & set(t)
            ),
            0.0,
        )
        slowest = sorted(zip(dur, src), reverse=True)[:3]
        mine = [e for e in events if start <= e["time"] <= end]
        row = {
            "benchmark": "suite_overhead",
            "profile": a.profile,
            "notebook": nb.stem,
            "wall_s": round(end - start, 1),
            "kernel_start_s": round(first - start, 1),
            "import_cell_s": round(imports, 1),
        }
        for phase in ("data", "train", "eval"):
            row[f"{phase}_s"] = round(sum(e["seconds"] for e in mine if e["phase"] == phase), 1)
        row["other_s"] = round(
            row["wall_s"]
            - row["kernel_start_s"]
            - row["import_cell_s"]
            - row["data_s"]
            - row["train_s"]
            - row["eval_s"],
            1,
        )
        row["slowest_cells"] = [
            [round(d, 1), s_.strip().splitlines()[0][:60] if s_.strip() else ""] for d, s_ in slowest
        ]
        print(json.dumps(row), flush=True)
        for k, v in row.items():
            if k.endswith("_s") and k != "slowest_cells":
                totals[k] = round(totals.get(k, 0) + v, 1)
    print(
        json.dumps(
            {
                "benchmark": "suite_overhead",
                "profile": a.profile,
                "notebook": "all",
                **totals,
                "report_s": round(report, 1),
                "suite_wall_s": round(wall, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
