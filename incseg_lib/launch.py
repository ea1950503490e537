"""``incseg step``: train incremental steps from the command line, on one process or several (``torchrun``).

The same :class:`~incseg_lib.config.RunConfig` and checkpoint keys as the notebooks, so a notebook
(or the suite) reuses what a multi-GPU server trained::

    incseg step --profile paper --task 15-5 --setting overlapped --method mib          # every step
    torchrun --nproc_per_node=4 -m incseg_lib.cli step --profile paper --task 15-5 --step 1 --method mib

Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is NCCL on CUDA (one GPU per process, by
``LOCAL_RANK``) and gloo on CPU; :func:`~incseg_lib.engine.fit` then trains with
DistributedDataParallel on slices of the same global batches, only rank 0 writes checkpoints and
records, and evaluation is split across ranks (:func:`~incseg_lib.engine.evaluate`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .config import RunConfig
from .env import notebook_run_dir
from .experiment import train_step
from .log import get_logger
from .tasks import IncrementalSplit

log = get_logger(__name__)


def init_distributed() -> tuple[int, int, str]:
    """Join ``torchrun``'s process group if there is one; ``(rank, world size, device)``.

    Raises:
        RuntimeError: more processes than GPUs on a CUDA machine (names both counts).
    """
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, ""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        if local >= torch.cuda.device_count():
            raise RuntimeError(
                f"process {local} of {world} has no GPU: {torch.cuda.device_count()} visible; "
                "run as many processes per node as GPUs (--nproc_per_node)"
            )
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), f"cuda:{local}" if cuda else "cpu"


def writable_folder(path, option: str):
    """``path`` resolved, created if missing, and checked writable.

    Raises:
        ValueError: it is a file, cannot be created, or cannot be written (naming ``option`` and the folder).
    """
    from pathlib import Path

    folder = Path(path).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {folder} is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{option} {folder} cannot be created ({e.strerror}); choose a writable folder") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {folder} is not writable; choose a writable folder")
    return folder


def run_steps(
    profile: str,
    *,
    task: str,
    setting: str,
    method: str,
    step: int | None = None,
    options: dict[str, Any] | None = None,
    notebook: str = "incseg-step",
) -> list[dict]:
    """Train ``method``'s steps of ``task`` (all, or only ``step`` and what it needs) and record them.

    Args:
        options: further :class:`~incseg_lib.config.RunConfig` fields (``dataset``, ``data_root``,
            ``run_dir``, ``epochs``, ``sync_bn``, ...).
        step: one step (earlier missing steps are trained first); None = steps 0..T-1.

    Returns:
        The records of the steps trained or reused here (rank 0 writes them to ``run_dir``).

    Raises:
        ValueError: unknown profile, option, task, setting, method or step.
    """

    opts = dict(options or {})
    for name, flag in (
        ("profile", "--profile"),
        ("task", "--task"),
        ("setting", "--setting"),
        ("method", "--method"),
        ("step", "--step"),
    ):
        if name in opts:
            raise ValueError(f"-p {name} would conflict with the command's {flag}; use {flag} instead")
    if opts.get("run_dir"):
        opts["run_dir"] = str(writable_folder(opts["run_dir"], "--out"))
    rank, world, device = init_distributed()
    opts.setdefault("run_dir", notebook_run_dir("incseg-step"))
    if device and "device" not in opts:
        opts["device"] = device
    cfg = RunConfig.from_profile(profile, task=task, setting=setting, **opts)
    n = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).num_steps
    if step is not None and not 0 <= step < n:
        raise ValueError(f"--step {step}: task {task} has steps 0..{n - 1}")
    if rank != 0:  # one process speaks for the launch
        logging.getLogger("incseg_lib").setLevel(logging.WARNING)
    if world > 1:
        log.info(
            f"{world} processes ({'NCCL, one GPU each' if device.startswith('cuda') else 'gloo on CPU'}), "
            f"global batch {cfg.batch_size} ({cfg.batch_size // world} per process)"
        )
    if cfg.task != "offline":
        from .experiment import check_steps

        check_steps(cfg, [cfg.task], [cfg.setting])  # an empty later step is named before step 0 trains
    steps = [step] if step is not None else list(range(n))
    run_method = "offline" if cfg.task == "offline" else method
    records = [train_step(cfg, step=s, method=run_method, notebook=notebook, progress=rank == 0).record for s in steps]
    return records
