"""Notebook 07's study: linear probes of a step's model, what its frozen features still know
whatever its own classifier now predicts (the diagnostic of "Revisiting Continual Semantic
Segmentation with Pre-trained Vision Models", arXiv 2508.04267; BladeDancer957/RevisitingCSS
``run_probing.py``, ``train_probing.py``), beside DFT* and EWF (:mod:`.fusion`).

After step t of a run, a fresh 1x1 classifier (:class:`~incseg_lib.models.probe.LinearProbe`) is
fitted on the features the model's main classifier reads, with the full labels of every class seen
so far on every training image (an oracle: the incremental learner never has these labels), and
evaluated like the model itself. It is recorded as ``<run>|probe`` (shown ``FT (probe)``) beside
the run's own records, and cached beside the step's checkpoint, keyed by that checkpoint's training
key and the probe's settings, so a re-run reuses it.

The probe's optimiser follows ``run_probing.py``: SGD with Nesterov momentum 0.9 (L397) and poly
decay (L403-405); its learning rate and epochs come from the command line there (no script ships),
so here they are step 0's (``cfg.lr``, ``cfg.epochs``). Difference, named: the official probe
trains through the augmented loader; here the frozen features of the unaugmented training images
are computed once and the linear classifier is fitted on them (the same linear problem without
augmentation, and minutes instead of a full training on a CPU).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import runs
from ..config import RunConfig, step0_name, task_methods
from ..data.transforms import eval_transforms
from ..engine import SizeGroupedBatchSampler, poly_lr
from ..env import show_progress
from ..log import get_logger
from ..losses import IGNORE_INDEX
from ..models.probe import LinearProbe
from ..results import Record
from ..store import key_digest, load_torch, save_torch
from ..tasks import IncrementalSplit, get_task, task_names
from . import keys
from .evaluation import evaluate_step
from .fusion import ewf_sweep
from .step import base_datasets, load_step_model, train_step
from .studies import for_each_task, run_incremental, study_plan

log = get_logger(__name__)


def probe_key(cfg: RunConfig, step: int, run: str) -> dict:
    """What determines the probe of ``run``'s step ``step``: the probed checkpoint's training key (as
    a digest) and the probe's own settings."""
    return {
        "model": key_digest(keys.training_key(cfg, step, run)),
        "labels": "every seen class, full masks, every training image",
        "epochs": cfg.epochs,
        "lr": cfg.lr,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": cfg.weight_decay,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
    }


def probe_file(cfg: RunConfig, step: int, run: str) -> Path:
    """Where the probe of ``run``'s step ``step`` is kept: beside the step's checkpoint."""
    digest = key_digest(probe_key(cfg, step, run))
    return keys.checkpoint_file(cfg, step, run).parent / "probe" / f"step-{step}-{digest}.pt"


def _features(probe: LinearProbe, data, batch_size: int, device, progress: bool) -> list:
    """``[(features (B, D, h, w), labels (B, H, W))]`` of every image of ``data``, on the CPU."""
    sizes = [data.image_size(i) for i in range(len(data))]
    out = []
    batches = list(SizeGroupedBatchSampler(sizes, batch_size))
    for batch in tqdm(batches, desc="probe features", leave=False, disable=not show_progress(progress)):
        items = [data[i] for i in batch]
        x = torch.stack([im for im, _ in items]).to(device)
        y = torch.stack([lab for _, lab in items]).long()
        out.append((probe.features(x).float().cpu(), y))
    return out


