"""The data behind the notebooks' pictures: predictions over steps, example images, a record's model,
what PLOP compares and what SDR shapes.

These functions load checkpoints and images and return arrays; :mod:`incseg_lib.viz` draws them.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .. import plop, sdr
from ..config import RunConfig, step0_name
from ..data.transforms import denormalize, eval_transforms
from ..engine import load_checkpoint
from ..inversion import (
    TRANSFER_MIN_FRACTION,
    InversionConfig,
    object_sizes,
    pseudo_labels,
    synthesize,
    transfer_check,
)
from ..models import build_model as build_network
from ..seam import PseudoLabels, SeamConfig, SeamNet, cam_scores, count_outcomes, pseudo_label_outcome
from ..store import CorruptCheckpoint, load_torch
from ..tasks import IncrementalSplit, get_task
from . import keys
from .sources import real_object_sizes, step_image_labels
from .step import base_datasets, joint_config, load_step_model, train_step


def step_predictions(cfg: RunConfig, methods: list[str], indices: list[int]) -> dict:
    """Predictions of the same validation images after every step, for each method (the data of
    :func:`~incseg_lib.viz.predictions_over_steps`).

    Returns:
        ``{"images": [(3, H, W) float], "truth": [(H, W) int64 with every class of the task],
        "palette", "class_names", "added": [[class names learned at that step] per step],
        "steps": {method: [[(H, W) int64 per image] per step]}}``; predicted ids are dataset class
        ids (step 0 is the shared model).
    """
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    last = IncrementalSplit(cfg.dataset, cfg.task, split0.num_steps - 1, cfg.setting)
    _, val_base = base_datasets(cfg, split0)
    val = last.eval_dataset(val_base).with_transforms(eval_transforms())
    order = torch.as_tensor(last.class_order)
    items = [val[i] for i in indices]
    images = [x for x, _ in items]
    truth = [order[torch.where(y == 255, 0, y)].masked_fill(y == 255, 255) for _, y in items]
    device = cfg.torch_device()
    steps = {}
    for m in methods:
        per_step = []
        for step in range(split0.num_steps):
            model = load_step_model(cfg, step, step0_name(m) if step == 0 else m).to(device)
            with torch.no_grad():
                per_step.append([order[model(x[None].to(device))["out"].argmax(1)[0].cpu()] for x in images])
        steps[m] = per_step
    return {
        "images": images,
        "truth": truth,
        "palette": val_base.info.display_palette,
        "class_names": val_base.info.class_names,
        "added": [
            [val_base.info.class_names[c] for c in classes if c != 0 or not val_base.info.has_background]
            for classes in get_task(cfg.dataset, cfg.task)
        ],
        "steps": steps,
    }


def task_overview(cfg: RunConfig):
    """DataFrame of ``cfg.task``'s steps: new classes and training images per setting."""
    import pandas as pd

    rows = []
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    train_base, _ = base_datasets(cfg, split0)
    for step in range(split0.num_steps):
        row = {"step": step}
        for setting in ("disjoint", "overlapped"):
            sp = IncrementalSplit(cfg.dataset, cfg.task, step, setting)
            row[f"images ({setting})"] = len(sp.train_indices(train_base, cfg.checkpoint_path / "splits"))
        names = [train_base.info.class_names[c] for c in split0.steps[step]]
        row["new classes"] = ", ".join(names if len(names) <= 6 else names[:5] + [f"... ({len(names)})"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("step")


def example_images(cfg: RunConfig, n: int = 2) -> list[int]:
    """Validation images that show background shift: a step-0 class *and* a later class if possible."""
    split = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    _, val = base_datasets(cfg, split)
    pres = val.class_presence(cfg.checkpoint_path / "splits")
    old = [c for c in split.base_classes if c != 0]
    new = [c for s in split.steps[1:] for c in s]
    has_new = pres[:, new].any(1)
    both = np.flatnonzero(pres[:, old].any(1) & has_new).tolist()
    rest = [i for i in np.flatnonzero(has_new).tolist() if i not in both]
    picks = (both + rest)[:n]
    return picks or list(range(min(n, len(val))))


def model_and_data(rec: dict, data_root: str = ""):
    """The model, evaluation images and palette behind a results record (for galleries/viewers).

    Args:
        data_root: read the images from here instead of the record's ``data_root``.

    Returns:
        ``(model, dataset, palette)``: the model of ``rec["checkpoint"]`` in eval mode; the
        evaluation split labelled with the model's output indices (full images, normalised); the
        palette reordered to those indices.

    Raises:
        FileNotFoundError: the record has no checkpoint, or its file is gone (names it).
        CorruptCheckpoint: the checkpoint is truncated, not incseg's, or holds code (names it).
    """
    ckpt = rec.get("checkpoint")
    if not ckpt or not Path(ckpt).is_file():
        raise FileNotFoundError(
            f"the checkpoint of this record ({ckpt}) is not on this machine; "
            "re-run its notebook (it reuses or retrains the step)"
        )
    state = load_torch(ckpt)  # tensors and plain values only: a planted pickle is refused, not run
    if not isinstance(state, dict) or not {"model", "classes_per_step", "backbone"} <= set(state):
        raise CorruptCheckpoint(f"checkpoint {ckpt} is not an incseg checkpoint (no model, classes or backbone)", ckpt)
    model = build_network(state.get("model_name") or "bisenet", state["classes_per_step"], state["backbone"], "")
    model.load_state_dict(state["model"])
    cfg = RunConfig(**{k: v for k, v in rec["config"].items() if k in RunConfig.__dataclass_fields__})
    if data_root:
        cfg = cfg.replace(data_root=data_root)
    if rec["method"] == "joint":
        cfg = joint_config(cfg.replace(task=rec["task"]))
        split = IncrementalSplit(cfg.dataset, cfg.task, 0, "overlapped")
    elif rec.get("setting") == "offline":
        split = IncrementalSplit(cfg.dataset, rec["task"], 0, "overlapped")
        cfg = cfg.replace(task=rec["task"])
    else:
        cfg = cfg.replace(task=rec["task"], setting=rec["setting"])
        split = IncrementalSplit(cfg.dataset, cfg.task, rec["step"], cfg.setting)
    _, val_base = base_datasets(cfg, split)
    data = split.eval_dataset(val_base).with_transforms(eval_transforms())
    palette = val_base.info.display_palette[split.class_order[: split.num_seen]]
    return model.eval(), data, palette


def seam_examples(cfg: RunConfig, pseudo: PseudoLabels, seam: SeamConfig, n: int = 4, step: int = 1) -> list[dict]:
    """A few training images of ``step`` with what SEAM made of them, for :func:`~incseg_lib.viz.seam_gallery`.

    Returns:
        Dicts with ``image`` ``(3,H,W)`` uint8, ``mask`` (ground truth, dataset ids), ``cam`` and
        ``pcm`` ``(H,W)`` (the maximum over the labelled classes of the normalised maps), ``pseudo``
        (dataset ids, as trained on), ``classes`` (the image-level label, names) and ``outcomes``
        (one :func:`~incseg_lib.seam.pseudo_label_outcome` per labelled class: found, missed, or
        moved onto an old object).
    """
    split = IncrementalSplit(cfg.dataset, cfg.task, step, cfg.setting)
    train_base, _ = base_datasets(cfg, split)
    idx, new, labels = step_image_labels(cfg, split, train_base)
    images = train_base.subset(idx)
    model = SeamNet(len(new), seam.backbone, seam.output_stride, "")
    load_checkpoint(keys.seam_weights_of(pseudo, step), model)
    device = cfg.torch_device()
    model.to(device).eval()
    picks = np.linspace(0, len(idx) - 1, min(n, len(idx))).round().astype(int).tolist()
    masks = pseudo.as_dataset(images)
    out = []
    for j in picks:
        image, mask = images[j]
        x, _ = eval_transforms()(image, mask)
        scores = cam_scores(model, x.to(device), torch.as_tensor(labels[j]), seam)
        label = masks.read_mask(j)
        out.append(
            {
                "image": torch.as_tensor(image),
                "mask": np.asarray(mask),
                "cam": scores["cam"].max(0).values.cpu().numpy(),
                "pcm": scores["pcm"].max(0).values.cpu().numpy(),
                "pseudo": label,
                "classes": [train_base.info.class_names[c] for c, y in zip(new, labels[j]) if y],
                "outcomes": [
                    pseudo_label_outcome(label, mask, c, split.old_classes) for c, y in zip(new, labels[j]) if y
                ],
            }
        )
    return out


def seam_outcomes(cfg: RunConfig, pseudo: PseudoLabels, step: int = 1) -> dict:
    """How often the stored pseudo-labels of ``step`` found, missed or moved the labelled new objects,
    over every training image of the step (:func:`~incseg_lib.seam.pseudo_label_outcome` per image and
    labelled class, against the ground-truth masks the pseudo-labels replace).

    Returns:
        ``{"counts": {"found", "missed", "moved", "objects"}, "per_class": {class name: counts},
        "moved_onto": {old class name: how many moved objects it received}, "images"}``.
    """
    split = IncrementalSplit(cfg.dataset, cfg.task, step, cfg.setting)
    train_base, _ = base_datasets(cfg, split)
    idx, new, labels = step_image_labels(cfg, split, train_base)
    images = train_base.subset(idx)
    masks = pseudo.as_dataset(images)
    names = train_base.info.class_names
    found = [
        pseudo_label_outcome(masks.read_mask(j), images.read_mask(j), c, split.old_classes)
        for j in range(len(images))
        for c, y in zip(new, labels[j])
        if y
    ]
    moved_onto: dict[str, int] = {}
    for o in found:
        if o["outcome"] == "moved":
            moved_onto[names[o["old_class"]]] = moved_onto.get(names[o["old_class"]], 0) + 1
    return {
        "counts": count_outcomes(found),
        "per_class": {names[c]: count_outcomes(o for o in found if o["class_id"] == c) for c in new},
        "moved_onto": dict(sorted(moved_onto.items(), key=lambda kv: -kv[1])),
        "images": len(images),
    }


def describe_outcomes(outcomes: dict) -> str:
    """:func:`seam_outcomes` in words, for the notebook: the counts with their shares, the old classes
    that most often received a moved label, and the class found least often."""
    c, n = outcomes["counts"], max(outcomes["counts"]["objects"], 1)

    def part(k):
        return f"{c[k]} ({100 * c[k] / n:.0f}%)"

    text = (
        f"Of {c['objects']} labelled new objects in {outcomes['images']} training images, the pseudo-labels "
        f"found {part('found')} (IoU >= 0.5), missed {part('missed')} and moved {part('moved')} onto an old "
        "object (they cover more of old objects than of the new one)."
    )
    if outcomes["moved_onto"]:
        top = ", ".join(f"{k} {v}" for k, v in list(outcomes["moved_onto"].items())[:3])
        text += f" The old classes that received them most often: {top}."
    per = {k: v for k, v in outcomes["per_class"].items() if v["objects"]}
    if per:
        worst = min(per, key=lambda k: per[k]["found"] / per[k]["objects"])
        w = per[worst]
        text += (
            f" Found least often: {worst} ({w['found']} of {w['objects']}; moved {w['moved']}, missed {w['missed']})."
        )
    return text


@torch.no_grad()
def pod_profiles(cfg: RunConfig, methods: list[str], index: int, stage: int = 2) -> dict:
    """What PLOP's Local POD compares, for one validation image: a ResNet stage's squared features of
    the step-0 model and of each method's last-step model, pooled over the width (one value per row)
    and over the height (one per column) at scale 1, averaged over the channels, with each model's
    POD distance to step 0 on that map (:func:`~incseg_lib.plop.pod_embedding`, all scales).

    Args:
        methods: run names, e.g. ``["mib", "plop"]``; index: a validation image of ``cfg.task``.
        stage: 0..3, the ResNet stage (2: 1/16 resolution).

    Returns:
        ``{"rows": {name: (h,)}, "cols": {name: (w,)}, "distance": {name: float}, "stage": int,
        "image": (3, H, W)}`` with ``name`` ``"step 0"`` or the method.
    """
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    last = split0.num_steps - 1
    _, val_base = base_datasets(cfg, split0)
    x, _ = (
        IncrementalSplit(cfg.dataset, cfg.task, last, cfg.setting)
        .eval_dataset(val_base)
        .with_transforms(eval_transforms())[index]
    )
    device = cfg.torch_device()
    maps = {}
    for name, step, run in [("step 0", 0, step0_name(methods[0]))] + [(m, last, m) for m in methods]:
        model = load_step_model(cfg, step, run).to(device)
        model.return_maps = True
        maps[name] = model(x[None].to(device))["maps"][stage].float().cpu()
    out = {"rows": {}, "cols": {}, "distance": {}, "stage": stage, "image": x}
    ref = plop.pod_embedding(maps["step 0"])
    for name, m in maps.items():
        sq = m.pow(2)[0].mean(0)  # (h, w): squared, averaged over channels
        out["rows"][name], out["cols"][name] = sq.mean(1).numpy(), sq.mean(0).numpy()
        out["distance"][name] = float(torch.linalg.vector_norm(plop.pod_embedding(m) - ref, dim=-1))
    return out


@torch.no_grad()
def latent_projection(cfg: RunConfig, method: str, images: int = 6, per_class: int = 150, seed: int = 0) -> dict:
    """SDR's latent space in two dimensions: pixel features (the map the classifier reads) of the
    first ``images`` validation images under the step-0 model and ``method``'s last-step model, with
    the class prototypes each step saved, projected on the two principal axes of all of them together.

    Returns:
        ``{"panels": [{"title", "points": (N, 2), "labels": (N,) class ids, "prototypes": {class:
        (2,)}}], "class_names", "palette"}``; ``per_class`` points at most per class and panel.
    """
    split0 = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting)
    last = split0.num_steps - 1
    split = IncrementalSplit(cfg.dataset, cfg.task, last, cfg.setting)
    _, val_base = base_datasets(cfg, split0)
    val = split.eval_dataset(val_base).with_transforms(eval_transforms())
    order = torch.as_tensor(split.class_order)
    device = cfg.torch_device()
    g = torch.Generator().manual_seed(seed)
    panels, feats = [], []
    for title, step, run in (("after step 0", 0, step0_name(method)), (f"after step {last} ({method})", last, method)):
        model = load_step_model(cfg, step, run).to(device)
        model.return_maps = True
        xs, ys = [], []
        for i in range(min(images, len(val))):
            x, y = val[i]
            lat = model(x[None].to(device))["latent"].float().cpu()[0]  # (C, h, w)
            lab = sdr.downsample_labels(y[None].long(), lat.shape[-2:])[0]
            keep = lab != 255
            xs.append(lat.permute(1, 2, 0)[keep])
            ys.append(order[lab[keep].clamp(max=len(order) - 1)])
        x, y = torch.cat(xs), torch.cat(ys)
        pick = torch.cat(
            [
                torch.nonzero(y == c)[:, 0][torch.randperm(int((y == c).sum()), generator=g)[:per_class]]
                for c in torch.unique(y).tolist()
            ]
        )
        protos = sdr.load_prototypes(keys.checkpoint_file(cfg, step, run)) or {}
        seen = order[: len(protos.get("counts", []))]
        proto = {int(c): p for c, p, n in zip(seen, protos.get("prototypes", []), protos.get("counts", [])) if n > 0}
        panels.append({"title": title, "x": x[pick], "labels": y[pick].numpy(), "proto": proto})
        feats += [x[pick]] + [p[None] for p in proto.values()]
    allf = torch.cat(feats)
    mean = allf.mean(0)
    _, _, v = torch.pca_lowrank(allf - mean, q=2, center=False)
    for p in panels:
        p["points"] = ((p.pop("x") - mean) @ v).numpy()
        p["prototypes"] = {c: ((t - mean) @ v).numpy() for c, t in p.pop("proto").items()}
    return {"panels": panels, "class_names": val_base.info.class_names, "palette": val_base.info.display_palette}


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
    names = {"lse": "LSE synthesis", "scale-aware": "scale-aware synthesis"}
    for (task, setting, *agg), memory in memories.items():
        if agg and (task, setting) == (cfg.task, cfg.setting) and memory.complete:
            out[names.get(agg[0], agg[0])] = memory_object_sizes(memory, train_base.info)
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
def independent_step0(cfg: RunConfig, *, notebook: str = "", progress: bool = True, print_fn=print) -> dict:
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
    kw = dict(notebook=notebook, record=False, progress=progress, print_fn=print_fn)
    out = train_step(ccfg, step=0, method="step0", **kw)
    return {
        "model": out.model,
        "seed": ccfg.seed,
        "miou": round(100 * (out.record["miou_all"] or 0), 1),
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
    print_fn=print,
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
    independent = independent or independent_step0(cfg, notebook=notebook, progress=progress, print_fn=print_fn)
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
