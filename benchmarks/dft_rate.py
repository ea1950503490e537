"""How fast do DFT*'s new heads learn on the demo? DFT* (``dft``) and DFT* without pre-allocation
(``dft-nopre``) over every step of a task, at the official rate (1/40 of step 0's: RevisitingCSS
``ft_resnet101_15-1-FixBC-P.sh`` L18, L45) and at other rates after step 0 (the course's shared
setting, ``protocol shared`` with ``lr_next``); old / new / all after the last step, per seed.

    python benchmarks/dft_rate.py                                  # demo 15-1, seed 0, rates 0.00125 0.005 0.0125 0.05
    python benchmarks/dft_rate.py --seeds 0,1,2 --rates 0.00125,0.05

Step 0 and the checkpoints are shared with the suite under the same ``INCSEG_HOME`` (the demo's
step 0 of DFT*, ``step0-prealloc``, is notebook 07's); nothing is recorded in a run folder.
"""

from __future__ import annotations

import argparse
import logging

from incseg_lib.config import RunConfig
from incseg_lib.experiment import train_step
from incseg_lib.methods import method_spec
from incseg_lib.tasks import IncrementalSplit

logging.getLogger("incseg_lib").setLevel(logging.WARNING)  # the figures only, not each step's lines


def last_step(cfg: RunConfig, method: str, rate: float | None) -> dict:
    """The record after the last step of ``method`` at ``rate`` after step 0 (None: its official protocol)."""
    if rate is not None:
        cfg = cfg.replace(protocol="shared", lr_next=rate)
    quiet = dict(notebook="dft-rate", progress=False, record=False)
    last = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).num_steps - 1
    out = None
    for step in range(1, last + 1):
        out = train_step(cfg, step=step, method=method, **quiet)
    return out.record


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--task", default="15-1")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--methods", default="dft,dft-nopre")
    ap.add_argument("--rates", default="0.005,0.0125,0.05", help="learning rates after step 0 besides the official")
    args = ap.parse_args(argv)
    print("| method | lr after step 0 | seed | old | new | all |")
    print("|---|---|---|---|---|---|")
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg = RunConfig.from_profile(args.profile, task=args.task, seed=seed, run_dir="runs/dft-rate")
        for method in args.methods.split(","):
            official = cfg.lr * method_spec(method).protocol.lr_factor
            for rate in [None] + [float(r) for r in args.rates.split(",") if r]:
                r = last_step(cfg, method, rate)
                shown = f"{official:g} (official)" if rate is None else f"{rate:g}"
                parts = " | ".join(f"{100 * (r[f'miou_{p}'] or 0):.1f}" for p in ("old", "new", "all"))
                print(f"| {method} | {shown} | {seed} | {parts} |", flush=True)


if __name__ == "__main__":
    main()
