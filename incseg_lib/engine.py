"""Training and evaluation loops: SGD + poly LR, AMP, progress bars, TensorBoard, atomic
checkpoints every epoch and exact resume.

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
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler
from tqdm.auto import tqdm

from .config import show_progress
from .store import CorruptCheckpoint, UnsafeCheckpoint, checkpoint_lock, load_torch, quarantine, save_torch  # noqa: F401

from .losses import bisenet_loss
from .metrics import ConfusionMatrix


class CheckpointMismatch(ValueError):
    """A checkpoint does not fit the model or the configuration asking for it."""


# ---------------------------------------------------------------------- optimisation
def _read_back(pending: list, epoch: int, iters_per_epoch: int, total_iters: int, lr: float, bar, writer) -> None:
    """One host sync for the losses of several iterations: the first non-finite one stops training
    (naming its epoch and iteration), the rest go to the progress bar and TensorBoard."""
    values = torch.stack([v for _, v in pending]).tolist()
    for (global_it, _), v in zip(pending, values):
        if not math.isfinite(v):
            raise FloatingPointError(f"loss became {v} at epoch {epoch + 1}, iteration "
                                     f"{global_it - epoch * iters_per_epoch}; lower the learning rate (now {lr})")
        if writer is not None:
            writer.add_scalar("train/loss_iter", v, global_it)
            writer.add_scalar("train/lr", poly_lr(lr, global_it, total_iters), global_it)
    bar.set_postfix(loss=f"{values[-1]:.3f}", lr=f"{poly_lr(lr, pending[-1][0], total_iters):.2e}")


def poly_lr(base_lr: float, iteration: int, total: int, power: float = 0.9) -> float:
    """Poly schedule ``base_lr * (1 - iteration/total) ** power`` (DeepLab, used by BiSeNet and MiB)."""
    return base_lr * (1 - min(iteration, total) / max(total, 1)) ** power


AMP_MODES = (True, False, "auto", "fp16", "bf16")


@dataclass(frozen=True)
class Accel:
    """The device-dependent choices of :func:`fit` and :func:`evaluate`, made in one place so that every
    branch a GPU takes also runs on a CPU when asked (tests exercise them there).

    Attributes:
        autocast_dtype: ``torch.float16``/``torch.bfloat16`` for mixed precision, None for float32.
        grad_scaler: scale the loss (float16 only; bfloat16 has float32's exponent range).
        channels_last: model weights and inputs in NHWC memory format (faster convolutions on
            tensor cores).
        pin_memory: page-locked host batches, so ``.to(device, non_blocking=True)`` overlaps the copy.
    """

    autocast_dtype: torch.dtype | None
    grad_scaler: bool
    channels_last: bool
    pin_memory: bool


def accel(device, amp: bool | str = "auto", channels_last: bool | None = None,
          pin_memory: bool | None = None, shape: tuple | None = None) -> Accel:
    """How to drive ``device``: a pure function of the device type, the options and the input shape.

    Args:
        amp: ``True``/``"auto"``: float16 autocast with a grad scaler on CUDA (the ``colab``/``paper``
            profiles' GPU path), float32 elsewhere; ``"fp16"``/``"bf16"``: that autocast on any device
            (``"fp16"`` with the grad scaler), e.g. CPU bfloat16 autocast; ``False``: float32.
        channels_last: None = :func:`channels_last_rule` for ``shape``; True/False force it.
        pin_memory: None = on CUDA only; True/False force it.
        shape: the input batch shape ``(B, 3, H, W)`` (for the layout rule).

    Raises:
        ValueError: an unknown ``amp``.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp={amp!r}; choose one of {AMP_MODES}")
    cuda = torch.device(device).type == "cuda"
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp) if isinstance(amp, str) else None
    if amp is True or amp == "auto":
        dtype = torch.float16 if cuda else None
    return Accel(autocast_dtype=dtype, grad_scaler=dtype == torch.float16,
                 channels_last=channels_last_rule(device, shape) if channels_last is None else bool(channels_last),
                 pin_memory=cuda if pin_memory is None else bool(pin_memory))


# The shorter input side from which NHWC trains and evaluates a BiSeNet faster than NCHW on a CPU
# (benchmarks/train_throughput.py --compare-channels-last, ResNet-18, batch 8, one thread, torch
# 2.14.1 on the project's 2-core x86_64 reference machine: NHWC/NCHW speed 0.87 train at 64 px, 0.94
# at 96, 1.02 at 128, 1.07 at 160, 1.06 at 192; evaluation 1.23 at 160, 1.32 at 192, mixed below).
CPU_CHANNELS_LAST_MIN_SIDE = 160


def channels_last_rule(device, shape: tuple | None = None) -> bool:
    """Whether to run NHWC (``channels_last``) on ``device`` for inputs of ``shape`` ``(B, C, H, W)``.

    A fixed rule, never a timing: the memory layout changes the order of floating-point sums, so a
    layout chosen by measuring the machine at that moment would make the numbers depend on its load.
    CUDA: always (tensor cores want NHWC). CPU: when the shorter side of ``shape`` is at least
    :data:`CPU_CHANNELS_LAST_MIN_SIDE` pixels (measured once, see there); without a shape, NCHW.
    ``$INCSEG_CHANNELS_LAST`` = ``1``/``0`` decides instead, on every device. The decision a run
    took is recorded with its results (``decisions``).
    """
    env = os.environ.get("INCSEG_CHANNELS_LAST", "").strip()
    if env in ("0", "1"):
        return env == "1"
    dev = torch.device(device)
    if dev.type == "cuda":
        return True
    if dev.type != "cpu" or shape is None:
        return False
    return min(int(shape[-2]), int(shape[-1])) >= CPU_CHANNELS_LAST_MIN_SIDE


def decisions(acc: Accel, device) -> dict:
    """What a computation decided and on how many threads, for its record: ``{"device", "threads",
    "channels_last", "autocast"}`` (``autocast``: ``"float16"``, ``"bfloat16"`` or ``"float32"``)."""
    return {"device": str(torch.device(device)), "threads": torch.get_num_threads(),
            "channels_last": acc.channels_last,
            "autocast": str(acc.autocast_dtype).replace("torch.", "") if acc.autocast_dtype else "float32"}


def distributed() -> tuple[int, int]:
    """``(rank, world size)`` of the ``torch.distributed`` process group, ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True in the process that writes checkpoints, records and logs (rank 0, or the only one)."""
    return distributed()[0] == 0


class _NonEmpty(Sampler):
    """The batches of ``batches`` that are not empty (a rank's slice of a small last batch may be)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return (b for b in self.batches if len(b))

    def __len__(self):
        return sum(1 for _ in self)


class RankSlice(Sampler):
    """One rank's share of every global batch of ``batches``: ``batch[rank::world]``.

    Every rank draws the same global batches (same seed), so a run on N processes sees exactly the
    batches of a one-process run with the same global batch size, split N ways; this works for any
    batch sampler (plain shuffling, :class:`~incseg_lib.exemplars.ReplayBatchSampler`).
    """

    def __init__(self, batches, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self):
        for batch in self.batches:
            yield list(batch)[self.rank::self.world]

    def __len__(self):
        return len(self.batches)


OPTIMIZERS = ("sgd", "sgd-mib")


def make_optimizer(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4,
                   kind: str = "sgd"):
    """The training optimiser.

    ``sgd``: SGD with momentum; no weight decay on BatchNorm parameters and biases (the usual
    practice for BiSeNet-style training). A model with a ``parameter_groups(weight_decay)`` method
    (:class:`~incseg_lib.seam.SeamNet`) gets its own groups, each with an ``lr_mult`` that
    :func:`fit` applies to the poly learning rate. ``sgd-mib``: MiB's (fcdl94/MiB ``run.py``): SGD with
    Nesterov momentum and weight decay on every parameter.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind in OPTIMIZERS and hasattr(model, "parameter_groups"):  # e.g. SEAM's per-group multipliers
        return torch.optim.SGD(model.parameter_groups(weight_decay), lr=lr, momentum=momentum)
    params = [p for p in model.parameters() if p.requires_grad]
    if kind == "sgd-mib":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    if kind != "sgd":
        raise ValueError(f"optimizer {kind!r}; choose one of {OPTIMIZERS}")
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}], lr=lr, momentum=momentum)


