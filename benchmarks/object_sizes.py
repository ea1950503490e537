"""How big are the old classes' objects: real step-0 masks against every stored synthetic memory.

Notebook 04 draws this as a histogram from the memories it just built; this script reads what a
run left on disk instead (the synthetic memories beside the step-0 checkpoint of the
configuration, each a folder of images, pseudo-label masks and a manifest naming its settings),
so the numbers can be printed for any run after the fact. One row per source: objects counted
(an object is one old class present in one image), quartiles of the fraction of the image it
covers, and the share under 1 % of the image::

    INCSEG_HOME=... python benchmarks/object_sizes.py                       # demo, shapes 15-5
    python benchmarks/object_sizes.py --profile cpu --dataset voc --data-root ../shared/data/voc2012-mini \\
        --task 15-5 -p pretrained none
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from PIL import Image

from incseg_lib.config import RunConfig
from incseg_lib.experiment import base_datasets, checkpoint_file, object_size_table
from incseg_lib.experiment.sources import real_object_sizes
from incseg_lib.inversion import InversionConfig, object_sizes
from incseg_lib.tasks import IncrementalSplit


def describe(settings: dict, scales=()) -> str:
    """A memory's name from its manifest's synthesis settings: aggregation, the scale-aware weights
    and scales (``scales``: the manifest's, measured when none were configured), the BN-statistics
    weight where it is off, images per class."""
    default = InversionConfig()
    name = "scale-aware" if settings.get("aggregation") == "scale-aware" else "LSE"
    if name == "scale-aware":
        asked = "/".join(f"{100 * v:.1f}" for v in (settings.get("scales") or scales))
        name += f" (targets {asked} %, inside x{settings.get('inside_weight', 0):g})"
    if settings.get("r_feature", default.r_feature) == 0:
        name += ", no BN term"
    return f"{name}, {settings['images_per_class']}/class"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--dataset", default="")
    ap.add_argument("--data-root", default="")
    ap.add_argument("--task", default="15-5")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="RunConfig field")
    args = ap.parse_args(argv)
    cfg = RunConfig.from_profile(
        args.profile, dataset=args.dataset, data_root=args.data_root, task=args.task, **dict(args.p)
    )
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    train_base, _ = base_datasets(cfg, split0)
    old = [c for c in split0.seen_classes if c != 0]
    sizes = {"real step-0 objects": real_object_sizes(cfg, split0, train_base, old)}
    folder = checkpoint_file(cfg, 0, "step0").parent / "synthetic"
    for manifest in sorted(folder.glob("*/manifest.json")):
        doc = json.loads(manifest.read_text())
        if not doc.get("complete"):
            continue
        masks = [np.asarray(Image.open(p)) for p in sorted((manifest.parent / "masks").glob("*.png"))]
        sizes[describe(doc["key"]["inversion"], doc.get("scales") or ())] = object_sizes(masks)
    if len(sizes) == 1:
        print(f"no finished synthetic memory under {folder}: run notebook 04 with this configuration first")
    print(f"{cfg.dataset} {cfg.task} {cfg.setting}, step-0 checkpoint {checkpoint_file(cfg, 0, 'step0')}")
    print(object_size_table(sizes).to_string())


if __name__ == "__main__":
    main()
