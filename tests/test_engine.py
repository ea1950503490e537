"""Training loop: poly LR, checkpoint resume equals an uninterrupted run, mismatch errors."""

import pytest
import torch

from incseg_lib.data import load_dataset
from incseg_lib.data.transforms import eval_transforms, train_transforms
from incseg_lib.engine import (
    CheckpointMismatch,
    Hardware,
    Hooks,
    Saving,
    Schedule,
    evaluate,
    fit,
    load_checkpoint,
    poly_lr,
)
from incseg_lib.models import BiSeNet


def test_poly_lr():
    assert poly_lr(0.01, 0, 100) == 0.01
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 100, 100) == 0.0


@pytest.fixture(scope="module")
def tiny_train(shapes_root):
    ds = load_dataset("shapes", "train", root=shapes_root, transforms=train_transforms(32))
    return ds.subset(range(12))


def _fit(model, ds, ckpt, stop_after_epoch=None, log_dir=None):
    return fit(
        model,
        ds,
        Schedule(epochs=3, batch_size=4, lr=0.01, seed=3),
        saving=Saving(ckpt, {"k": 1}, stop_after_epoch=stop_after_epoch),
        log_dir=log_dir,
        progress=False,
    )


def test_resume_reproduces_uninterrupted_run(tiny_train, tmp_path):
    torch.manual_seed(0)
    a = BiSeNet([21], "resnet18")
    b = BiSeNet([21], "resnet18")
    b.load_state_dict(a.state_dict())
    full = _fit(a, tiny_train, tmp_path / "a.pt")
    part = _fit(b, tiny_train, tmp_path / "b.pt", stop_after_epoch=1)  # "killed" after epoch 1
    assert part["epochs_done"] == 1
    assert torch.load(tmp_path / "b.pt", weights_only=False)["optimizer"] is not None  # needed to resume
    c = BiSeNet([21], "resnet18")  # a fresh process would start from a fresh model
    resumed = _fit(c, tiny_train, tmp_path / "b.pt")
    assert resumed["resumed_from"] == 1 and resumed["epochs_done"] == 3
    for (name, pa), pc in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.equal(pa, pc), name
    assert resumed["loss"] == pytest.approx(full["loss"])
    # a finished checkpoint is reused, not retrained; it keeps the weights, not the optimizer state
    again = _fit(BiSeNet([21], "resnet18"), tiny_train, tmp_path / "a.pt")
    assert again["resumed_from"] == 3 and again["loss"] == full["loss"]
    finished = torch.load(tmp_path / "a.pt", weights_only=False)
    assert finished["optimizer"] is None and finished["epoch"] == 3


def test_checkpoint_mismatch_is_named(tiny_train, tmp_path):
    _fit(BiSeNet([21], "resnet18"), tiny_train, tmp_path / "c.pt", stop_after_epoch=1)
    with pytest.raises(CheckpointMismatch, match="classes per step \\[21\\].*\\[16, 5\\]"):
        load_checkpoint(tmp_path / "c.pt", BiSeNet([16, 5], "resnet18"))
    with pytest.raises(CheckpointMismatch, match="resnet18.*resnet50"):
        load_checkpoint(tmp_path / "c.pt", BiSeNet([21], "resnet50"))
    with pytest.raises(CheckpointMismatch, match="differs in \\['k'\\]"):
        load_checkpoint(tmp_path / "c.pt", BiSeNet([21], "resnet18"), key={"k": 2})


def test_training_lowers_the_loss_and_evaluates(shapes_root):
    torch.manual_seed(0)
    train = load_dataset("shapes", "train", root=shapes_root, transforms=train_transforms(48)).subset(range(96))
    model = BiSeNet([21], "resnet18")
    h = fit(model, train, Schedule(epochs=3, batch_size=8, lr=0.05), progress=False)
    assert h["loss"][-1] < h["loss"][0]
    val = load_dataset("shapes", "val", root=shapes_root, transforms=eval_transforms()).subset(range(10))
    ev = evaluate(model, val, 21, progress=False)
    assert ev["images"] == 10 and ev["confusion"].mat.sum() > 0


def test_too_few_images(tiny_train):
    with pytest.raises(ValueError, match="at least 2"):
        fit(BiSeNet([21]), tiny_train.subset([0]), Schedule(epochs=1, batch_size=4, lr=0.01), progress=False)


