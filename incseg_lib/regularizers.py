"""Parameter-importance regularizers EWC, PI and RW, with importance tracked online as in MiB.

All three penalise moving the parameters that mattered for the old classes:
``penalty = lambda * sum_k Omega_k (theta_k - theta*_k)^2`` over the parameters the old model
has (new classifier heads are free), with ``theta*`` the step t-1 weights and ``Omega`` a
per-parameter importance, min-max normalised per tensor as MiB's code does.

Importance is estimated *online*, while a step trains, by :class:`ImportanceTracker` (called by
:func:`incseg_lib.engine.fit` after every optimiser step), following fcdl94/MiB
``utils/regularizer.py``:

* **EWC** (Kirkpatrick et al., PNAS 2017; online form of Chaudhry et al., ECCV 2018, Eq. 6): an
  exponential moving average of the empirical Fisher, ``F <- alpha g^2 + (1 - alpha) F``,
  ``alpha = 0.9``. ``Omega = F``.
* **PI**, path integral / synaptic intelligence (Zenke et al., ICML 2017, Eq. 3-5): the
  contribution of each parameter to the decrease of the loss along the training trajectory,
  ``omega += -g * delta_theta`` per update, then ``Omega = relu(omega / (Delta^2 + xi))`` with
  ``Delta`` the parameter's total change over the step; summed over steps. Two estimators are
  tracked: MiB's code (default, ``pi_estimator="mib"``) pairs each gradient with the *previous*
  update and damps with ``xi = 1e-20``; Zenke et al. pair it with its own update, ``xi = 1e-3``.
* **RW**, Riemannian walk (Chaudhry et al., ECCV 2018, Eq. 7-9): the same path score measured
  in the Fisher metric, ``s += -g * Delta_k / (0.5 F Delta_k^2 + eps)`` every ``k = 10``
  iterations of the step (``Delta_k`` = change over those iterations; the window runs across
  epochs), ``Omega = norm(F) + norm(relu(s))``; averaged with the previous steps' score.

The gradient ``g`` is the task loss's alone: at steps >= 1 of EWC/PI/RW the penalty's gradient
is added after the importance update, as in MiB's ``train.py``.

Every step-0 run of an incremental task tracks all three (a few element-wise operations per
update), so step 0 stays shared by every method and EWC, PI and RW can start from it; steps
>= 1 of EWC/PI/RW keep tracking for the step after. The importance is written beside the
checkpoint (``step-k.importance.pt``), atomically after every epoch, so resume stays exact.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .log import get_logger
from .store import CorruptCheckpoint, load_torch, quarantine, save_torch

log = get_logger(__name__)

EPS = 1e-8
PI_DAMPING = 1e-3  # xi of Zenke et al. 2017
PI_DAMPING_MIB = 1e-20  # fcdl94/MiB utils/regularizer.py, PI.get
REGULARIZERS = ("ewc", "pi", "rw")


def importance_file(checkpoint: Path) -> Path:
    """The importance file that sits beside ``checkpoint`` (``step-k.pt`` -> ``step-k.importance.pt``)."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".importance.pt")


def minmax(t: torch.Tensor) -> torch.Tensor:
    """Min-max normalisation of one tensor to ``[0, 1]`` (MiB's ``normalize_fn``)."""
    return (t - t.min()) / (t.max() - t.min() + EPS)


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


