"""EWC / PI / RW: online importance against the papers' update rules, penalties against their formula."""

import pytest
import torch
from torch import nn

from incseg_lib.experiment import checkpoint_file, train_step
from incseg_lib.regularizers import (
    PI_DAMPING,
    ImportanceTracker,
    ParameterPenalty,
    importance_file,
    load_importance,
    minmax,
)


def _toy_run(steps=12, rw_every=3, previous=None, path=None, epoch_every=0):
    """SGD on a 2-parameter-tensor model with a fixed quadratic loss; returns tracker and trajectory.

    ``epoch_every``: call ``start_epoch`` again every this many iterations (epoch boundaries).
    """
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    tracker = ImportanceTracker(model, path=path, previous=previous, alpha=0.9, rw_every=rw_every)
    tracker.start_epoch()
    traj = [{n: p.detach().clone() for n, p in model.named_parameters()}]
    grads = []
    for k in range(steps):
        if epoch_every and k and k % epoch_every == 0:
            tracker.start_epoch()
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        tracker.after_step()
        grads.append({n: p.grad.detach().clone() for n, p in model.named_parameters()})
        traj.append({n: p.detach().clone() for n, p in model.named_parameters()})
    return model, tracker, traj, grads


def _mib_reference(traj, grads, n, rw_every=3):
    """MiB's regularizers (fcdl94/MiB utils/regularizer.py), written from their update rules:
    ``update()`` runs once per iteration with g_k = the gradient at theta_k, before the step."""
    fisher = torch.ones_like(traj[0][n])
    pi_mib, pi_zenke, rw = (torch.zeros_like(fisher) for _ in range(3))
    temp_rw = None
    for k, gs in enumerate(grads):
        g, theta = gs[n], traj[k][n]
        if k > 0:  # PI.update: delta += grad * (model_temp - p), model_temp = theta_{k-1}
            pi_mib += g * (traj[k - 1][n] - theta)
        pi_zenke += -g * (traj[k + 1][n] - theta)  # Zenke et al. Eq. 3: the update g produced
        if k % rw_every == 0:  # RW.update: score with the Fisher before this iteration's update
            if temp_rw is not None:
                rw += g * (temp_rw - theta) / (0.5 * fisher * (theta - temp_rw) ** 2 + 1e-8)
            temp_rw = theta
        fisher = 0.9 * g**2 + 0.1 * fisher  # EWC.update / RW.update, alpha = 0.9
    d2 = (traj[-1][n] - traj[0][n]) ** 2
    return {
        "fisher": fisher,
        "pi": torch.relu(pi_mib / (d2 + 1e-20)),
        "pi_zenke": torch.relu(pi_zenke / (d2 + PI_DAMPING)),
        "rw": torch.relu(rw),
    }


def test_tracker_matches_mib_update_rules():
    model, tracker, traj, grads = _toy_run()
    imp = tracker.importance()
    for n in ("weight", "bias"):
        ref = _mib_reference(traj, grads, n)
        for kind in ("fisher", "pi", "pi_zenke", "rw"):
            torch.testing.assert_close(imp[kind][n], ref[kind], msg=f"{kind} {n}")
    # a loss that decreases along the path gives positive PI importance somewhere
    assert sum(float(v.sum()) for v in imp["pi"].values()) > 0
    # the two PI estimators differ (MiB's pairs each gradient with the previous update)
    assert not torch.allclose(imp["pi"]["weight"], imp["pi_zenke"]["weight"])


def test_rw_window_and_pi_pairing_run_across_epochs():
    """MiB keeps one regularizer per step: epoch boundaries must not restart the RW window
    (with 4-iteration epochs and a 3-iteration window, a restart would drop iterations)."""
    _, plain, _, _ = _toy_run(steps=12, rw_every=3)
    _, epochs, _, _ = _toy_run(steps=12, rw_every=3, epoch_every=4)
    a, b = plain.importance(), epochs.importance()
    for kind in a:
        for n in a[kind]:
            torch.testing.assert_close(b[kind][n], a[kind][n])


def test_fisher_sees_the_task_gradient_only():
    """With a penalty (steps >= 1 of EWC/PI/RW) the importance uses the task loss's gradient, as
    MiB's train.py updates the regularizer before the penalty's backward."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    x, y = torch.randn(8, 3), torch.randn(8, 2)
    tracker = ImportanceTracker(model, alpha=1.0)  # Fisher = the last squared gradient
    tracker.start_epoch()
    opt.zero_grad()
    task = ((model(x) - y) ** 2).mean()
    task.backward()
    g_task = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    tracker.capture_gradients()
    (1e3 * sum((p**2).sum() for p in model.parameters())).backward()  # a large penalty gradient
    opt.step()
    tracker.after_step()
    for n, g in g_task.items():
        torch.testing.assert_close(tracker.fisher[n], g**2)


def test_skipped_step_changes_nothing():
    """A step AMP's scaler skipped (inf/NaN gradient) must not touch Fisher, omega or the RW count."""
    model, tracker, _, _ = _toy_run(steps=4)
    before = {k: {n: t.clone() for n, t in getattr(tracker, k).items()} for k in ("fisher", "omega", "rw_score")}
    count = tracker._count
    for p in model.parameters():
        p.grad = torch.full_like(p, float("inf"))
    tracker.after_step(skipped=True)
    assert tracker._count == count
    for k, tensors in before.items():
        for n, t in tensors.items():
            assert torch.equal(getattr(tracker, k)[n], t), (k, n)


