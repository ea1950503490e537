"""The data behind the notebooks' pictures: predictions over steps, example images, a record's model,
SEAM's examples and outcomes, what PLOP compares and what SDR shapes. These functions load
checkpoints and images and return arrays; incseg_lib.viz draws them. Nothing here trains."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from .. import plop, sdr
from ..config import RunConfig, step0_name
from ..data.transforms import eval_transforms
from ..engine import load_checkpoint
from ..models import build_model as build_network
from ..models import limit_to_seen
from ..results import Record, as_records
from ..seam import PseudoLabels, SeamConfig, SeamNet, cam_scores, count_outcomes, pseudo_label_outcome
from ..store import CorruptCheckpoint, load_torch
from ..tasks import IncrementalSplit, get_task
from . import keys
from .sources import step_image_labels
from .step import base_datasets, joint_config, load_step_model


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


def model_and_data(rec: Mapping, data_root: str = ""):
    """The model, evaluation images and palette behind a results record (for galleries/viewers).

    Args:
        rec: a results record (:class:`~incseg_lib.results.Record` or its dictionary).
        data_root: read the images from here instead of the record's ``data_root``.

    Returns:
        ``(model, dataset, palette)``: the model of ``rec.checkpoint`` in eval mode; the
        evaluation split labelled with the model's output indices (full images, normalised); the
        palette reordered to those indices.

    Raises:
        FileNotFoundError: the record has no checkpoint, or its file is gone (names it).
        CorruptCheckpoint: the checkpoint is truncated, not incseg's, or holds code (names it).
    """
    model, split, val_base = _record_model(Record.from_dict(rec), data_root)
    data = split.eval_dataset(val_base).with_transforms(eval_transforms())
    palette = val_base.info.display_palette[split.class_order[: split.num_seen]]
    return model, data, palette


def _record_model(rec: Record, data_root: str = ""):
    """``(model in eval mode, its IncrementalSplit, the validation dataset)`` of a record's checkpoint;
    raises as :func:`model_and_data`."""
    ckpt = rec.checkpoint
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
    cfg = RunConfig(**{k: v for k, v in rec.config.items() if k in RunConfig.__dataclass_fields__})
    if data_root:
        cfg = cfg.replace(data_root=data_root)
    if rec.method == "joint":
        cfg = joint_config(cfg.replace(task=rec.task))
        split = IncrementalSplit(cfg.dataset, cfg.task, 0, "overlapped")
    elif rec.setting == "offline":
        split = IncrementalSplit(cfg.dataset, rec.task, 0, "overlapped")
        cfg = cfg.replace(task=rec.task)
    else:
        cfg = cfg.replace(task=rec.task, setting=rec.setting)
        split = IncrementalSplit(cfg.dataset, cfg.task, rec.step, cfg.setting)
    limit_to_seen(model, split.step + 1)  # pre-allocated heads of later steps (DFT*) are not predicted
    _, val_base = base_datasets(cfg, split)
    return model.eval(), split, val_base


def last_step_predictions(records: Iterable[Mapping], indices, data_root: str = "", device="cpu") -> dict:
    """Every model of one task after its last step on the same validation images (the data of
    :func:`~incseg_lib.viz.method_gallery`).

    Args:
        records: final-step records of one (dataset, task, setting), one per model to show, in the
            order to show them (:func:`incseg_lib.results.final_steps` and ``run_rank`` give it);
            records whose checkpoint is not on this machine are left out and named in ``missing``.
        indices: validation image indices (every model sees every image: the evaluation keeps them all).
        data_root: read the images from here instead of the records' ``data_root``.
        device: where the models run.

    Returns:
        ``{"images": [(3, H, W) float], "truth": [(H, W) int64 dataset class ids, 255 void],
        "preds": [[(H, W) int64 dataset class ids per image] per shown record], "records": the
        shown records, "missing": [(record, why)], "palette", "class_names"}``; ids are dataset class
        ids whatever order each model learned its classes in (Joint learns them all at once).

    Raises:
        ValueError: ``records`` mix datasets, tasks or settings (names them), or none can be loaded.
    """
    records = as_records(records)
    groups = {(r.dataset, r.task, r.setting) for r in records}
    if len(groups) != 1:
        raise ValueError(f"last_step_predictions: one (dataset, task, setting) at a time, got {sorted(groups)}")
    shown, preds, missing, images, truth, info = [], [], [], None, None, None
    for rec in records:
        try:
            model, split, val_base = _record_model(rec, data_root)
        except (OSError, ValueError, KeyError, RuntimeError) as e:  # missing/corrupt checkpoint, data moved ...
            missing.append((rec, str(e)))
            continue
        order = torch.as_tensor(split.class_order)
        if images is None:  # the images and ground truth once, in dataset ids
            val = split.eval_dataset(val_base).with_transforms(eval_transforms())
            items = [val[i] for i in indices if i < len(val)]
            images = [x for x, _ in items]
            truth = [order[torch.where(y == 255, 0, y).long()].masked_fill(y == 255, 255) for _, y in items]
            info = val_base.info
        model = model.to(device)
        with torch.no_grad():
            preds.append([order[model(x[None].to(device))["out"].argmax(1)[0].cpu()] for x in images])
        shown.append(rec)
    if not shown:
        raise ValueError(f"none of the {len(records)} records' checkpoints can be loaded: {missing[:1]}")
    return {
        "images": images,
        "truth": truth,
        "preds": preds,
        "records": shown,
        "missing": missing,
        "palette": info.display_palette,
        "class_names": info.class_names,
        "old": [c for c in get_task(shown[0]["dataset"], shown[0]["task"])[0] if c != 0 or not info.has_background],
        "title": " ".join(str(x) for x in sorted(groups)[0]),
    }


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
def measure_pod(cfg: RunConfig, methods: list[str], index: int, stage: int = 2) -> dict:
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
    return {"panels": panels, "class_names": val_base.info.class_names, "palette": val_base.info.white_palette}
