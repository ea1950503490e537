"""Several processes: ``torchrun`` on CPU with the gloo backend.

A per-pixel model (no batch statistics) trained on 2 processes ends with the weights of 1 process
with the same global batch, to float rounding; ``incseg step`` under torchrun writes one record,
resumes after being killed, and leaves checkpoints the notebooks' configuration reuses.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from incseg_lib.engine import RankSlice

HELPER = Path(__file__).parent / "helpers" / "ddp_fit.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _env(home: Path) -> dict:
    return {**os.environ, "INCSEG_HOME": str(home), "OMP_NUM_THREADS": "1", "INCSEG_PROGRESS": "0"}


def test_rank_slices_cover_every_global_batch_once():
    batches = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    a, b = list(RankSlice(batches, 0, 2)), list(RankSlice(batches, 1, 2))
    assert a == [[0, 2], [4, 6], [8, 10]] and b == [[1, 3], [5, 7], [9, 11]]
    assert [sorted(x + y) for x, y in zip(a, b)] == batches and len(RankSlice(batches, 1, 2)) == 3


@pytest.mark.notebooks
def test_two_processes_train_exactly_like_one(tmp_path):
    subprocess.run([sys.executable, str(HELPER), str(tmp_path / "one")], check=True, env=_env(tmp_path), timeout=300)
    run = subprocess.run(
        TORCHRUN + [str(HELPER), str(tmp_path / "two")], env=_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    one, two = (torch.load(tmp_path / d / "weights.pt") for d in ("one", "two"))
    for k in one:
        assert torch.allclose(one[k], two[k], atol=1e-6), k
    h1, h2 = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("one", "two"))
    assert h2["world"] == 2 and h1["images"] == h2["images"] == [24, 24, 24]  # images of all ranks
    assert h1["loss"] == pytest.approx(h2["loss"], rel=1e-5)  # the loss over all ranks
    d0, d1 = ((tmp_path / "two" / f"digest-{r}.txt").read_text() for r in (0, 1))
    assert d0 == d1  # DistributedDataParallel kept the ranks' weights identical


@pytest.mark.notebooks
def test_step_command_under_torchrun_resumes_after_a_kill(tmp_path):
    from incseg_lib.config import RunConfig
    from incseg_lib.engine import load_checkpoint
    from incseg_lib.experiment import checkpoint_file, train_step

    home = tmp_path / "home"
    cmd = TORCHRUN + [
        "-m",
        "incseg_lib.cli",
        "step",
        "--profile",
        "smoke",
        "--task",
        "15-5",
        "--step",
        "0",
        "-p",
        "epochs",
        "4",
        "-p",
        "checkpoint_every",
        "1",
    ]
    cfg = RunConfig.from_profile(
        "smoke",
        task="15-5",
        setting="overlapped",
        epochs=4,
        checkpoint_every=1,
        run_dir=str(home / "runs" / "incseg-step"),
    )
    os.environ["INCSEG_HOME"], old_home = str(home), os.environ.get("INCSEG_HOME")
    try:
        ckpt = checkpoint_file(cfg, 0, "step0")
        proc = subprocess.Popen(
            cmd, env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if ckpt.is_file():
                try:
                    if load_checkpoint(ckpt)["epoch"] >= 1:
                        break
                except Exception:  # noqa: BLE001  being replaced right now
                    pass
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # as a scheduler stops a job: torchrun stops both ranks
        proc.wait(timeout=120)
        killed_at = load_checkpoint(ckpt)["epoch"]
        assert 1 <= killed_at < 4, "the run finished before it could be killed"
        again = subprocess.run(cmd, env=_env(home), capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        assert f"resuming step-0.pt after epoch {killed_at}/4" in again.stdout
        assert "2 processes (gloo on CPU), global batch 8 (4 per process)" in again.stdout
        assert load_checkpoint(ckpt)["epoch"] == 4
        records = list((home / "runs" / "incseg-step" / "results").glob("*.json"))
        assert len(records) == 1  # rank 0 only; the killed run never reached its evaluation
        out = train_step(cfg, step=0, method="step0", progress=False, record=False)
        assert out.history["resumed_from"] == 4 and out.checkpoint == ckpt  # a notebook reuses it as is
    finally:
        if old_home is None:
            os.environ.pop("INCSEG_HOME", None)
        else:
            os.environ["INCSEG_HOME"] = old_home