# ---------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (:func:`~incseg_lib.store.save_torch`: a full disk raises
    :class:`~incseg_lib.store.DiskFull` naming the folder, and leaves no partial file)."""
    save_torch(path, state)


def load_checkpoint(path: Path, model: nn.Module | None = None, *, key: dict | None = None,
                    map_location="cpu") -> dict:
    """Read a checkpoint, check it against ``model`` and ``key``, load the weights into ``model``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptCheckpoint: the file is not a readable checkpoint (truncated, empty, not a torch file).
        CheckpointMismatch: the backbone or class count differs from ``model``, or the training
            key differs from ``key`` (the message names the differing fields).
    """
    path = Path(path)
    state = load_torch(path, map_location)
    if not isinstance(state, dict) or "model" not in state:
        raise CorruptCheckpoint(f"checkpoint {path} is not an incseg checkpoint (no 'model' entry)", path)
    if model is not None:
        want = (getattr(model, "backbone_name", None), list(getattr(model, "classes_per_step", [])))
        have = (state.get("backbone"), list(state.get("classes_per_step", [])))
        if want != have:
            raise CheckpointMismatch(
                f"checkpoint {path} holds a {have[0]} BiSeNet with classes per step {have[1]} "
                f"({sum(have[1])} classes), but the model is {want[0]} with {want[1]} ({sum(want[1])} classes); "
                "use the matching backbone/task, or delete the checkpoint to retrain")
    if key is not None and state.get("key") is not None and state["key"] != key:
        diff = sorted(k for k in set(key) | set(state["key"]) if key.get(k) != state["key"].get(k))
        raise CheckpointMismatch(f"checkpoint {path} was trained with a different configuration "
                                 f"(differs in {diff}); delete it or change checkpoint_dir")
    if model is not None:
        model.load_state_dict(state["model"])
    return state


# ---------------------------------------------------------------------- training
def fit(
    model: nn.Module,
    train_set,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    aux_weight: float = 1.0,
    device: torch.device | str = "cpu",
    amp: bool | str = True,
    num_workers: int = 0,
    seed: int = 0,
    checkpoint: Path | None = None,
    key: dict | None = None,
    loss_fn: Callable | None = None,
    log_dir: Path | None = None,
    progress: bool = True,
    print_fn: Callable = print,
    stop_after_epoch: int | None = None,
    tracker=None,
    batch_sampler_fn: Callable | None = None,
    checkpoint_every: int = 1,
    optimizer: str = "sgd",
    channels_last: bool | None = None,
    pin_memory: bool | None = None,
    sync_every: int = 20,
    sync_bn: bool = False,
) -> dict:
    """Train ``model`` on ``train_set``; resume from ``checkpoint`` when it holds the same ``key``.

    Args:
        model: a :class:`~incseg_lib.models.BiSeNet` (or any module returning ``{"out", "aux"}``).
        train_set: dataset yielding ``(image (3,H,W) float, mask (H,W) int64)`` crops of equal size.
        epochs, batch_size, lr, momentum, weight_decay: SGD with poly LR (power 0.9), per iteration.
        optimizer: ``sgd`` or ``sgd-mib`` (see :func:`make_optimizer`).
        aux_weight: weight of each auxiliary loss.
        device: where to train.
        amp, channels_last, pin_memory: see :func:`accel` (default: float16 AMP and pinned batches on
            CUDA only, channels_last by :func:`channels_last_rule`; each can be forced on a CPU).
        sync_every: iterations between reads of the loss back to the host (progress bar, TensorBoard,
            the non-finite-loss check): loss terms are summed on the device, so a GPU is not stalled
            by a sync every iteration. A NaN/inf loss still stops training with the iteration it
            appeared at, at most ``sync_every`` iterations later.
        sync_bn: with several processes (``torchrun``), SyncBatchNorm (CUDA only) instead of
            per-process batch statistics.

    Several processes: inside a ``torch.distributed`` process group (``incseg step`` under
    ``torchrun``) the model is wrapped in DistributedDataParallel; every rank draws the same global
    batches of ``batch_size`` (which the world size must divide) and trains on its slice
    (:class:`RankSlice`), so the batches are those of one process; only rank 0 takes the checkpoint
    lock and writes checkpoints, importance and TensorBoard logs; the reported loss and images/s
    are over all ranks; every rank returns when the last checkpoint is written.
        checkpoint: file written atomically after every epoch; if it exists with the same ``key``
            training resumes after its last epoch (a finished run returns at once); training holds
            :func:`checkpoint_lock` on it, so a second process waits and then reuses it. The last
            epoch's file keeps the weights only (no optimizer state: about half the size).
        key: what determines the weights (see ``RunConfig.training_key``).
        loss_fn: ``(model, images, targets, outputs) -> dict`` with a ``loss`` entry; default
            :func:`~incseg_lib.losses.bisenet_loss` with cross-entropy.
        log_dir: TensorBoard folder (scalars per iteration and per epoch); None = no logging.
        stop_after_epoch: stop (as if killed) after this epoch; for tests and demonstrations.
        checkpoint_every: write the checkpoint (and the tracker state) every this many epochs;
            the last epoch is always written; 0 = only the last (short runs, where a BiSeNet-R18
            checkpoint of ~100 MB per epoch costs more than the epoch).
        tracker: an :class:`~incseg_lib.regularizers.ImportanceTracker` updated after every
            optimiser step and saved after every epoch (resumed with the checkpoint). When the loss
            dict holds a ``penalty`` (EWC/PI/RW at steps >= 1), the tracker sees the gradient of
            ``task`` (the loss without the penalty), as MiB's ``train.py`` updates its regularizer
            between the task loss's backward and the penalty's.
        batch_sampler_fn: ``generator -> batch sampler`` that composes the batches instead of
            plain shuffling (e.g. :class:`~incseg_lib.exemplars.ReplayBatchSampler`); the
            generator is seeded per epoch like the default shuffle.

    Returns:
        History dict: ``loss`` (mean per epoch), ``lr``, ``epoch_seconds``, ``train_seconds``,
        ``images_per_second``, ``epochs_done``, ``resumed_from`` (epoch or None), ``decisions``
        (:func:`decisions` of each training session: one, or more after a resume).

    Raises:
        ValueError: fewer than 2 training images (BatchNorm needs 2). CheckpointMismatch: see
            :func:`load_checkpoint`.
    """
    rank, world = distributed()
    if world > 1 and batch_size % world:
        raise ValueError(f"batch_size {batch_size} must be a multiple of the {world} processes (each trains on "
                         f"batch_size / {world} images per iteration)")
    lock = checkpoint_lock(checkpoint, print_fn) if rank == 0 else nullcontext()
    with lock:  # one process trains a checkpoint; others wait, then reuse it (ranks > 0 follow rank 0)
        _barrier(world)  # ranks > 0 read the checkpoint only once rank 0 holds the lock
        device = torch.device(device)
        cuda = device.type == "cuda"
        if len(train_set) < 2:
            raise ValueError(f"the training set holds {len(train_set)} image(s); BatchNorm training needs at least 2")
        requested_batch = batch_size
        batch_size = min(batch_size, len(train_set))
        batch_size -= batch_size % world
        model.to(device)
        optimizer = make_optimizer(model, lr, momentum, weight_decay, optimizer)
        acc = accel(device, amp, False, pin_memory)  # formats are decided below, once training is certain
        scaler = torch.amp.GradScaler(device.type, enabled=acc.grad_scaler)
        history: dict = defaultdict(list)
        start_epoch, resumed_from = 0, None
        state = None
        if checkpoint is not None and Path(checkpoint).is_file():
            try:
                state = load_checkpoint(checkpoint, model, key=key, map_location=device)
            except CorruptCheckpoint as e:
                moved = quarantine(checkpoint)
                print_fn(f"{e}\n  moved aside to {moved.name}; training this step from the start")
        if state is not None:
            history.update({k: list(v) for k, v in state["history"].items()})
            start_epoch = resumed_from = state["epoch"]
            if start_epoch >= epochs:
                _barrier(world)
                return _finish_history(history, resumed_from)
            optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            print_fn(f"resuming {Path(checkpoint).name} after epoch {start_epoch}/{epochs}")
            if tracker is not None and not tracker.resume(start_epoch):
                print_fn(f"  no importance state saved after epoch {start_epoch}; EWC/PI/RW importance of this "
                         "step covers the remaining epochs only")
        acc = accel(device, amp, channels_last, pin_memory,
                    shape=(max(requested_batch // world, 1), *tuple(train_set[0][0].shape)))
        history["decisions"].append(decisions(acc, device))
        model.to(memory_format=torch.channels_last if acc.channels_last else torch.contiguous_format)

        loss_fn = loss_fn or (lambda m, x, y, out: bisenet_loss(out, y, aux_weight=aux_weight))
        iters_per_epoch = (len(batch_sampler_fn(torch.Generator())) if batch_sampler_fn is not None
                           else len(train_set) // batch_size)
        total_iters = epochs * iters_per_epoch
        writer = _writer(log_dir) if rank == 0 else None
        train_model = model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            if sync_bn:
                if not cuda:
                    raise ValueError("sync_bn (SyncBatchNorm) needs CUDA devices; on CPU processes pass "
                                     "-p sync_bn False (each process then normalises its share of the batch)")
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            ids = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else None
            train_model = DistributedDataParallel(model, device_ids=ids)
        params = [p for p in model.parameters() if p.requires_grad]
        for epoch in range(start_epoch, epochs):
            torch.manual_seed(_epoch_seed(seed, epoch))
            g = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
            # the batches of DataLoader(shuffle=True, drop_last=True, generator=g), made explicit so
            # that several processes can each take their slice of the same global batches
            batches = (batch_sampler_fn(g) if batch_sampler_fn is not None
                       else BatchSampler(RandomSampler(train_set, generator=g), batch_size, drop_last=True))
            loader = DataLoader(train_set, batch_sampler=RankSlice(batches, rank, world) if world > 1 else batches,
                                num_workers=num_workers, pin_memory=acc.pin_memory, persistent_workers=False)
            model.train()
            if tracker is not None:
                tracker.start_epoch()
            t0, n_img, sums = time.perf_counter(), 0, {}
            pending: list[tuple[int, torch.Tensor]] = []  # (iteration, loss) not yet read back from the device
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not show_progress(progress))
            n_batches = len(loader)
            for it, (x, y) in enumerate(bar):
                global_it = epoch * iters_per_epoch + it
                cur_lr = poly_lr(lr, global_it, total_iters)
                for group in optimizer.param_groups:
                    group["lr"] = cur_lr * group.get("lr_mult", 1.0)
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                if acc.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=acc.autocast_dtype or torch.bfloat16,
                                    enabled=acc.autocast_dtype is not None):
                    out = train_model(x)
                    losses = loss_fn(model, x, y, out)
                loss = losses["loss"]
                optimizer.zero_grad(set_to_none=True)
                if tracker is not None and "penalty" in losses:
                    # MiB's order: backward of the task loss, importance update, backward of the penalty
                    scaler.scale(losses["task"]).backward()
                    scaler.unscale_(optimizer)
                    tracker.capture_gradients()
                    if world > 1:  # a second backward would re-trigger DDP's reduction; the penalty is
                        # the same on every rank, so its gradient is added locally
                        grads = torch.autograd.grad(losses["penalty"], params, allow_unused=True)
                        for p_, g_ in zip(params, grads):
                            if g_ is not None:
                                p_.grad = g_ if p_.grad is None else p_.grad + g_
                    else:
                        losses["penalty"].backward()  # gradients are unscaled now; the penalty is float32
                else:
                    scaler.scale(loss).backward()
                scale = scaler.get_scale() if tracker is not None and scaler.is_enabled() else None
                scaler.step(optimizer)
                scaler.update()
                if tracker is not None:  # the scaler lowers its scale exactly when it skipped the step
                    tracker.after_step(skipped=scale is not None and scaler.get_scale() < scale)
                n_img += x.shape[0]
                for k, v in losses.items():  # summed on the device: no host sync per iteration
                    v = v.detach().float()
                    sums[k] = sums[k] + v if k in sums else v
                pending.append((global_it, loss.detach().float()))
                if len(pending) >= sync_every or it == n_batches - 1:
                    _read_back(pending, epoch, iters_per_epoch, total_iters, lr, bar, writer)
                    pending = []
            if world > 1:  # one reduction per epoch: the loss over all ranks, the images of all ranks
                import torch.distributed as dist

                keys = sorted(sums)
                red = torch.stack([sums[k] for k in keys] + [torch.tensor(float(n_img), device=device)])
                dist.all_reduce(red)
                sums = dict(zip(keys, (red[:-1] / world).unbind()))
                n_img = int(red[-1])
            sums = {k: float(v) for k, v in sums.items()}
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            del bar, loader
            _collect_loader_garbage(num_workers)
            n_it = max(iters_per_epoch, 1)
            history["loss"].append(sums["loss"] / n_it)
            for k in sums:
                if k != "loss":
                    history[f"loss_{k}"].append(sums[k] / n_it)
            history["lr"].append(cur_lr)
            history["epoch_seconds"].append(seconds)
            history["images"].append(n_img)
            if writer is not None:
                writer.add_scalar("train/loss_epoch", history["loss"][-1], epoch + 1)
                writer.flush()
            print_fn(f"epoch {epoch + 1}/{epochs}  loss {history['loss'][-1]:.4f}  lr {cur_lr:.2e}  "
                     f"{seconds:.1f}s  {n_img / max(seconds, 1e-9):.1f} img/s")
            last = epoch + 1 >= epochs or (stop_after_epoch is not None and epoch + 1 >= stop_after_epoch)
            due = last or (checkpoint_every > 0 and (epoch + 1) % checkpoint_every == 0)
            if checkpoint is not None and due and rank == 0:
                done = epoch + 1 >= epochs  # a finished step never resumes: no optimizer state (half the file)
                save_checkpoint(checkpoint, {
                    "model": model.state_dict(), "optimizer": None if done else optimizer.state_dict(),
                    "scaler": None if done else scaler.state_dict(), "epoch": epoch + 1, "epochs": epochs,
                    "history": dict(history), "key": key,
                    "backbone": getattr(model, "backbone_name", None),
                    "classes_per_step": list(getattr(model, "classes_per_step", [])),
                })
            if tracker is not None and due and rank == 0:
                tracker.save(epoch + 1, final=epoch + 1 >= epochs)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < epochs:
                break
        if writer is not None:
            writer.close()
        trained = sum(history["epoch_seconds"][start_epoch:])
        if trained and rank == 0:
            log_timing("train", trained, epochs=len(history["epoch_seconds"]) - start_epoch,
                       checkpoint=str(checkpoint) if checkpoint else None)
        _barrier(world)  # every rank returns once rank 0 has written the checkpoint
        return _finish_history(history, resumed_from)


def log_timing(phase: str, seconds: float, **info) -> None:
    """Append ``{phase, seconds, time, pid, ...}`` as a JSON line to ``$INCSEG_TIMING_LOG`` if set
    (``benchmarks/suite_overhead.py`` splits a suite's wall time with it); otherwise nothing."""
    path = os.environ.get("INCSEG_TIMING_LOG")
    if not path:
        return
    line = json.dumps({"phase": phase, "seconds": round(seconds, 3), "time": time.time(), "pid": os.getpid(), **info})
    with open(path, "a") as f:  # one short line per write: appends from several processes do not interleave
        f.write(line + "\n")


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


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


def _writer(log_dir):
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(log_dir))


