"""Where every kind of checkpoint of a set of configurations lives, relative to the checkpoint root.

    python -m tests.helpers.checkpoint_keys > tests/data/checkpoint_keys.json

The file it writes is what ``tests/test_checkpoint_keys.py`` compares against: a checkpoint trained
before a change of the library is found after it only when these paths stay the same (the folder
names hold the digest of each training key). Regenerate it only for a change that is meant to
retrain everything, and say so in CHANGELOG.md.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path


def checkpoint_paths(data_root: Path, checkpoint_root: Path) -> dict[str, str]:
    """``{case: path relative to checkpoint_root}`` for step-0, incremental, replay, synthetic, weak and
    Joint runs of the demo, smoke and cpu profiles on the shapes."""
    from incseg_lib import experiment as ex
    from incseg_lib.config import RunConfig, inversion_config
    from incseg_lib.exemplars import ReplayConfig

    out: dict[str, str] = {}

    def rel(p) -> str:
        return str(Path(p).relative_to(checkpoint_root))

    for profile in ("demo", "smoke", "cpu"):
        base = RunConfig.from_profile(
            profile, dataset="shapes", data_root=str(data_root), pretrained="none", checkpoint_dir=str(checkpoint_root)
        )
        for task, step, method in (
            ("offline", 0, "offline"),
            ("15-5", 0, "step0"),
            ("15-5", 0, "step0-bce"),
            ("15-5", 1, "ft"),
            ("15-5", 1, "mib"),
            ("15-5", 1, "lwf-mc"),
            ("15-5", 1, "ewc"),
            ("15-5", 1, "pi"),
            ("15-1", 3, "mib"),
            ("15-1", 5, "ilt"),
            ("10-1", 2, "rw"),
        ):
            cfg = base.replace(task=task)
            out[f"{profile} {task} step {step} {method}"] = rel(ex.checkpoint_file(cfg, step, method))
        cfg = base.replace(task="15-1")
        replay = ReplayConfig(budget=5)
        out[f"{profile} 15-1 replay mib 5pc"] = rel(ex.checkpoint_file(cfg, 2, f"mib+mem-{replay.tag}"))
        total = ReplayConfig(budget=20, mode="total", strategy="herding")
        out[f"{profile} 15-1 replay ft 20tot"] = rel(ex.checkpoint_file(cfg, 1, f"ft+mem-{total.tag}"))
        inv = inversion_config(profile, seed=base.seed)
        cfg = base.replace(task="15-5")
        run = ex.synthetic_run_name("mib", inv)
        out[f"{profile} 15-5 synthetic run mib"] = rel(ex.checkpoint_file(cfg, 1, run))
        out[f"{profile} 15-5 synthetic memory"] = rel(
            ex.find_synthetic_memory(cfg, 1, "step0", inv, student_run=run).folder
        )
        seam = ex.weak_config(cfg)
        out[f"{profile} 15-5 weak run mib"] = rel(ex.checkpoint_file(cfg, 1, ex.weak_run_name("mib", seam)))
        out[f"{profile} 15-5 seam weights"] = rel(ex.seam_checkpoint(cfg, 1, seam, "step0")[0])
        out[f"{profile} 15-5 pseudo-labels fused"] = rel(ex.pseudo_label_store(cfg, 1, seam, "step0", True).folder)
        out[f"{profile} 15-5 joint"] = rel(ex.checkpoint_file(ex.joint_config(cfg), 0, "offline"))
    return out


def main() -> None:
    from incseg_lib.data import ensure_shapes

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["INCSEG_HOME"] = tmp
        data = ensure_shapes(Path(tmp) / "data" / "shapes")
        json.dump(checkpoint_paths(data, Path(tmp) / "checkpoints"), sys.stdout, indent=1, sort_keys=True)
        print()


if __name__ == "__main__":
    main()