def test_a_truncated_checkpoint_is_named_moved_aside_and_retrained(tmp_path, said):
    from incseg_lib.engine import Saving, Schedule, fit, load_checkpoint
    from incseg_lib.store import CorruptCheckpoint

    torch.manual_seed(0)
    data = [(torch.randn(3, 32, 32), torch.randint(0, 3, (32, 32))) for _ in range(4)]
    model = BiSeNet([3], "resnet18")
    ckpt = tmp_path / "step-0.pt"
    fit(model, data, Schedule(epochs=1, batch_size=2, lr=0.01), saving=Saving(ckpt, {"k": 1}), progress=False)
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # a copy that did not finish
    with pytest.raises(CorruptCheckpoint, match="step-0.pt is unreadable"):
        load_checkpoint(ckpt, model)
    said.clear()
    hist = fit(BiSeNet([3], "resnet18"), data, Schedule(epochs=1, batch_size=2, lr=0.01),
               saving=Saving(ckpt, {"k": 1}), progress=False)  # fmt: skip
    assert hist["epochs_done"] == 1 and hist["resumed_from"] is None  # trained again from the start
    assert any("step-0.pt is unreadable" in s and "moved aside to step-0.pt.corrupt-" in s for s in said)
    assert len(list(tmp_path.glob("step-0.pt.corrupt-*"))) == 1 and load_checkpoint(ckpt)["epoch"] == 1


def test_mib_optimizer_is_nesterov_with_weight_decay_everywhere():
    """fcdl94/MiB run.py: SGD(nesterov=True), weight_decay on every parameter group."""
    from torch import nn

    from incseg_lib.engine import make_optimizer

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ours = make_optimizer(model, 0.01, 0.9, 1e-4)
    mib = make_optimizer(model, 0.01, 0.9, 1e-4, kind="sgd-mib")
    assert [g["weight_decay"] for g in ours.param_groups] == [1e-4, 0.0]  # none on BN and biases
    assert all(g["nesterov"] is False for g in ours.param_groups)
    assert [(g["weight_decay"], g["nesterov"], len(g["params"])) for g in mib.param_groups] == [(1e-4, True, 4)]
    with pytest.raises(ValueError, match="optimizer 'adam'"):
        make_optimizer(model, 0.01, kind="adam")


