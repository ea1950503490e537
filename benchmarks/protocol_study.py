"""Which incremental learning rate does each method need, and where do PLOP and SDR keep more than MiB?

The protocol study of the demo: FT, MiB, PLOP and SDR at their official protocols (classification
loss averaged over every pixel, SDR's KD 100), with every step after step 0 trained at a factor
{1/10, 1/3, 0.6} of step 0's learning rate, on one-class-step tasks (15-1, 10-1), seeds 0-2; step 0
is shared by every method and factor of a task and seed. ``sdr-kd10`` is SDR with its README's
kick-start KD weight 10 instead of its argparser's 100 (the shared setting's value), so the two
weights are measured at the same learning rates.

1/10 is what MiB's, PLOP's and SDR's scripts use (fcdl94/MiB README.md L48, PLOP
scripts/voc/plop_15-1.sh L44-49, LTTM/SDR README.md L59); 0.6 is the course's earlier shared
setting (0.05 then 0.03).

Runs are ordinary incseg runs (checkpoints under ``$INCSEG_HOME``, records under ``--out``), so an
interrupted study resumes and ``--table`` prints what is done so far. Work can be split over
processes with ``--lane i/n`` (each takes every n-th cell; run with ``--threads 1``)::

    python benchmarks/protocol_study.py --out runs/protocol-study --lane 0/2 --threads 1 &
    python benchmarks/protocol_study.py --out runs/protocol-study --lane 1/2 --threads 1 &
    python benchmarks/protocol_study.py --out runs/protocol-study --table

Prints two Markdown tables: per task, method and factor, old / new / all mIoU and hIoU after the
last step (mean +- sd over the seeds done, their count) and step 0's old-class mIoU; and per seed
each method's old-class mIoU minus MiB's (the finding notebook 02 checks).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import statistics
from pathlib import Path

import torch

from incseg_lib import results
from incseg_lib.config import RunConfig, coerce_option
from incseg_lib.experiment import train_step
from incseg_lib.metrics import harmonic_iou
from incseg_lib.tasks import IncrementalSplit

logging.getLogger("incseg_lib").setLevel(logging.WARNING)  # the figures only, not each step's lines

FACTORS = (0.1, 1 / 3, 0.6)
METHODS = ("ft", "mib", "plop", "sdr", "sdr-kd10")


def cell_config(base: RunConfig, task: str, seed: int, factor: float, method: str, out: Path) -> tuple[RunConfig, str]:
    """The configuration and library method of one study cell; its records go to ``out/<cell>``."""
    name = f"{task}-seed{seed}-f{factor:.3f}-{method}"
    cfg = base.replace(task=task, seed=seed, run_dir=str(out / name))
    return cfg.replace(protocol="official", lr_factor=factor), method


def cells(tasks, seeds, factors, methods):
    """Every (seed, task, factor, method), seed-major so that a partial study has whole seeds."""
    return list(itertools.product(seeds, tasks, factors, methods))


def run_cell(base: RunConfig, cell, out: Path) -> None:
    seed, task, factor, method = cell
    cfg, lib_method = cell_config(base, task, seed, factor, method, out)
    last = IncrementalSplit(cfg.dataset, task, 0, cfg.setting).num_steps - 1
    print(f"== {task} seed {seed} factor {factor:.3f} {method}", flush=True)
    train_step(cfg, step=0, method="step0", notebook="protocol-study", progress=False)
    for step in range(1, last + 1):
        train_step(cfg, step=step, method=lib_method, notebook="protocol-study", progress=False)


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} +- {sd:.1f}"


def final_old(out: Path, task: str, factor: float, method: str) -> dict[int, float]:
    """Old-class mIoU (%) after the last step per seed of one (task, factor, method)."""
    last = IncrementalSplit("shapes", task, 0, "overlapped").num_steps - 1
    got = {}
    for run in out.glob(f"{task}-seed*-f{factor:.3f}-{method}"):
        fin = [r for r in results.load(run) if r.get("step") == last and r.get("method") != "step0"]
        if fin:
            seed = int(run.name.split("-seed")[1].split("-")[0])
            got[seed] = 100 * max(fin, key=lambda r: r.get("created_ns", 0))["miou_old"]
    return got


def gaps_to_mib(out: Path, tasks, factors, methods) -> str:
    """Per seed, each method's old-class mIoU minus MiB's at the same task, factor and seed."""
    rows = ["| task | method | lr factor | old - MiB's old, per seed |", "|---|---|---|---|"]
    for task in tasks:
        for factor in factors:
            mib = final_old(out, task, factor, "mib")
            for method in (m for m in methods if m != "mib"):
                mine = final_old(out, task, factor, method)
                seeds = sorted(set(mib) & set(mine))
                if seeds:
                    gaps = " / ".join(f"{mine[s] - mib[s]:+.1f} (seed {s})" for s in seeds)
                    rows.append(f"| {task} | {method} | {factor:.2f} | {gaps} |")
    return "\n".join(rows)


def table(out: Path, tasks, factors, methods) -> str:
    """The study's Markdown table from the records under ``out``."""
    rows = [
        "| task | method | lr factor | seeds | old | new | all | hIoU | step 0 old |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        for method in methods:
            for factor in factors:
                old, new, all_, hiou, base_old = [], [], [], [], []
                for run in sorted(out.glob(f"{task}-seed*-f{factor:.3f}-{method}")):
                    recs = results.load(run)
                    last = IncrementalSplit("shapes", task, 0, "overlapped").num_steps - 1
                    fin = [r for r in recs if r.get("step") == last and r.get("method") != "step0"]
                    zero = [r for r in recs if r.get("method") == "step0"]
                    if not fin:
                        continue
                    r = max(fin, key=lambda r: r.get("created_ns", 0))
                    old.append(100 * r["miou_old"])
                    new.append(100 * r["miou_new"])
                    all_.append(100 * r["miou_all"])
                    hiou.append(100 * harmonic_iou(r["miou_old"], r["miou_new"]))
                    if zero:
                        base_old.append(100 * zero[-1]["miou_old"])
                if old:
                    rows.append(
                        f"| {task} | {method} | {factor:.2f} | {len(old)} | {_fmt(old)} | {_fmt(new)} | {_fmt(all_)} | "
                        f"{_fmt(hiou)} | {_fmt(base_old)} |"
                    )
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/protocol-study"))
    ap.add_argument("--tasks", default="15-1,10-1")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--factors", default=",".join(f"{f:.6f}" for f in FACTORS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--lane", default="0/1", help="i/n: run every n-th cell starting at i")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--table", action="store_true", help="only print the table of what is done")
    ap.add_argument(
        "-p",
        "--option",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a demo RunConfig field changed for every cell, e.g. -p epochs_next 8 (use its own --out)",
    )
    args = ap.parse_args(argv)
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    factors = [float(f) for f in args.factors.split(",")]
    methods = args.methods.split(",")
    if not args.table:
        if args.threads:
            torch.set_num_threads(args.threads)
        base = RunConfig.from_profile("demo", **{k: coerce_option(k, v) for k, v in args.option})
        i, n = (int(x) for x in args.lane.split("/"))
        for k, cell in enumerate(cells(tasks, seeds, factors, methods)):
            if k % n == i:
                run_cell(base, cell, args.out)
    print(table(args.out, tasks, factors, methods))
    print()
    print(gaps_to_mib(args.out, tasks, factors, methods))
    print(json.dumps({"tasks": tasks, "seeds": seeds, "factors": factors, "methods": methods}))


if __name__ == "__main__":
    main()
