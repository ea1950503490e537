"""Does scale-aware synthesis make objects of the size it asks for? Asked against got, per class.

For each old class of a task's step 0, the step-0 model synthesises one image per target scale
(:func:`incseg_lib.experiment.synthesis_at_scales`, the picture notebook 04 draws) and its own
pseudo-labels measure the fraction of the image the class ended up covering. Run once per weight
of the inside term (``inside_weight``; 0 is the aggregation without it), it shows whether the
pixels the top-k score counts become the class for the old model. Prints one JSON line per (weight,
class) and a summary: per asked scale, the median and quartiles of the fractions got, and how
often the image holds no pixel of the class at all.

With ``--stored`` it synthesises nothing and reads what a run left on disk instead: every
finished synthetic memory beside the step-0 checkpoint (images, pseudo-label masks and a manifest
naming the settings) against the real step-0 masks, one row per source: objects counted (one old
class present in one image), quartiles of the fraction of the image each covers, and the share
under 1 % (the numbers of notebook 04's histogram, for any run after the fact).

Needs the step-0 checkpoint of the configuration (notebook 04, or ``incseg step --task 15-5 ...``
trains it; ``INCSEG_HOME`` says where it is)::

    python benchmarks/scale_control.py                           # demo, shapes 15-5, weights 0 and 1
    python benchmarks/scale_control.py --stored                  # the demo's stored memories
    python benchmarks/scale_control.py --profile cpu --dataset camvid --data-root ../shared/data/camvid \\
        --task 8-3 -p pretrained none --stored
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch

from incseg_lib.config import RunConfig, inversion_config
from incseg_lib.experiment import (
    base_datasets,
    checkpoint_file,
    memory_object_sizes,
    object_size_table,
    synthesis_at_scales,
)
from incseg_lib.experiment.sources import real_object_sizes
from incseg_lib.inversion import InversionConfig, SyntheticMemory
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


def stored_sizes(cfg: RunConfig) -> None:
    """Print the object sizes of the real step-0 masks and of every finished stored memory."""
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    train_base, _ = base_datasets(cfg, split0)
    old = [c for c in split0.seen_classes if c != 0]
    sizes = {"real step-0 objects": real_object_sizes(cfg, split0, train_base, old)}
    folder = checkpoint_file(cfg, 0, "step0").parent / "synthetic"
    for manifest in sorted(folder.glob("*/manifest.json")):
        key = json.loads(manifest.read_text())["key"]
        memory = SyntheticMemory(manifest.parent, key)
        if memory.complete:
            name = describe(key["inversion"], memory.manifest.get("scales") or ())
            sizes[name] = memory_object_sizes(memory, train_base.info)
    if len(sizes) == 1:
        print(f"no finished synthetic memory under {folder}: run notebook 04 with this configuration first")
    print(f"{cfg.dataset} {cfg.task} {cfg.setting}, step-0 checkpoint {checkpoint_file(cfg, 0, 'step0')}")
    print(object_size_table(sizes).to_string())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--dataset", default="")
    ap.add_argument("--data-root", default="")
    ap.add_argument("--task", default="15-5")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="RunConfig field")
    ap.add_argument("--scales", default="0.05,0.15,0.4", help="target fractions, comma list")
    ap.add_argument("--inside-weights", default="0,1", help="inside_weight values, comma list")
    ap.add_argument("--outside-weight", type=float, default=None, help="outside_weight (default: the library's)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--stored", action="store_true", help="only the object sizes of the memories on disk")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    fields = dict(args.p)  # strings: pretrained, model, ... (RunConfig validates them)
    cfg = RunConfig.from_profile(args.profile, dataset=args.dataset, data_root=args.data_root, task=args.task, **fields)
    if args.stored:
        return stored_sizes(cfg)
    inversion = inversion_config(cfg.profile, outside_weight=args.outside_weight)
    scales = [float(v) for v in args.scales.split(",")]
    old = [c for c in IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).seen_classes if c != 0]
    summary = {}
    for w in (float(v) for v in args.inside_weights.split(",")):
        got = []
        for c in old:
            out = synthesis_at_scales(cfg, replace(inversion, inside_weight=w), c, scales)
            got.append(out["got"])
            line = {"inside_weight": w, "class": out["class_names"][c], "asked": scales}
            print(json.dumps(line | {"got": [round(g, 4) for g in out["got"]]}))
        summary[w] = np.asarray(got)  # (classes, scales)
    threads = torch.get_num_threads()
    print(f"\n{cfg.dataset} {cfg.task}, {len(old)} old classes, one image per class and scale, {threads} threads")
    print("inside_weight | asked | got: median [25%, 75%] | no pixel of the class")
    for w, got in summary.items():
        for j, s in enumerate(scales):
            q1, med, q3 = np.quantile(got[:, j], (0.25, 0.5, 0.75))
            empty = int((got[:, j] == 0).sum())
            print(f"{w:g} | {100 * s:.1f}% | {100 * med:.1f}% [{100 * q1:.1f}, {100 * q3:.1f}] | {empty}/{len(got)}")


if __name__ == "__main__":
    main()
