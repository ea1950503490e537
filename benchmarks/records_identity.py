"""Do two versions of the library train the same numbers? Every registered method, one step of 15-5
and two of 15-1, under both protocols, on a smoke-sized run; prints one line per (task, protocol,
method, step) with the mIoU and every loss term per epoch, for a ``diff`` between two checkouts::

    PYTHONPATH=/path/to/old python benchmarks/records_identity.py /tmp/old > old.txt
    PYTHONPATH=.            python benchmarks/records_identity.py /tmp/new > new.txt
    diff old.txt new.txt && echo identical

Each run uses its own folder (data, checkpoints, records) so nothing is reused between the two.
About 4 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import logging
import os
import sys

logging.getLogger("incseg_lib").setLevel(logging.WARNING)  # the figures only, not each step's lines


def main(out: str) -> None:
    os.environ["INCSEG_HOME"] = os.path.join(out, "home")
    import torch

    from incseg_lib.config import RunConfig
    from incseg_lib.data import ensure_shapes
    from incseg_lib.experiment import train_step

    torch.set_num_threads(1)
    root = str(ensure_shapes(os.path.join(out, "home", "data", "shapes")))
    plan = (
        ("15-5", ["ft", "lwf", "lwf-mc", "ilt", "ewc", "pi", "rw", "mib", "plop", "sdr", "sdr-only"], 1, 40),
        ("15-1", ["mib", "plop", "sdr"], 2, 160),
    )
    for task, methods, steps, images in plan:
        for protocol in ("official", "shared"):
            cfg = RunConfig.from_profile(
                "smoke",
                task=task,
                setting="overlapped",
                epochs=1,
                crop_size=32,
                max_train_images=images,
                max_val_images=8,
                data_root=root,
                run_dir=os.path.join(out, "runs"),
                checkpoint_dir=os.path.join(out, "ckpt"),
                protocol=protocol,
            )
            for method in methods:
                for step in range(steps + 1):
                    run = ("step0-bce" if method == "lwf-mc" else "step0") if step == 0 else method
                    r = train_step(cfg, step=step, method=run, progress=False)
                    terms = {k: v for k, v in sorted(r.history.items()) if k.startswith("loss")}
                    print(f"{task}/{protocol}/{method}/{step}", r.record["miou_all"], json.dumps(terms), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/records-identity")
