"""Training: SGD with the poly learning rate (:mod:`.optim`), AMP, progress bars, TensorBoard, checkpoints after
every epoch and exact resume.

Determinism: the data order and augmentation of epoch ``e`` depend only on ``(seed, e)``, so a
run stopped after any epoch and resumed from its checkpoint reaches the same weights as an
uninterrupted one (on CPU; cuDNN kernels may differ in the last bits on GPU).
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler
from tqdm.auto import tqdm

from ..env import show_progress
from ..log import get_logger
from ..losses import bisenet_loss
from ..store import CorruptCheckpoint, checkpoint_lock, quarantine
from .checkpoints import load_checkpoint, save_checkpoint
from .device import Accel, RankSlice, _barrier, accel, decisions, distributed
from .hooks import Penalty, Tracker
from .optim import make_optimizer, poly_lr
from .options import Hardware, Hooks, Saving, Schedule
from .tensorboard import tensorboard_writer

log = get_logger(__name__)


def _read_back(pending: list, epoch: int, iters_per_epoch: int, total_iters: int, lr: float, bar, writer) -> None:
    """One host sync for the losses of several iterations: the first non-finite one stops training
    (naming its epoch and iteration), the rest go to the progress bar and TensorBoard."""
    values = torch.stack([v for _, v in pending]).tolist()
    for (global_it, _), v in zip(pending, values):
        if not math.isfinite(v):
            raise FloatingPointError(
                f"loss became {v} at epoch {epoch + 1}, iteration "
                f"{global_it - epoch * iters_per_epoch}; lower the learning rate (now {lr})"
            )
        if writer is not None:
            writer.add_scalar("train/loss_iter", v, global_it)
            writer.add_scalar("train/lr", poly_lr(lr, global_it, total_iters), global_it)
    bar.set_postfix(loss=f"{values[-1]:.3f}", lr=f"{poly_lr(lr, pending[-1][0], total_iters):.2e}")


def _prepare(model, train_set, schedule, hardware, saving, hooks, log_dir, rank, world, batch_size):
    """The optimiser, scaler, resumed history and memory layout of a :func:`fit` call, as a
    :class:`_Training`; returns ``(run, history, start_epoch, resumed_from)``, ``run`` None when the
    checkpoint is already finished (``start_epoch >= epochs``). ``batch_size``: the global batch
    :func:`fit` draws (the schedule's, capped by the data and a multiple of ``world``)."""
    device = torch.device(hardware.device)
    requested_batch = schedule.batch_size
    model.to(device)
    opt = make_optimizer(model, schedule.lr, schedule.momentum, schedule.weight_decay, schedule.optimizer)
    # the grad scaler is needed before a resume restores it; the layout is decided once training is certain
    scaling = accel(device, hardware.amp, False, hardware.pin_memory).grad_scaler
    scaler = torch.amp.GradScaler(device.type, enabled=scaling)
    history, resumed_from = _resume(
        saving.checkpoint, model, saving.key, device, opt, scaler, hooks.tracker, schedule.epochs
    )
    start_epoch = resumed_from or 0
    if start_epoch >= schedule.epochs:
        return None, history, start_epoch, resumed_from
    acc = accel(
        device,
        hardware.amp,
        hardware.channels_last,
        hardware.pin_memory,
        shape=(max(requested_batch // world, 1), *tuple(train_set[0][0].shape)),
    )
    history["decisions"].append(decisions(acc, device))
    model.to(memory_format=torch.channels_last if acc.channels_last else torch.contiguous_format)
    sampler_fn = hooks.batch_sampler_fn
    iters_per_epoch = len(sampler_fn(torch.Generator())) if sampler_fn is not None else len(train_set) // batch_size
    model, train_model = _distributed_model(model, device, world, hardware.sync_bn)
    run = _Training(
        model=model,
        train_model=train_model,
        optimizer=opt,
        scaler=scaler,
        acc=acc,
        device=device,
        tracker=hooks.tracker,
        penalty=hooks.penalty,
        rank=rank,
        world=world,
        loss_fn=hooks.loss_fn or (lambda m, x, y, out: bisenet_loss(out, y, aux_weight=schedule.aux_weight)),
        lr=schedule.lr,
        epochs=schedule.epochs,
        iters_per_epoch=iters_per_epoch,
        total_iters=schedule.epochs * iters_per_epoch,
        writer=tensorboard_writer(log_dir) if rank == 0 else None,
        sync_every=hardware.sync_every,
        history=history,
    )
    return run, history, start_epoch, resumed_from


# The body calls named parts: _prepare (-> _resume), _epoch_loader, _train_epoch (-> _train_iteration),
# _log_epoch, _save_when_due.
def fit(
    model: nn.Module,
    train_set,
    schedule: Schedule,
    hardware: Hardware | None = None,
    saving: Saving | None = None,
    hooks: Hooks | None = None,
    *,
    log_dir: Path | None = None,
    progress: bool = True,
) -> dict:
    """Train ``model`` on ``train_set``; resume from ``saving.checkpoint`` when it holds the same key.

    Args:
        model: a :class:`~incseg_lib.models.BiSeNet` (or any module returning ``{"out", "aux"}``).
        train_set: dataset yielding ``(image (3,H,W) float, mask (H,W) int64)`` crops of equal size.
        schedule: the optimisation (:class:`Schedule`).
        hardware: device, precision, memory layout, workers (:class:`Hardware`; default: its defaults, CPU).
        saving: the checkpoint and its key (:class:`Saving`; default: nothing saved).
        hooks: the method's loss, tracker, penalty and batch composition (:class:`Hooks`; default:
            BiSeNet's cross-entropy, plain shuffling).
        log_dir: TensorBoard folder (scalars per iteration and per epoch); None = no logging.
        progress: a progress bar per epoch.

    Several processes: inside a ``torch.distributed`` process group (``incseg step`` under
    ``torchrun``) the model is wrapped in DistributedDataParallel; every rank draws the same global
    batches of ``batch_size`` (which the world size must divide) and trains on its slice
    (:class:`RankSlice`), so the batches are those of one process; only rank 0 takes the checkpoint
    lock and writes checkpoints, importance and TensorBoard logs; the reported loss and images/s
    are over all ranks; every rank returns when the last checkpoint is written.

    Returns:
        History dict: ``loss`` (mean per epoch), ``lr``, ``epoch_seconds``, ``train_seconds``,
        ``images_per_second``, ``epochs_done``, ``resumed_from`` (epoch or None), ``decisions``
        (:func:`decisions` of each training session: one, or more after a resume).

    Raises:
        ValueError: fewer than 2 training images (BatchNorm needs 2). CheckpointMismatch: see
            :func:`load_checkpoint`.
    """
    hardware, saving, hooks = hardware or Hardware(), saving or Saving(), hooks or Hooks()
    rank, world = distributed()
    if world > 1 and schedule.batch_size % world:
        raise ValueError(
            f"batch_size {schedule.batch_size} must be a multiple of the {world} processes (each trains on "
            f"batch_size / {world} images per iteration)"
        )
    checkpoint, epochs, seed = saving.checkpoint, schedule.epochs, schedule.seed
    lock = checkpoint_lock(checkpoint) if rank == 0 else nullcontext()
    with lock:  # one process trains a checkpoint; others wait, then reuse it (ranks > 0 follow rank 0)
        _barrier(world)  # ranks > 0 read the checkpoint only once rank 0 holds the lock
        if len(train_set) < 2:
            raise ValueError(f"the training set holds {len(train_set)} image(s); BatchNorm training needs at least 2")
        batch_size = min(schedule.batch_size, len(train_set))
        batch_size -= batch_size % world
        run, history, start_epoch, resumed_from = _prepare(
            model, train_set, schedule, hardware, saving, hooks, log_dir, rank, world, batch_size
        )
        if run is None:  # a finished checkpoint: nothing to train
            _barrier(world)
            return _finish_history(history, resumed_from)
        for epoch in range(start_epoch, epochs):
            torch.manual_seed(_epoch_seed(seed, epoch))
            loader = _epoch_loader(
                train_set, epoch, seed, hooks.batch_sampler_fn, batch_size, rank, world, hardware.num_workers, run.acc
            )
            sums, n_img, seconds, cur_lr = _train_epoch(run, loader, epoch, progress)
            del loader
            _collect_loader_garbage(hardware.num_workers)
            _log_epoch(run, epoch, sums, n_img, seconds, cur_lr)
            if hooks.finish is not None and epoch + 1 >= epochs:  # once, before the final checkpoint
                hooks.finish(run.model)
            if _save_when_due(run, epoch, checkpoint, saving.key, saving.every, saving.stop_after_epoch):
                break
        if run.writer is not None:
            run.writer.close()
        trained = sum(history["epoch_seconds"][start_epoch:])
        if trained and rank == 0:
            where = str(checkpoint) if checkpoint else None
            log_timing("train", trained, epochs=len(history["epoch_seconds"]) - start_epoch, checkpoint=where)
        _barrier(world)  # every rank returns once rank 0 has written the checkpoint
        return _finish_history(history, resumed_from)


@dataclass
class _Training:
    """What the parts of :func:`fit` share while it trains: the model (``train_model`` is its
    DistributedDataParallel wrapper under ``torchrun``), the optimiser and grad scaler, the device
    decisions, the poly schedule's size, and the history being written."""

    model: nn.Module
    train_model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    acc: Accel
    device: torch.device
    tracker: Tracker | None
    penalty: Penalty | None
    rank: int
    world: int
    loss_fn: Callable
    lr: float
    epochs: int
    iters_per_epoch: int
    total_iters: int
    writer: object
    sync_every: int
    history: dict
    params: list = field(default_factory=list)

    def __post_init__(self):
        self.params = [p for p in self.model.parameters() if p.requires_grad]


def _epoch_loader(
    train_set,
    epoch: int,
    seed: int,
    batch_sampler_fn,
    batch_size: int,
    rank: int,
    world: int,
    num_workers: int,
    acc: Accel,
) -> DataLoader:
    """Epoch ``epoch``'s batches, seeded by ``(seed, epoch)`` alone: those of DataLoader(shuffle=True,
    drop_last=True), made explicit so that several processes each take their slice of the same
    global batches (or ``batch_sampler_fn``'s, e.g. a replay sampler)."""
    g = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
    batches = (
        batch_sampler_fn(g)
        if batch_sampler_fn is not None
        else BatchSampler(RandomSampler(train_set, generator=g), batch_size, drop_last=True)
    )
    return DataLoader(
        train_set,
        batch_sampler=RankSlice(batches, rank, world) if world > 1 else batches,
        num_workers=num_workers,
        pin_memory=acc.pin_memory,
        persistent_workers=False,
    )


def _resume(checkpoint, model, key, device, optimizer, scaler, tracker, epochs: int) -> tuple[dict, int | None]:
    """``(history, epoch to resume after or None)``: ``checkpoint``'s weights, optimiser and scaler state
    when it holds this ``key`` (a corrupt file is moved aside and training starts over)."""
    history: dict = defaultdict(list)
    state = None
    if checkpoint is not None and Path(checkpoint).is_file():
        try:
            state = load_checkpoint(checkpoint, model, key=key, map_location=device)
        except CorruptCheckpoint as e:
            moved = quarantine(checkpoint)
            log.info(f"{e}\n  moved aside to {moved.name}; training this step from the start")
    if state is None:
        return history, None
    history.update({k: list(v) for k, v in state["history"].items()})
    start_epoch = state["epoch"]
    if start_epoch >= epochs:
        return history, start_epoch
    optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    log.info(f"resuming {Path(checkpoint).name} after epoch {start_epoch}/{epochs}")
    if tracker is not None and not tracker.resume(start_epoch):
        log.info(
            f"  no importance state saved after epoch {start_epoch}; EWC/PI/RW importance of this "
            "step covers the remaining epochs only"
        )
    return history, start_epoch


def _distributed_model(
    model: nn.Module, device: torch.device, world: int, sync_bn: bool
) -> tuple[nn.Module, nn.Module]:
    """``(model, the module to train)``: ``model`` itself twice, or under ``torchrun`` the model (its
    BatchNorm synchronised with ``sync_bn``) and its DistributedDataParallel wrapper."""
    if world <= 1:
        return model, model
    from torch.nn.parallel import DistributedDataParallel

    cuda = device.type == "cuda"
    if sync_bn:
        if not cuda:
            raise ValueError(
                "sync_bn (SyncBatchNorm) needs CUDA devices; on CPU processes pass "
                "-p sync_bn False (each process then normalises its share of the batch)"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else None
    return model, DistributedDataParallel(model, device_ids=ids)


def keep_frozen_statistics(model: nn.Module) -> None:
    """Put back in eval mode every BatchNorm layer whose affine parameters are all frozen (after
    ``model.train()``): a frozen layer must not move either, and in train mode BatchNorm would still
    normalise by the batch and update its running statistics. DFT*'s frozen backbone is such a
    layer (RevisitingCSS ``train.py`` L423-438: ``body.eval()``, ``head.eval()`` after
    ``model.train()``); a method that freezes nothing is unaffected."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()


def _train_epoch(run: _Training, loader, epoch: int, progress: bool) -> tuple[dict, int, float, float]:
    """One pass over ``loader``; ``(summed loss terms, images, seconds, last learning rate)``."""
    run.model.train()
    keep_frozen_statistics(run.model)
    if run.tracker is not None:
        run.tracker.start_epoch()
    t0, n_img, sums = time.perf_counter(), 0, {}
    pending: list[tuple[int, torch.Tensor]] = []  # (iteration, loss) not yet read back from the device
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{run.epochs}", leave=False, disable=not show_progress(progress))
    n_batches, cur_lr = len(loader), run.lr
    for it, (x, y) in enumerate(bar):
        global_it = epoch * run.iters_per_epoch + it
        cur_lr = poly_lr(run.lr, global_it, run.total_iters)
        for group in run.optimizer.param_groups:
            group["lr"] = cur_lr * group.get("lr_mult", 1.0)
        losses = _train_iteration(run, x, y)
        n_img += x.shape[0]
        for k, v in losses.items():  # summed on the device: no host sync per iteration
            v = v.detach().float()
            sums[k] = sums[k] + v if k in sums else v
        pending.append((global_it, losses["loss"].detach().float()))
        if len(pending) >= run.sync_every or it == n_batches - 1:
            _read_back(pending, epoch, run.iters_per_epoch, run.total_iters, run.lr, bar, run.writer)
            pending = []
    sums, n_img = _reduce_over_ranks(run, sums, n_img)
    if run.device.type == "cuda":
        torch.cuda.synchronize()
    return sums, n_img, time.perf_counter() - t0, cur_lr


def _train_iteration(run: _Training, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Forward, backward and optimiser step on one batch; the loss terms (on the device)."""
    x = x.to(run.device, non_blocking=True)
    y = y.to(run.device, non_blocking=True)
    if run.acc.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(
        run.device.type, dtype=run.acc.autocast_dtype or torch.bfloat16, enabled=run.acc.autocast_dtype is not None
    ):
        out = run.train_model(x)
        losses = run.loss_fn(run.model, x, y, out)
        if run.penalty is not None:
            losses["task"], losses["penalty"] = losses["loss"], run.penalty(run.model)
            losses["loss"] = losses["task"] + losses["penalty"]
    scaler, tracker = run.scaler, run.tracker
    run.optimizer.zero_grad(set_to_none=True)
    if tracker is not None and run.penalty is not None:
        # MiB's order: backward of the task loss, importance update, backward of the penalty
        scaler.scale(losses["task"]).backward()
        scaler.unscale_(run.optimizer)
        tracker.capture_gradients()
        if run.world > 1:  # a second backward would re-trigger DDP's reduction; the penalty is
            # the same on every rank, so its gradient is added locally
            grads = torch.autograd.grad(losses["penalty"], run.params, allow_unused=True)
            for p_, g_ in zip(run.params, grads):
                if g_ is not None:
                    p_.grad = g_ if p_.grad is None else p_.grad + g_
        else:
            losses["penalty"].backward()  # gradients are unscaled now; the penalty is float32
    else:
        scaler.scale(losses["loss"]).backward()
    scale = scaler.get_scale() if tracker is not None and scaler.is_enabled() else None
    scaler.step(run.optimizer)
    scaler.update()
    if tracker is not None:  # the scaler lowers its scale exactly when it skipped the step
        tracker.after_step(skipped=scale is not None and scaler.get_scale() < scale)
    return losses


def _reduce_over_ranks(run: _Training, sums: dict, n_img: int) -> tuple[dict, int]:
    """The epoch's summed losses as floats; under ``torchrun`` averaged over the ranks (one reduction),
    with the images of all ranks."""
    if run.world > 1:
        import torch.distributed as dist

        keys = sorted(sums)
        red = torch.stack([sums[k] for k in keys] + [torch.tensor(float(n_img), device=run.device)])
        dist.all_reduce(red)
        sums = dict(zip(keys, (red[:-1] / run.world).unbind()))
        n_img = int(red[-1])
    return {k: float(v) for k, v in sums.items()}, n_img


def _log_epoch(run: _Training, epoch: int, sums: dict, n_img: int, seconds: float, cur_lr: float) -> None:
    """The epoch's mean losses, learning rate and speed into the history, TensorBoard and one printed line."""
    history = run.history
    n_it = max(run.iters_per_epoch, 1)
    history["loss"].append(sums["loss"] / n_it)
    for k in sums:
        if k != "loss":
            history[f"loss_{k}"].append(sums[k] / n_it)
    history["lr"].append(cur_lr)
    history["epoch_seconds"].append(seconds)
    history["images"].append(n_img)
    if run.writer is not None:
        run.writer.add_scalar("train/loss_epoch", history["loss"][-1], epoch + 1)
        run.writer.flush()
    log.info(
        f"epoch {epoch + 1}/{run.epochs}  loss {history['loss'][-1]:.4f}  lr {cur_lr:.2e}  "
        f"{seconds:.1f}s  {n_img / max(seconds, 1e-9):.1f} img/s"
    )


def _save_when_due(
    run: _Training, epoch: int, checkpoint, key, checkpoint_every: int, stop_after_epoch: int | None
) -> bool:
    """The checkpoint policy: write the checkpoint (and the importance tracker) when due: every
    ``checkpoint_every`` epochs and after the last; True when training stops here (``stop_after_epoch``)."""
    epochs = run.epochs
    last = epoch + 1 >= epochs or (stop_after_epoch is not None and epoch + 1 >= stop_after_epoch)
    due = last or (checkpoint_every > 0 and (epoch + 1) % checkpoint_every == 0)
    if checkpoint is not None and due and run.rank == 0:
        done = epoch + 1 >= epochs  # a finished step never resumes: no optimizer state (half the file)
        save_checkpoint(
            checkpoint,
            {
                "model": run.model.state_dict(),
                "optimizer": None if done else run.optimizer.state_dict(),
                "scaler": None if done else run.scaler.state_dict(),
                "epoch": epoch + 1,
                "epochs": epochs,
                "history": dict(run.history),
                "key": key,
                "backbone": getattr(run.model, "backbone_name", None),
                "model_name": getattr(run.model, "model_name", None),
                "classes_per_step": list(getattr(run.model, "classes_per_step", [])),
            },
        )
    if run.tracker is not None and due and run.rank == 0:
        run.tracker.save(epoch + 1, final=epoch + 1 >= epochs)
    return stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < epochs


def log_timing(phase: str, seconds: float, **info) -> None:
    """Append ``{phase, seconds, time, pid, ...}`` as a JSON line to ``$INCSEG_TIMING_LOG`` if set
    (``benchmarks/suite_overhead.py`` splits a suite's wall time with it); otherwise nothing."""
    path = os.environ.get("INCSEG_TIMING_LOG")
    if not path:
        return
    line = json.dumps({"phase": phase, "seconds": round(seconds, 3), "time": time.time(), "pid": os.getpid(), **info})
    with open(path, "a") as f:  # one short line per write: appends from several processes do not interleave
        f.write(line + "\n")


def _collect_loader_garbage(num_workers: int) -> None:
    """Free a finished DataLoader iterator in this process before the next one forks workers.

    Otherwise cyclic garbage holding the old iterator can be inherited by the new (forked)
    workers and collected there, where its ``__del__`` fails with "can only test a child
    process" and floods the notebook's output.
    """
    if num_workers > 0:
        gc.collect()


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919) % (2**63)


def _finish_history(history: dict, resumed_from) -> dict:
    out = {k: list(v) for k, v in history.items()}
    out["epochs_done"] = len(out.get("loss", []))
    out["train_seconds"] = float(sum(out.get("epoch_seconds", [])))
    out["images_per_second"] = (sum(out.get("images", [])) / out["train_seconds"]) if out["train_seconds"] else None
    out["resumed_from"] = resumed_from
    return out