def fit_probe(probe: LinearProbe, features: list, *, epochs: int, lr: float, weight_decay: float, seed: int) -> list:
    """Fit ``probe.classifier`` on cached ``features`` (:func:`_features`) with softmax cross-entropy
    over the labelled pixels (255 ignored), logits upsampled bilinearly to the labels' size; SGD
    with Nesterov momentum 0.9 and poly decay (``run_probing.py`` L397, L403-405).

    Returns:
        the mean loss of each epoch.

    Raises:
        ValueError: no features, or ``epochs`` < 1.
    """
    if not features or epochs < 1:
        raise ValueError(f"a probe needs features and at least one epoch, got {len(features)} batches, {epochs} epochs")
    clf = probe.classifier.cpu().train()
    opt = torch.optim.SGD(clf.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    total, history = epochs * len(features), []
    for epoch in range(epochs):
        order = torch.randperm(len(features), generator=gen).tolist()
        losses = []
        for i, b in enumerate(order):
            for group in opt.param_groups:
                group["lr"] = poly_lr(lr, epoch * len(features) + i, total)
            f, y = features[b]
            logits = F.interpolate(clf(f), size=y.shape[1:], mode="bilinear", align_corners=False)
            loss = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history.append(sum(losses) / len(losses))
    return history


def probe_step(
    cfg: RunConfig,
    step: int,
    run: str,
    *,
    notebook: str = "",
    progress: bool = True,
    record: bool = True,
) -> dict:
    """Probe ``run``'s model after ``step`` (trained first if missing) and record the probe's
    evaluation as ``<run>|probe``; the probe is reused from its file when it exists.

    Args:
        run: a step method (``ft``, ``mib``, ``dft``, ``mib+ewf``): step 0 probes its step-0 model.

    Returns:
        the probe's results record (old / new / all over the classes seen at ``step``, as the
        model's own record).

    Raises:
        ValueError: an unknown method or step (as :func:`train_step`).
    """
    split = IncrementalSplit(cfg.dataset, cfg.task, step, cfg.setting)
    ckpt = keys.checkpoint_file(cfg, step, run)
    if not ckpt.is_file():
        train_step(cfg, step=step, method=run, notebook=notebook, progress=progress)
    model = load_step_model(cfg, step, run)
    device = cfg.torch_device()
    probe = LinearProbe(model.to(device), split.num_seen)
    path, key = probe_file(cfg, step, run), probe_key(cfg, step, run)
    train_base, val_base = base_datasets(cfg, split)
    history = None
    probed = runs.recorded_name(run) if step > 0 else step0_name(runs.parse_run_name(run)[0])
    log.info(
        f"[{cfg.dataset} {cfg.task} {cfg.setting} step {step} {runs.display_name(probed)} (probe)] a linear probe "
        f"on the frozen features, every seen class's labels, lr {cfg.lr}, {cfg.epochs} epochs"
    )
    if path.is_file():
        probe.classifier.load_state_dict(load_torch(path)["classifier"])
        log.info(f"  probe reused from {path.name}")
    else:
        torch.manual_seed(cfg.seed + step)
        probe.classifier.reset_parameters()
        data = split.eval_dataset(train_base, unseen="background", cache_dir=cfg.checkpoint_path / "splits")
        feats = _features(probe, data.with_transforms(eval_transforms()), cfg.batch_size, device, progress)
        losses = fit_probe(probe, feats, epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, seed=cfg.seed)
        history = {"loss": losses}
        save_torch(path, {"classifier": probe.classifier.state_dict(), "key": key}, what=f"probe {path.name}")
        log.info(f"  probe fitted on {sum(len(y) for _, y in feats)} images, last epoch's loss {losses[-1]:.3f}")
    probe.classifier.to(device)
    return evaluate_step(
        cfg,
        probe,
        split,
        val_base,
        method=runs.probe_name(probed),
        notebook=notebook,
        history=history,
        checkpoint=path,
        progress=progress,
        record=record,
        extra={"probe_of": str(ckpt)},
    )


# ---------------------------------------------------------------------- notebook 07's study
def probing_plan(cfg: RunConfig, tasks=None, settings=None, methods=None, probe=None, sweep=None) -> dict:
    """Notebook 07's plan (the profile's ``probing`` where an argument is empty): tasks x settings x
    methods trained (``task_methods`` per task as notebook 02's), ``probe``: the runs probed after
    every step, ``sweep``: the task whose last step EWF's weight slider re-fuses (``none``: no
    sweep).

    Raises:
        ValueError: an unknown task, setting or method, a probed run not trained on any task, or a
            sweep task of one step.
    """
    own = cfg.probing or {}
    plan = study_plan(
        cfg.replace(incremental={"methods": ["ft", "mib", "dft", "mib+ewf"], **own}), tasks, settings, methods
    )
    probed = list(probe or own.get("probe") or ["ft", "mib"])
    trained = {m for t in plan["tasks"] for m in task_methods(plan, t)}
    if set(probed) - trained:
        raise ValueError(f"probe {sorted(set(probed) - trained)}: not trained by the plan ({sorted(trained)})")
    sweep = own.get("sweep", "") if not sweep else "" if sweep == "none" else sweep
    if sweep and (sweep not in task_names(cfg.dataset) or len(get_task(cfg.dataset, sweep)) < 2):
        raise ValueError(f"sweep task {sweep!r}: choose an incremental task of {cfg.dataset}, or '' for none")
    return {**plan, "probe": probed, "sweep": sweep}


def run_probing_study(cfg: RunConfig, plan: dict, *, notebook: str = "", progress: bool = True) -> list[Record]:
    """Notebook 07: every method of ``plan`` (:func:`probing_plan`) through every step of its tasks
    (checkpoints shared with the other notebooks), the probes of ``plan["probe"]``'s runs after
    every step (step 0's once per task), and EWF's weight slider on ``plan["sweep"]``'s task.

    Returns:
        the records, in training order.
    """
    kw = dict(notebook=notebook, progress=progress)

    def body(tcfg: RunConfig, last: int) -> list[Record]:
        ms = task_methods(plan, tcfg.task)
        recs = run_incremental(tcfg, ms, joint=False, **kw)
        probed = [m for m in plan["probe"] if m in ms]
        if probed:
            recs.append(probe_step(tcfg, 0, probed[0], **kw))
        recs += [probe_step(tcfg, step, m, **kw) for m in probed for step in range(1, last + 1)]
        return recs

    records = for_each_task(cfg, plan, body)
    if plan.get("sweep"):
        records += ewf_sweep(cfg.replace(task=plan["sweep"], setting=plan["settings"][0]), "mib", **kw)
    return records
