"""How much does the demo's step 0 move with the seed and the thread count?

Step 0 is the base of every incremental lesson: a step 0 whose old-class mIoU moves by several
points with the number of PyTorch threads (a laptop's 4-8 against the suite's 1) moves every gap
after it. This trains the step 0 of a task (default the demo's 15-x, 15 classes) once per seed and
thread count, each in a fresh process (the thread count is fixed before torch does any work), and
prints old-class mIoU per run and the spread per seed, per thread count and overall.

    python benchmarks/step0_stability.py                       # demo 15-1: seeds 0-2 x threads 1, 2, 4
    python benchmarks/step0_stability.py --epochs 16           # a longer schedule, same grid
    python benchmarks/step0_stability.py --profile cpu --dataset camvid --data-root ../shared/data/camvid \\
        --task 8-1 -p pretrained none --seeds 0 --threads 1,2

Every (seed, thread count) trains its own step 0 under ``--out``/seed<k>-threads<n>/: a checkpoint
key does not hold the thread count, so runs sharing a checkpoint folder would reuse the first one's
model and agree to the decimal whatever the threads (an earlier version of this script did, and
reported step 0 as thread-independent).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = """
import json, logging, sys, torch
logging.getLogger("incseg_lib").setLevel(logging.WARNING)
torch.set_num_threads({threads})
from incseg_lib.config import RunConfig
from incseg_lib.experiment import train_step
opts = json.loads(sys.argv[1])
cfg = RunConfig.from_profile(opts.pop("profile"), **opts)
quiet = dict(notebook="step0-stability", progress=False)
rec = train_step(cfg, step=0, method="step0", **quiet).record
print(json.dumps({{"old": 100 * rec["miou_old"], "threads": torch.get_num_threads()}}))
"""


def run_one(options: dict, threads: int) -> dict:
    """Train (or reuse) one step 0 in a fresh process at ``threads`` threads; its old-class mIoU."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(threads=threads), json.dumps(options)],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "OMP_NUM_THREADS": str(threads), "INCSEG_PROGRESS": "0"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> float:
    return max(values) - min(values) if values else 0.0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--out", default="runs/step0-stability", help="a folder per (seed, threads) under it")
    ap.add_argument("--dataset", default="")
    ap.add_argument("--data-root", default="")
    ap.add_argument("--task", default="15-1")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", default="1,2,4")
    ap.add_argument("--epochs", type=int, default=0, help="step-0 epochs (0: the profile's)")
    ap.add_argument("--lr", type=float, default=0.0, help="step-0 learning rate (0: the profile's)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="a RunConfig field")
    args = ap.parse_args(argv)
    base = {"profile": args.profile, "task": args.task}
    base.update({k: v for k, v in (("dataset", args.dataset), ("data_root", args.data_root)) if v})
    base.update({k: v for k, v in (("epochs", args.epochs), ("lr", args.lr)) if v})
    base.update(dict(args.p))
    seeds = [int(s) for s in args.seeds.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    table: dict[tuple[int, int], float] = {}
    for seed in seeds:
        for t in threads:
            cell = f"{args.out}/seed{seed}-threads{t}"
            got = run_one({**base, "seed": seed, "run_dir": cell, "checkpoint_dir": f"{cell}/checkpoints"}, t)
            table[(seed, t)] = got["old"]
            print(f"seed {seed} threads {got['threads']}: step-0 old-class mIoU {got['old']:.1f}", flush=True)
    print("\n| seed | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in threads) + " | spread |")
    print("|---|" + "---|" * (len(threads) + 1))
    for seed in seeds:
        row = [table[(seed, t)] for t in threads]
        print(f"| {seed} | " + " | ".join(f"{v:.1f}" for v in row) + f" | {spread(row):.1f} |")
    by_threads = [spread([table[(s, t)] for s in seeds]) for t in threads]
    print(
        "| spread over seeds | "
        + " | ".join(f"{v:.1f}" for v in by_threads)
        + f" | {spread(list(table.values())):.1f} |"
    )
    print(f"mean {statistics.fmean(table.values()):.1f}; overall spread {spread(list(table.values())):.1f} points")


if __name__ == "__main__":
    main()
