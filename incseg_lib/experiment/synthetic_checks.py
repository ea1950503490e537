"""Notebook 04's checks of the synthetic images: object sizes against the real masks, synthesis at set
scales, and the transfer check against an independent step-0 model (these synthesise and train;
incseg_lib.viz draws what they return)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from ..config import RunConfig
from ..data.transforms import denormalize, eval_transforms
from ..inversion import (
    TRANSFER_MIN_FRACTION,
    InversionConfig,
    object_sizes,
    pseudo_labels,
    synthesize,
    transfer_check,
)
from ..log import get_logger
from ..results import aggregation_label
from ..tasks import IncrementalSplit
from . import keys
from .sources import real_object_sizes
from .step import base_datasets, load_step_model, train_step

log = get_logger(__name__)


def synthesis_label(aggregation: str, bn_term: bool = True) -> str:
    """``"LSE synthesis"``, ``"scale-aware synthesis"``, ``"LSE synthesis, no BN term"``: a synthetic
    memory as figures and tables name it (never the option's code, ``lse``)."""
    return f"{aggregation_label(aggregation)} synthesis" + ("" if bn_term else ", no BN term")


def object_size_samples(cfg: RunConfig, memories: dict) -> dict[str, np.ndarray]:
    """The sizes (fraction of the image) of the objects of the old classes: in the real step-0
    training masks, and in the pseudo-labels of each synthetic memory of ``cfg.task`` / ``cfg.setting``
    (``memories`` as :func:`~incseg_lib.experiment.run_inversion_study` returns them).

    Returns:
        ``{"real step-0 objects": sizes, "LSE synthesis": sizes, "scale-aware synthesis": sizes}``
        (the synthetic entries for the aggregations that ran).
    """
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    train_base, _ = base_datasets(cfg, split0)
    old = [c for c in split0.seen_classes if c != 0]
    out = {"real step-0 objects": real_object_sizes(cfg, split0, train_base, old)}
    for (task, setting, *agg), memory in memories.items():
        if agg and (task, setting) == (cfg.task, cfg.setting) and memory.complete:
            out[synthesis_label(agg[0])] = memory_object_sizes(memory, train_base.info)
    return out


def memory_object_sizes(memory, info) -> np.ndarray:
    """:func:`~incseg_lib.inversion.object_sizes` of a synthetic memory's pseudo-labels (``info``: the
    dataset's :class:`~incseg_lib.data.DatasetInfo`)."""
    masks = memory.as_dataset(info)
    return object_sizes(masks.read_mask(i) for i in range(len(masks)))


def object_size_table(sizes: dict):
    """The object sizes of :func:`object_size_samples` (or any ``{name: sizes}``) as numbers: per
    source, the objects counted, the quartiles of the fraction of the image they cover (in %) and the
    share of objects under 1 % of the image (a few pixels: at 160 px, 1 % is 256 pixels).

    Returns:
        A ``pandas.DataFrame`` indexed by source; an empty source has its count 0 and no quartiles.
    """
    import pandas as pd

    rows = {}
    for name, values in sizes.items():
        v = 100 * np.asarray(values, dtype=float)
        q = np.quantile(v, (0.25, 0.5, 0.75)).round(1) if len(v) else [np.nan] * 3
        under = round(100 * float((v < 1).mean()), 1) if len(v) else np.nan
        rows[name] = {"objects": len(v), "25% (%)": q[0], "median (%)": q[1], "75% (%)": q[2], "under 1% (%)": under}
    return pd.DataFrame.from_dict(rows, orient="index")


@torch.no_grad()
def _pseudo(model, images, confidence, order):
    labels, _ = pseudo_labels(model, images, confidence)
    return order[labels.cpu().clamp(max=len(order) - 1)].masked_fill(labels.cpu() == 255, 255)


def synthesis_at_scales(cfg: RunConfig, inversion: InversionConfig, class_id: int, scales=(0.05, 0.15, 0.4)) -> dict:
    """The same old class synthesised from the step-0 model at several target scales (scale-aware
    aggregation, one image per scale, seeded), with the old model's pseudo-labels and the fraction of
    each image the class ended up covering.

    Returns:
        ``{"images": (S, 3, r, r) in [0, 1], "labels": (S, r, r) dataset ids, "asked": scales, "got":
        fractions, "class_id", "class_names", "palette"}``.
    """
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    _, val_base = base_datasets(cfg, split0)
    device = cfg.torch_device()
    model = load_step_model(cfg, 0, "step0").to(device)
    seen = list(split0.class_order[: split0.num_seen])
    order = torch.as_tensor(seen)
    fg = [int(c) for c in seen if c != 0]
    config = replace(inversion, aggregation="scale-aware", batch_size=max(2, len(scales)))
    targets = torch.zeros(len(scales), len(fg))
    targets[:, fg.index(class_id)] = 1
    out_index = {c: i for i, c in enumerate(seen)}
    res = synthesize(
        model,
        targets,
        [out_index[c] for c in fg],
        config,
        scales=list(scales),
        device=device,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    labels = _pseudo(model, res.images, inversion.confidence, order)
    got = [(labels[i] == class_id).float().mean().item() for i in range(len(scales))]
    return {
        "images": denormalize(res.images).cpu(),
        "labels": labels,
        "asked": list(scales),
        "got": got,
        "class_id": class_id,
        "class_names": val_base.info.class_names,
        "palette": val_base.info.display_palette,
    }


# ---------------------------------------------------------------------- the transfer check (notebook 04)
def independent_step0(cfg: RunConfig, *, notebook: str = "", progress: bool = True) -> dict:
    """The transfer check's independent network: step 0 of ``cfg.task`` as every notebook trains it
    (:func:`~.step.train_step`, method ``step0``), with seed ``cfg.seed + 1`` (other initial weights,
    data order and augmentation; same data, architecture and schedule). Its checkpoint is cached like
    every step's (a calibration over seeds has trained it already); it is evaluated, not recorded, so
    the notebooks' tables do not list it.

    Returns:
        ``{"model" (eval mode), "seed", "miou" (all classes, full validation images, %), "seconds"
        (wall time of this call: training and evaluation, or only evaluation when reused),
        "trained_now" (False when the checkpoint was reused), "checkpoint"}``.
    """
    ccfg = cfg.replace(seed=cfg.seed + 1)
    ckpt = keys.checkpoint_file(ccfg, 0, "step0")
    existed = ckpt.is_file()
    t0 = time.perf_counter()
    kw = dict(notebook=notebook, record=False, progress=progress)
    out = train_step(ccfg, step=0, method="step0", **kw)
    return {
        "model": out.model,
        "seed": ccfg.seed,
        "miou": round(100 * (out.record.miou_all or 0), 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "trained_now": not existed,
        "checkpoint": str(out.checkpoint),
    }


def transfer_checks(
    cfg: RunConfig,
    memories: dict,
    *,
    independent: dict | None = None,
    min_fraction: float = TRANSFER_MIN_FRACTION,
    notebook: str = "",
    progress: bool = True,
) -> dict:
    """DeepInversion's transfer check (:func:`~incseg_lib.inversion.transfer_check`) of synthetic
    memories made from ``cfg.task``'s step-0 model: which synthetic images the inverted model itself and
    an independently trained step-0 model (:func:`independent_step0`) recognise as their target class.

    Args:
        memories: label -> complete :class:`~incseg_lib.inversion.SyntheticMemory` (e.g. ``{"LSE":
            ..., "scale-aware": ...}``).
        independent: a :func:`independent_step0` result to reuse (made here when None).
        min_fraction: the rule's smallest target share (:func:`~incseg_lib.inversion.target_recognised`).

    Returns:
        ``{"memories": {label: {model label: transfer_check result}}, "models": [the inverted model's
        label, the independent one's], "independent": its info (no model), "min_fraction",
        "class_names", "palette"}``.

    Raises:
        ValueError: an incomplete or empty memory.
    """
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    train_base, _ = base_datasets(cfg, split0)
    order = list(split0.class_order[: split0.num_seen])
    independent = independent or independent_step0(cfg, notebook=notebook, progress=progress)
    models = {
        f"inverted step-0 model (seed {cfg.seed})": load_step_model(cfg, 0, "step0"),
        f"independent step-0 model (seed {independent['seed']})": independent["model"],
    }
    device = cfg.torch_device()
    out = {}
    for label, memory in memories.items():
        if not memory.complete or not len(memory):
            raise ValueError(f"the synthetic memory {label!r} in {memory.folder} is not made yet")
        syn = memory.as_dataset(train_base.info).with_transforms(eval_transforms())
        x = torch.stack([syn[i][0] for i in range(len(syn))])
        targets = [t[0] for t in memory.targets]
        out[label] = {
            name: transfer_check(m.to(device), x, targets, order, min_fraction=min_fraction, device=device)
            for name, m in models.items()
        }
    return {
        "memories": out,
        "models": list(models),
        "independent": {k: v for k, v in independent.items() if k != "model"},
        "min_fraction": min_fraction,
        "class_names": train_base.info.class_names,
        "palette": train_base.info.display_palette,
    }


def transfer_table(checks: dict):
    """The transfer check as a table: one row per target class (and ``all``), one column per (memory,
    model), cells ``recognised/images`` (the overall row adds the percentage)."""
    import pandas as pd

    names = checks["class_names"]
    cols = {}
    for mem, per_model in checks["memories"].items():
        for model, res in per_model.items():
            col = {names[c]: f"{v['recognised']}/{v['images']}" for c, v in res["per_class"].items()}
            o = res["overall"]
            col["all"] = f"{o['recognised']}/{o['images']} ({100 * o['rate']:.0f}%)"
            cols[(mem, model)] = col
    frame = pd.DataFrame(cols)
    frame.index.name = "target class"
    return frame


def describe_transfer(checks: dict) -> str:
    """:func:`transfer_checks` in words, for the notebook: per memory, how many synthetic images the
    independent model and the inverted one recognise, and the classes the independent one misses."""
    names = checks["class_names"]
    inverted, independent = checks["models"][0], checks["models"][-1]
    lines = []
    for mem, per_model in checks["memories"].items():
        o, own = per_model[independent]["overall"], per_model[inverted]["overall"]
        missed = [names[c] for c, v in per_model[independent]["per_class"].items() if v["rate"] < 0.5]
        line = (
            f"{mem}: the independent model recognises {o['recognised']} of {o['images']} images "
            f"({100 * o['rate']:.0f}%), the inverted model {own['recognised']} ({100 * own['rate']:.0f}%)"
        )
        n = len(per_model[independent]["per_class"])
        if len(missed) > 6:
            line += f"; it misses most images of {len(missed)} of the {n} classes."
        else:
            line += f"; mostly missed: {', '.join(missed)}." if missed else "."
        lines.append(line)
    no_bn = [m for m in checks["memories"] if "no BN" in m]
    with_bn = [m for m in checks["memories"] if "no BN" not in m]
    if no_bn and with_bn:  # DeepInversion's claim: matching the BN statistics is what makes images transfer
        a = checks["memories"][with_bn[0]][independent]["overall"]
        b = checks["memories"][no_bn[0]][independent]["overall"]
        if b["rate"] > a["rate"]:
            lines.append(
                f"Without the BN-statistics term the independent model recognises more images ({b['recognised']}/"
                f"{b['images']} against {a['recognised']}/{a['images']} with it): the opposite of DeepInversion's "
                "finding that the term is what makes images transfer (Yin et al., CVPR 2020, Sec. 4). At this "
                "profile's resolution and number of iterations the term did not help; why is not measured here "
                "(DeepInversion's images are 224 px after 3,000 iterations)."
            )
        else:
            lines.append(
                f"With the BN-statistics term the independent model recognises {a['recognised']}/{a['images']} "
                f"images, without it {b['recognised']}/{b['images']}: as DeepInversion found, the term helps "
                "images transfer to a model that never saw them."
            )
    return "\n".join(lines)


def synthetic_examples(cfg: RunConfig, memory, checks: dict | None = None, memory_label: str = "", per_class: int = 1):
    """The data of :func:`~incseg_lib.viz.synthetic_gallery`: for each old class of ``memory`` (made from
    ``cfg.task``'s step-0 model), up to ``per_class`` synthetic images with the old model's pseudo-labels,
    a real step-0 training image of that class (the one where the class covers the most pixels) with
    the class's mask, and, with ``checks`` (:func:`transfer_checks`), the independent model's prediction
    of each synthetic image and the check's verdict.

    Returns:
        ``{"rows": [{"class_id", "synthetic" (H, W, 3) uint8, "pseudo" (H, W) dataset ids (255
        unsure), "real" (H', W', 3) uint8 or None, "real_mask" (H', W') bool or None, "check" (H, W)
        ids or None, "recognised" bool or None, "seen" (the check's majority foreground class, 0 for
        none, or None)}], "class_names", "palette", "checker" (the independent model's label or None)}``.
    """
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    train_base, _ = base_datasets(cfg, split0)
    syn = memory.as_dataset(train_base.info)
    by_class: dict[int, list[int]] = {}
    for i, t in enumerate(memory.targets):
        by_class.setdefault(int(t[0]), []).append(i)
    best: dict[int, tuple[float, int]] = {}  # class -> (share of the image, index) of its largest real object
    for i in split0.train_indices(train_base, cfg.checkpoint_path / "splits").tolist():
        counts = np.bincount(train_base.read_mask(int(i)).ravel(), minlength=256)
        for c in by_class:
            share = counts[c] / counts.sum()
            if share > best.get(c, (0.0, -1))[0]:
                best[c] = (share, int(i))
    check = None
    if checks is not None:
        label = memory_label or next(iter(checks["memories"]))
        check = checks["memories"][label][checks["models"][-1]]
    rows = []
    for c in sorted(by_class):
        real = real_mask = None
        if c in best:
            real = train_base.read_image(best[c][1]).permute(1, 2, 0).numpy()
            real_mask = train_base.read_mask(best[c][1]) == c
        for i in by_class[c][:per_class]:
            rows.append(
                {
                    "class_id": c,
                    "synthetic": syn.read_image(i).permute(1, 2, 0).numpy(),
                    "pseudo": np.asarray(syn.read_mask(i)),
                    "real": real,
                    "real_mask": real_mask,
                    "check": None if check is None else check["predictions"][i].numpy(),
                    "recognised": None if check is None else check["per_image"][i]["recognised"],
                    "seen": None if check is None else check["per_image"][i]["majority"],
                }
            )
    return {
        "rows": rows,
        "class_names": train_base.info.class_names,
        "palette": train_base.info.display_palette,
        "checker": None if checks is None else checks["models"][-1],
    }