class ImportanceTracker:
    """Online EWC / PI / RW importance of one training step, updated as MiB's regularizers are.

    Args:
        model: the model being trained (its parameters are read after each optimiser step).
        path: where :meth:`save` writes (``importance_file(checkpoint)``).
        previous: the importance of the previous step (:meth:`importance` of its tracker), or None
            at step 0. Its Fisher seeds the moving average; PI scores add up; RW scores average.
        alpha: Fisher moving-average factor (0.9 in MiB). rw_every: RW score interval (10 in MiB).

    At iteration k, with ``g_k`` the gradient of the *task* loss at the weights ``theta_k`` (MiB's
    ``train.py`` calls ``regularizer.update()`` after the task loss's backward, before the
    penalty's) and ``theta_{k+1}`` the weights after the update (fcdl94/MiB ``utils/regularizer.py``):

    * EWC: ``F <- alpha g_k^2 + (1 - alpha) F`` (``EWC.update``);
    * PI, MiB's estimator (``PI.update``/``PI.get``): ``omega += g_k (theta_{k-1} - theta_k)`` --
      each gradient paired with the *previous* update, none at the first iteration -- then
      ``relu(omega / (Delta^2 + 1e-20))``;
    * PI, Zenke et al.'s (ICML 2017, Eq. 3-5): ``omega += g_k (theta_k - theta_{k+1})`` (the
      gradient with the update it made), then ``relu(omega / (Delta^2 + 1e-3))``;
    * RW (``RW.update``): every ``rw_every`` iterations *of the step* (the window runs across
      epochs), ``s += g_k (theta_w - theta_k) / (0.5 F (theta_k - theta_w)^2 + 1e-8)`` with
      ``theta_w`` the weights at the window's start and ``F`` the Fisher before this iteration.

    ``Delta`` is the parameter's change over the step. The tracker holds eight parameter-sized
    float32 buffers (Fisher, two PI sums, RW score, the step's starting weights, the weights of
    the last two iterations, the RW window's start), plus a gradient copy at steps with a penalty.
    """

    def __init__(
        self,
        model: nn.Module,
        path: Path | None = None,
        previous: dict | None = None,
        alpha: float = 0.9,
        rw_every: int = 10,
    ):
        self.model, self.path, self.alpha, self.rw_every = model, path, alpha, rw_every
        self.previous = previous or {}
        self.fisher: dict[str, torch.Tensor] = {}
        self.omega: dict[str, torch.Tensor] = {}  # Zenke's path integral
        self.omega_mib: dict[str, torch.Tensor] = {}  # MiB's
        self.rw_score: dict[str, torch.Tensor] = {}
        self.start: dict[str, torch.Tensor] = {}
        self._prev: dict[str, torch.Tensor] = {}  # theta_k
        self._prev2: dict[str, torch.Tensor] = {}  # theta_{k-1}
        self._snap: dict[str, torch.Tensor] = {}  # theta at the RW window's start
        self._count = 0  # iterations of this step so far
        self._grads: list[torch.Tensor] | None = None

    def _init_buffers(self) -> None:
        """Zero scores and the starting weights, on the parameters' device (first epoch only)."""
        params = _params(self.model)
        prev_fisher = self.previous.get("fisher", {})
        self.fisher = {
            n: (
                prev_fisher[n].detach().clone().to(p.device)
                if n in prev_fisher and prev_fisher[n].shape == p.shape
                else torch.ones_like(p.detach())
            )
            for n, p in params.items()
        }
        self.omega = {n: torch.zeros_like(p.detach()) for n, p in params.items()}
        self.omega_mib = {n: torch.zeros_like(p.detach()) for n, p in params.items()}
        self.rw_score = {n: torch.zeros_like(p.detach()) for n, p in params.items()}
        self.start = {n: p.detach().clone() for n, p in params.items()}
        self._prev2 = {n: t.clone() for n, t in self.start.items()}
        self._snap = {n: t.clone() for n, t in self.start.items()}
        self._count = 0

    # ------------------------------------------------------------------ during training
    def start_epoch(self) -> None:
        """Snapshot the weights (called by ``fit`` before every epoch, after the model is on its
        device); the first call also records the step's starting weights. The PI pairing and the
        RW window carry over from the previous epoch, as in MiB (one regularizer per step)."""
        if not self.start:
            self._init_buffers()
        self._prev = {n: p.detach().clone() for n, p in _params(self.model).items()}
        self._grads = None

    @torch.no_grad()
    def capture_gradients(self) -> None:
        """Keep the current gradients (the task loss's, before a penalty's backward adds to them)
        for the next :meth:`after_step`."""
        self._grads = {n: p.grad.detach().float().clone() for n, p in _params(self.model).items() if p.grad is not None}

    @torch.no_grad()
    def after_step(self, skipped: bool = False) -> None:
        """Update Fisher, both PI sums and (every ``rw_every`` iterations) the RW score.

        Call right after ``optimizer.step()``, with the gradient that made the update in ``p.grad``
        (or captured by :meth:`capture_gradients`). ``skipped``: the optimiser did not step (AMP's
        scaler found an inf/NaN gradient); the iteration is ignored. Multi-tensor (``_foreach``)
        operations, no parameter-sized temporaries beyond one per RW window.
        """
        captured, self._grads = self._grads, None
        if skipped:
            return
        params = [
            (n, p)
            for n, p in _params(self.model).items()
            if (captured is not None and n in captured) or (captured is None and p.grad is not None)
        ]
        if not params:
            return
        names = [n for n, _ in params]
        ps = [p.detach() for _, p in params]
        gs = [captured[n] for n in names] if captured is not None else [p.grad.detach().float() for _, p in params]
        prev = [self._prev[n] for n in names]  # theta_k
        fisher = [self.fisher[n] for n in names]
        k = self._count
        # RW (before the Fisher update, which it reads): window over rw_every iterations of the step
        if k % self.rw_every == 0:
            snap = [self._snap[n] for n in names]
            if k > 0:
                torch._foreach_sub_(snap, prev)  # theta_w - theta_k
                denom = torch._foreach_mul(snap, snap)
                torch._foreach_mul_(denom, fisher)
                torch._foreach_mul_(denom, 0.5)
                torch._foreach_add_(denom, EPS)
                torch._foreach_div_(snap, denom)
                torch._foreach_addcmul_([self.rw_score[n] for n in names], gs, snap)
            torch._foreach_copy_(snap, prev)
        # PI, MiB: omega_mib += g_k (theta_{k-1} - theta_k), from the second iteration on
        prev2 = [self._prev2[n] for n in names]
        if k > 0:
            torch._foreach_sub_(prev2, prev)
            torch._foreach_addcmul_([self.omega_mib[n] for n in names], gs, prev2)
        torch._foreach_copy_(prev2, prev)  # theta_k, the next iteration's theta_{k-1}
        self._count += 1
        # PI, Zenke: omega += g_k (theta_k - theta_{k+1})
        torch._foreach_sub_(prev, ps)
        torch._foreach_addcmul_([self.omega[n] for n in names], gs, prev)
        torch._foreach_copy_(prev, ps)
        # EWC: F <- alpha g^2 + (1 - alpha) F
        torch._foreach_mul_(fisher, 1 - self.alpha)
        torch._foreach_addcmul_(fisher, gs, gs, value=self.alpha)

    # ------------------------------------------------------------------ results
    @torch.no_grad()
    def importance(self) -> dict:
        """The importance after this step: ``{"fisher", "pi", "pi_zenke", "rw"}``, each ``{name: tensor}``.

        ``pi`` (MiB's estimator) and ``pi_zenke``: ``relu(omega / (Delta^2 + damping))`` plus the
        previous steps' score of the same estimator; ``rw``: ``relu(s)`` averaged with the previous
        RW score (as MiB accumulates them).
        """
        params = _params(self.model)
        pi, pi_z, rw = {}, {}, {}
        prev_pi, prev_pz, prev_rw = (self.previous.get(k, {}) for k in ("pi", "pi_zenke", "rw"))
        for n, p in params.items():
            d2 = (p.detach() - self.start[n]).pow(2)
            pi[n] = torch.relu(self.omega_mib[n] / (d2 + PI_DAMPING_MIB))
            pi_z[n] = torch.relu(self.omega[n] / (d2 + PI_DAMPING))
            for out, prev_scores in ((pi, prev_pi), (pi_z, prev_pz)):
                if n in prev_scores and prev_scores[n].shape == p.shape:
                    out[n] = out[n] + prev_scores[n].to(p.device)
            rw[n] = torch.relu(self.rw_score[n])
            if n in prev_rw and prev_rw[n].shape == p.shape:
                rw[n] = 0.5 * (rw[n] + prev_rw[n].to(p.device))
        return {"fisher": {n: f.clone() for n, f in self.fisher.items()}, "pi": pi, "pi_zenke": pi_z, "rw": rw}

    def state_dict(self) -> dict:
        return {
            "fisher": self.fisher,
            "omega": self.omega,
            "omega_mib": self.omega_mib,
            "rw_score": self.rw_score,
            "start": self.start,
            "prev2": self._prev2,
            "snap": self._snap,
            "count": self._count,
            "previous": self.previous,
            "alpha": self.alpha,
            "rw_every": self.rw_every,
        }

    def load_state_dict(self, state: dict) -> None:
        dev = next(self.model.parameters()).device
        for name in ("fisher", "omega", "omega_mib", "rw_score", "start"):
            setattr(self, name, {n: t.to(dev) for n, t in state[name].items()})
        self._prev2 = {n: t.to(dev) for n, t in state["prev2"].items()}
        self._snap = {n: t.to(dev) for n, t in state["snap"].items()}
        self._count = int(state["count"])
        self.previous = state.get("previous") or {}
        self.alpha, self.rw_every = state["alpha"], state["rw_every"]

    def save(self, epoch: int, final: bool) -> None:
        """Write the tracker state (``final``: only the finished importance) atomically to ``path``."""

        if self.path is None:
            return
        state = {"epoch": epoch, "final": final}
        state.update({"importance": _to_cpu(self.importance())} if final else {"tracker": _to_cpu(self.state_dict())})
        save_torch(self.path, state, what=f"EWC/PI/RW importance {Path(self.path).name}")

    def resume(self, epoch: int) -> bool:
        """Load the state saved after ``epoch``; False (and a fresh start) if there is none."""
        if self.path is None or not Path(self.path).is_file():
            return False

        try:
            state = load_torch(self.path)
        except CorruptCheckpoint as e:  # the step resumes without it: importance over the remaining epochs
            log.warning(f"{e}\n  moved aside to {_quarantine(self.path).name}")
            return False
        if state.get("epoch") != epoch or state.get("final") or "tracker" not in state:
            return False
        self.load_state_dict(state["tracker"])
        return True


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    return obj