def test_checkpoint_lock_makes_a_second_process_wait(tmp_path, said):
    """Two notebooks needing one checkpoint: the second waits for the first instead of training it too."""
    import subprocess
    import sys
    import time

    from incseg_lib.store import checkpoint_lock

    ck = tmp_path / "step-0.pt"
    code = (
        "import pathlib, time\nfrom incseg_lib.store import checkpoint_lock\n"
        f"with checkpoint_lock(pathlib.Path({str(ck)!r})):\n    print('held', flush=True)\n    time.sleep(1.5)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    t0 = time.perf_counter()
    with checkpoint_lock(ck):
        waited = time.perf_counter() - t0
    holder.wait()
    assert waited > 0.5 and said and "waiting for another process making step-0.pt" in said[0]
    with checkpoint_lock(ck):  # free now: no wait, nothing said
        pass
    assert len(said) == 1


def test_accel_policy(monkeypatch):
    from incseg_lib.engine import accel

    monkeypatch.setenv("INCSEG_CHANNELS_LAST", "0")
    gpu, cpu = accel("cuda"), accel("cpu")
    assert gpu.autocast_dtype == torch.float16 and gpu.grad_scaler and gpu.pin_memory
    assert cpu.autocast_dtype is None and not (cpu.grad_scaler or cpu.channels_last or cpu.pin_memory)
    assert accel("cpu", "bf16").autocast_dtype == torch.bfloat16 and not accel("cpu", "bf16").grad_scaler
    assert accel("cuda", False).autocast_dtype is None
    with pytest.raises(ValueError, match="amp='half'"):
        accel("cpu", "half")


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_gpu_code_path_runs_on_cpu(amp, monkeypatch):
    """The branches a GPU takes (autocast, grad scaler, channels_last) forced on CPU: the forward runs
    in the low-precision dtype, weights and inputs are NHWC, and training and evaluation still work."""
    from incseg_lib.engine import accel

    torch.manual_seed(0)
    data = [(torch.randn(3, 64, 64), torch.randint(0, 3, (64, 64))) for _ in range(4)]
    model = BiSeNet([3], "resnet18")
    seen = []
    model.register_forward_hook(
        lambda m, i, o: seen.append((o["out"].dtype, i[0].is_contiguous(memory_format=torch.channels_last)))
    )
    scaled = []
    real_scale = torch.amp.GradScaler.scale
    monkeypatch.setattr(
        torch.amp.GradScaler, "scale", lambda self, x: scaled.append(self.is_enabled()) or real_scale(self, x)
    )
    hist = fit(model, data, Schedule(epochs=2, batch_size=2, lr=0.01), Hardware(amp=amp, channels_last=True),
               progress=False)  # fmt: skip
    want = accel("cpu", amp).autocast_dtype
    assert seen and all(dt == want and nhwc for dt, nhwc in seen)
    assert all(scaled) == (amp == "fp16") and scaled
    assert all(torch.isfinite(torch.tensor(hist["loss"])))
    assert model.context_path.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    res = evaluate(model, data, 3, amp=amp, channels_last=True, progress=False)
    assert res["confusion"].mat.sum() == 4 * 64 * 64


def test_a_non_finite_loss_stops_training_naming_its_iteration():
    """Losses are read back every ``sync_every`` iterations; a NaN still names the iteration it appeared at."""
    from incseg_lib.losses import bisenet_loss

    torch.manual_seed(0)
    data = [(torch.randn(3, 32, 32), torch.randint(0, 3, (32, 32))) for _ in range(14)]
    calls = []

    def loss_fn(model, x, y, out):
        losses = bisenet_loss(out, y)
        calls.append(1)
        if len(calls) == 5:  # iteration 4 of epoch 1
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    with pytest.raises(FloatingPointError, match="at epoch 1, iteration 4; lower the learning rate"):
        fit(BiSeNet([3], "resnet18"), data, Schedule(epochs=1, batch_size=2, lr=0.01), Hardware(sync_every=3),
            hooks=Hooks(loss_fn=loss_fn), progress=False)  # fmt: skip
    assert len(calls) == 6  # read back after iterations 0-2 and 3-5: stopped at the second sync


def test_layout_is_a_pure_function_of_device_and_shape_not_of_timing(monkeypatch):
    """The memory layout changes the order of floating-point sums, so it must not depend on how busy the
    machine is: the same device and shape give the same decision whatever a timer would say."""
    import time as time_module

    from incseg_lib import engine

    monkeypatch.delenv("INCSEG_CHANNELS_LAST", raising=False)
    answers = []
    for fake_speed in (0.001, 10.0):  # a quiet and a loaded machine: every clock reads differently
        monkeypatch.setattr(time_module, "perf_counter", lambda s=fake_speed: s)
        answers.append(
            [engine.accel("cpu", shape=(8, 3, side, side)).channels_last for side in (48, 64, 128, 160, 192)]
            + [engine.channels_last_rule("cuda", (8, 3, 64, 64)), engine.channels_last_rule("cpu")]
        )
    assert answers[0] == answers[1] == [False, False, False, True, True, True, False]
    assert engine.channels_last_rule("cpu", (8, 3, 160, 512)) and not engine.channels_last_rule("cpu", (8, 3, 159, 512))
    monkeypatch.setenv("INCSEG_CHANNELS_LAST", "0")
    assert engine.channels_last_rule("cuda") is False  # the variable decides everywhere
    monkeypatch.setenv("INCSEG_CHANNELS_LAST", "1")
    assert engine.channels_last_rule("cpu", (8, 3, 64, 64))


def test_fit_and_evaluate_record_their_decisions():
    """What a run decided (layout, precision, threads) comes back with its history and evaluation."""
    torch.manual_seed(0)
    data = [(torch.randn(3, 32, 32), torch.randint(0, 3, (32, 32))) for _ in range(4)]
    model = BiSeNet([3], "resnet18")
    hist = fit(model, data, Schedule(1, 2, 0.01), Hardware(amp="bf16"), progress=False)
    assert hist["decisions"] == [
        {"device": "cpu", "threads": torch.get_num_threads(), "channels_last": False, "autocast": "bfloat16"}
    ]
    ev = evaluate(model, data, 3, amp=False, channels_last=True, progress=False)
    assert ev["decisions"]["channels_last"] is True and ev["decisions"]["autocast"] == "float32"


def test_nhwc_changes_the_speed_not_the_result():
    torch.manual_seed(0)
    model = BiSeNet([4], "resnet18")
    model.eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        a = model(x)["out"]
        model.to(memory_format=torch.channels_last)
        b = model(x.contiguous(memory_format=torch.channels_last))["out"]
    assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_an_unwritable_tensorboard_folder_turns_logging_off_with_a_warning(tiny_train, tmp_path):
    """A run folder that cannot take TensorBoard's logs (a full disk, here a path under a file) does
    not stop training: one warning names the folder, the history is complete."""
    (tmp_path / "afile").write_text("x")
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match=r"TensorBoard is off for this step: its folder .*afile/tb cannot be written"):
        history = _fit(BiSeNet([21], "resnet18"), tiny_train, tmp_path / "m.pt", log_dir=tmp_path / "afile" / "tb")
    assert len(history["loss"]) == 3 and (tmp_path / "m.pt").is_file()