# ---------------------------------------------------------------------- evaluation
class SizeGroupedBatchSampler(Sampler):
    """Batches of indices whose images share one size, so full images batch without padding.

    Args:
        sizes: ``(H, W)`` per index. The order is deterministic (by size, then index).
    """

    def __init__(self, sizes: list[tuple[int, int]], batch_size: int):
        groups: dict = defaultdict(list)
        for i, s in enumerate(sizes):
            groups[tuple(s)].append(i)
        self.batches = [idx[j:j + batch_size] for s in sorted(groups) for idx in [groups[s]]
                        for j in range(0, len(idx), batch_size)]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


@torch.no_grad()
def evaluate(model: nn.Module, dataset, num_classes: int, *, device="cpu", batch_size: int = 8,
             num_workers: int = 0, amp: bool | str = True, progress: bool = True, desc: str = "eval",
             channels_last: bool | None = None, pin_memory: bool | None = None) -> dict:
    """Evaluate on full images (no resizing, no padding); return the confusion matrix and timing.

    Args:
        dataset: yields ``(image (3,H,W) float, mask (H,W) int64)`` with labels in ``0..C-1``/255.
        num_classes: C, the model's output classes.
        amp, channels_last, pin_memory: see :func:`accel`.

    Returns:
        ``{"confusion": ConfusionMatrix, "seconds": float, "images_per_second": float, "images": int}``;
        in a process group every rank evaluates its slice of each batch and gets the summed matrix.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    shape = None
    if len(dataset):  # the layout of the first image's size: one rule for the whole evaluation
        h, w = dataset.image_size(0) if hasattr(dataset, "image_size") else tuple(dataset[0][0].shape[-2:])
        shape = (batch_size, 3, h, w)
    acc = accel(device, amp, channels_last, pin_memory, shape=shape)
    model.to(device).eval()
    model.to(memory_format=torch.channels_last if acc.channels_last else torch.contiguous_format)
    sizes = [dataset.image_size(i) for i in range(len(dataset))] if hasattr(dataset, "image_size") \
        else [(0, 0)] * len(dataset)
    rank, world = distributed()
    batches = SizeGroupedBatchSampler(sizes, batch_size)
    if world > 1:  # each rank evaluates its slice of every batch; the confusion matrices are summed
        batches = _NonEmpty(RankSlice(batches, rank, world))
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, pin_memory=acc.pin_memory)
    cm = ConfusionMatrix(num_classes)
    t0, n = time.perf_counter(), 0
    for x, y in tqdm(loader, desc=desc, leave=False, disable=not show_progress(progress)):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if acc.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=acc.autocast_dtype or torch.bfloat16,
                            enabled=acc.autocast_dtype is not None):
            logits = model(x)["out"]
        if logits.shape[-2:] != y.shape[-2:]:
            logits = torch.nn.functional.interpolate(logits.float(), size=y.shape[-2:], mode="bilinear",
                                                     align_corners=False)
        cm.update(logits.argmax(1), y)
        n += x.shape[0]
    del loader
    _collect_loader_garbage(num_workers)
    if world > 1:
        import torch.distributed as dist

        red = torch.cat([cm.mat.flatten(), torch.tensor([n])]).to(device)
        dist.all_reduce(red)
        red = red.cpu()
        cm.mat.copy_(red[:-1].reshape(cm.mat.shape))
        n = int(red[-1])
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if is_main():
        log_timing("eval", seconds, images=n)
    return {"confusion": cm, "seconds": seconds, "images": n, "decisions": decisions(acc, device),
            "images_per_second": n / seconds if seconds > 0 else math.nan}


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, device="cpu") -> torch.Tensor:
    """Class-id predictions ``(B, H, W)`` int64 for normalised images ``(B, 3, H, W)``."""
    model.to(device).eval()
    return model(images.to(device))["out"].argmax(1).cpu()