def test_importance_accumulates_over_steps():
    _, first, _, _ = _toy_run()
    prev = first.importance()
    _, second, _, _ = _toy_run(previous=prev)
    fresh = _toy_run()[1].importance()
    both = second.importance()
    for n in ("weight", "bias"):
        torch.testing.assert_close(both["pi"][n], fresh["pi"][n] + prev["pi"][n])  # PI: summed
        torch.testing.assert_close(both["pi_zenke"][n], fresh["pi_zenke"][n] + prev["pi_zenke"][n])
        own_rw = torch.relu(second.rw_score[n])  # (its path score uses the continued Fisher)
        torch.testing.assert_close(both["rw"][n], 0.5 * (own_rw + prev["rw"][n]))  # RW: averaged
    seeded = ImportanceTracker(second.model, previous=prev)
    seeded.start_epoch()
    for n in ("weight", "bias"):  # the Fisher average continues from the previous step's
        assert torch.equal(seeded.fisher[n], prev["fisher"][n])


def test_penalty_formula_and_new_parameters_free():
    torch.manual_seed(1)
    old = nn.Sequential(nn.Linear(3, 4))
    new = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))  # "1.*" exists only in the new model
    new[0].load_state_dict(old[0].state_dict())
    with torch.no_grad():
        for p in new.parameters():
            p.add_(torch.randn_like(p))
    imp = {k: {n: torch.rand_like(p) for n, p in old.named_parameters()} for k in ("fisher", "pi", "pi_zenke", "rw")}
    for kind, weight, est in (
        ("ewc", 500.0, "mib"),
        ("pi", 500.0, "mib"),
        ("pi", 500.0, "zenke"),
        ("rw", 100.0, "mib"),
    ):
        got = ParameterPenalty(kind, old, imp, weight, pi_estimator=est)(new)
        want = 0.0
        for n, p in old.named_parameters():
            om = {
                "ewc": minmax(imp["fisher"][n]),
                "pi": minmax(imp["pi" if est == "mib" else "pi_zenke"][n]),
                "rw": minmax(imp["fisher"][n]) + minmax(imp["rw"][n]),
            }[kind]
            want = want + (om * (dict(new.named_parameters())[n] - p) ** 2).sum()
        torch.testing.assert_close(got, weight * want)
        got.backward()
        assert new[1].weight.grad is None  # the new head is not penalised
        new.zero_grad()
    with pytest.raises(ValueError, match="unknown regularizer 'si'"):
        ParameterPenalty("si", old, imp, 1.0)


def test_tracker_resume_is_exact(tmp_path):
    """Saved after an epoch and reloaded, the tracker continues as if never stopped."""
    _, tracker, _, _ = _toy_run(path=tmp_path / "imp.pt")
    tracker.save(epoch=1, final=False)
    other = ImportanceTracker(tracker.model, path=tmp_path / "imp.pt")
    assert other.resume(1) and not other.resume(2)
    for n in ("fisher", "pi", "pi_zenke", "rw"):
        for k, v in tracker.importance()[n].items():
            torch.testing.assert_close(other.importance()[n][k], v)


def test_step0_saves_importance_and_ewc_with_zero_weight_is_ft(tiny_cfg, monkeypatch):
    cfg = tiny_cfg()
    quiet = dict(progress=False, record=False)
    ft = train_step(cfg, step=1, method="ft", **quiet)
    imp = load_importance(checkpoint_file(cfg, 0, "ft"))
    assert set(imp) == {"fisher", "pi", "pi_zenke", "rw"} and len(imp["fisher"]) > 100
    from incseg_lib.methods import method_spec

    monkeypatch.setitem(method_spec("ewc").defaults, "reg", 0.0)
    ewc = train_step(cfg, step=1, method="ewc", **quiet)
    a, b = ft.model.state_dict(), ewc.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # same init, same data: the penalty is the only change
    assert importance_file(checkpoint_file(cfg, 1, "ewc")).is_file()  # tracked for the next step
    assert not importance_file(checkpoint_file(cfg, 1, "ft")).exists()


def test_regularizer_without_importance_names_the_file(tiny_cfg):
    cfg = tiny_cfg()
    train_step(cfg, step=0, method="step0", progress=False, record=False)
    importance_file(checkpoint_file(cfg, 0, "pi")).unlink()
    with pytest.raises(FileNotFoundError, match="importance.pt does not exist.*delete the checkpoint"):
        train_step(cfg, step=1, method="pi", progress=False, record=False)
