"""EWF's stability-plasticity slider: the last step of an ``<method>+ewf`` run re-fused at other
weights ``w`` of the new model, each evaluated (Xiao et al., CVPR 2023; :mod:`incseg_lib.methods.ewf`).

EWF's fusion puts every fused tensor on the line from the step's start (the old model) to its end
point: ``fused = old + w0 (new - old)``, ``w0 = sqrt(N_new / (N_new + N_old))``. The same line at
another weight is ``old + (w / w0) (fused - old)``, so the sweep needs no training beyond the run's
own step: only evaluations. Tensors EWF does not fuse (the new heads, integer buffers) keep their
trained values at every ``w``. ``w = 0`` is the old model with the new heads added, ``w = 1`` the
step trained with its old heads frozen and no fusion.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch

from .. import runs
from ..config import RunConfig
from ..log import get_logger
from ..methods import method_spec
from ..methods.ewf import fusion_weight
from ..results import Record
from ..tasks import IncrementalSplit
from .evaluation import evaluate_step
from .step import base_datasets, load_step_model, train_step

log = get_logger(__name__)

#: The sweep's default weights of the new model, 0 to 1 by 0.1; EWF's own weight is added to them.
SWEEP = tuple(k / 10 for k in range(11))


@torch.no_grad()
def refuse(fused: torch.nn.Module, old: torch.nn.Module, w: float, w0: float) -> torch.nn.Module:
    """A copy of ``fused`` (fused at ``w0`` with ``old``) moved to weight ``w``: every floating
    tensor present in both becomes ``old + (w / w0) (fused - old)``; the others are kept.

    Raises:
        ValueError: ``w`` outside [0, 1] or ``w0`` not in (0, 1].
    """
    if not 0.0 <= w <= 1.0 or not 0.0 < w0 <= 1.0:
        raise ValueError(f"w must lie in [0, 1] and w0 in (0, 1], got w={w}, w0={w0}")
    out = copy.deepcopy(fused)
    state, old_state = out.state_dict(), old.state_dict()
    for name, t in old_state.items():
        if name in state and t.is_floating_point() and state[name].shape == t.shape:
            base = t.to(state[name])
            state[name].copy_(base + (w / w0) * (state[name] - base))
    return out


def ewf_sweep(
    cfg: RunConfig,
    method: str = "mib",
    weights: Iterable[float] = SWEEP,
    *,
    notebook: str = "",
    progress: bool = True,
    record: bool = True,
) -> list[Record]:
    """Evaluate ``<method>+ewf`` after the last step of ``cfg.task`` re-fused at each of ``weights``
    (and at EWF's own weight); one record per weight, recorded as ``<method>+ewf|w=0.25`` with the
    weight in ``ewf_w``. On a one-step task (15-5) this is the whole slider; on a longer one, the
    last fusion's (the earlier steps keep EWF's weight).

    Raises:
        ValueError: an unknown method, or a weight outside [0, 1].
    """
    run = f"{method}+ewf"
    method_spec(run)  # an unknown method is named here, before any training
    last = IncrementalSplit(cfg.dataset, cfg.task, 0, cfg.setting).num_steps - 1
    split = IncrementalSplit(cfg.dataset, cfg.task, last, cfg.setting)
    outcome = train_step(cfg, step=last, method=run, notebook=notebook, progress=progress)
    old = load_step_model(cfg, last - 1, run)
    w0 = fusion_weight(len(split.new_classes), sum(split.classes_per_step[:-1]))
    _, val_base = base_datasets(cfg, split)
    out = []
    for w in sorted({float(x) for x in weights} | {w0}):
        model = refuse(outcome.model, old, w, w0)
        mark = " (EWF's own)" if w == w0 else ""
        log.info(
            f"[{cfg.dataset} {cfg.task} {cfg.setting} step {last} {runs.display_name(run)} re-fused at w={w:.2f}{mark}]"
        )
        rec = evaluate_step(
            cfg,
            model,
            split,
            val_base,
            method=f"{runs.recorded_name(run)}|w={w:.2f}",
            notebook=notebook,
            progress=progress,
            record=record,
            extra={"ewf_w": w, "ewf_default": w == w0, "refused_from": str(outcome.checkpoint)},
        )
        out.append(rec)
    return out