def load_importance(checkpoint: Path) -> dict:
    """The finished importance saved beside ``checkpoint``.

    Raises:
        FileNotFoundError: no importance file, or the step did not finish (names the file and
            what to do).
        CorruptCheckpoint: the file is unreadable or not an importance file (names it; the caller
            moves it aside and retrains the step that makes it).
    """

    path = importance_file(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: {Path(checkpoint).name} was trained without importance tracking "
            "(EWC/PI/RW need it); delete the checkpoint folder to retrain that step with tracking"
        )
    state = load_torch(path)
    if not isinstance(state, dict) or ("importance" not in state and "tracker" not in state):
        raise CorruptCheckpoint(f"importance file {path} holds no EWC/PI/RW importance", path)
    if not state.get("final"):
        raise FileNotFoundError(
            f"{path} belongs to an unfinished step (epoch {state.get('epoch')}); finish training that step first"
        )
    return state["importance"]


def _quarantine(path: Path) -> Path:

    return quarantine(path)


class ParameterPenalty:
    """``weight * sum_k Omega_k (theta_k - theta*_k)^2`` for EWC, PI or RW (see the module docstring).

    Args:
        kind: ``ewc``, ``pi`` or ``rw``.
        old_model: the frozen step t-1 model (``theta*``).
        importance: the step t-1 importance (:func:`load_importance`).
        weight: lambda (MiB: EWC 500, PI 500, RW 100).
        normalize: min-max normalise each importance tensor (MiB's default).
        pi_estimator: ``mib`` or ``zenke`` (which PI score, see the module docstring).

    Parameters the old model does not have (the new heads) are not penalised.

    Raises:
        ValueError: unknown ``kind``.
    """

    def __init__(
        self,
        kind: str,
        old_model: nn.Module,
        importance: dict,
        weight: float,
        normalize: bool = True,
        pi_estimator: str = "mib",
    ):
        if kind not in REGULARIZERS:
            raise ValueError(f"unknown regularizer {kind!r}; choose one of {REGULARIZERS}")
        if pi_estimator not in ("mib", "zenke"):
            raise ValueError(f"pi_estimator {pi_estimator!r}; choose 'mib' or 'zenke'")
        self.kind, self.weight = kind, float(weight)
        norm = minmax if normalize else (lambda t: t)
        old = {n: p.detach() for n, p in old_model.named_parameters()}
        self.omega, self.anchor = {}, {}
        for n, theta in old.items():
            if kind == "ewc":
                om = norm(importance["fisher"][n])
            elif kind == "pi":
                om = norm(importance["pi" if pi_estimator == "mib" else "pi_zenke"][n])
            else:
                om = norm(importance["fisher"][n]) + norm(importance["rw"][n])
            self.omega[n] = om.to(theta.device)
            self.anchor[n] = theta.clone()

    def __call__(self, model: nn.Module) -> torch.Tensor:
        """The weighted penalty (scalar tensor with gradients to ``model``'s parameters)."""
        total = None
        for n, p in model.named_parameters():
            if n in self.omega:
                term = (self.omega[n] * (p.float() - self.anchor[n]).pow(2)).sum()
                total = term if total is None else total + term
        if total is None:
            return torch.zeros(())
        return self.weight * total
