"""The faults a lab meets: planted pickles, Ctrl-C, full disks, odd masks, empty steps, bad options."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from incseg_lib.models import BiSeNet
from incseg_lib.store import DiskFull, UnsafeCheckpoint

from .conftest import REPO, write_voc
from .helpers.notebook_files import write_notebook
from .helpers.records import make_record


class Payload:
    """Unpickling this touches ``marker``: what a checkpoint from a stranger could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant(path: Path, marker: Path, **entries) -> Path:
    """A torch file at ``path`` that runs code when loaded without ``weights_only``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {}, "payload": Payload(marker), **entries}, path)
    return path


def test_a_planted_pickle_never_runs_at_any_path_the_library_loads(tmp_path, said):
    from incseg_lib.engine import Saving, Schedule, fit, load_checkpoint
    from incseg_lib.experiment import model_and_data
    from incseg_lib.regularizers import ImportanceTracker, importance_file, load_importance

    marker = tmp_path / "pwned"
    ckpt = plant(tmp_path / "ckpt" / "step-0.pt", marker)
    with pytest.raises(UnsafeCheckpoint, match=f"checkpoint {ckpt} holds Python objects"):
        load_checkpoint(ckpt)
    plant(importance_file(ckpt), marker, final=True)
    with pytest.raises(UnsafeCheckpoint, match="step-0.importance.pt"):
        load_importance(ckpt)
    tracker = ImportanceTracker(BiSeNet([3], "resnet18"), importance_file(ckpt))
    assert tracker.resume(1) is False  # moved aside; the step's importance restarts
    with pytest.raises(UnsafeCheckpoint, match="step-0.pt"):  # notebook 06's viewer
        model_and_data(make_record("ft", 0, 0.5, checkpoint=str(ckpt), config={}))
    # training finds the planted file where its checkpoint should be: moved aside, trained afresh
    data = [(torch.randn(3, 32, 32), torch.randint(0, 3, (32, 32))) for _ in range(4)]
    said.clear()
    fit(BiSeNet([3], "resnet18"), data, Schedule(epochs=1, batch_size=2, lr=0.01), saving=Saving(ckpt),
        progress=False)  # fmt: skip
    assert any("moved aside" in s for s in said) and list(ckpt.parent.glob("step-0.pt.corrupt-*"))
    assert load_checkpoint(ckpt)["epoch"] == 1
    assert not marker.exists()  # the payload never ran


def test_a_full_disk_names_the_folder_and_leaves_no_partial_file(tmp_path, monkeypatch):
    from incseg_lib import store
    from incseg_lib.engine import save_checkpoint

    def half_then_full(fh, data, chunk=1 << 24):
        fh.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "ckpts" / "step-0.pt"
    monkeypatch.setattr(store, "_write_chunks", half_then_full)
    state = {"model": BiSeNet([3], "resnet18").state_dict()}
    with pytest.raises(DiskFull) as info:
        save_checkpoint(target, state)
    msg = str(info.value)
    assert f"no space left in {target.parent}" in msg and "checkpoint step-0.pt" in msg and "MB needed" in msg
    assert list(target.parent.iterdir()) == []  # no .step-0.pt.<pid>.tmp left behind
    # a quota error (EDQUOT) is the same fault
    monkeypatch.setattr(
        store, "_write_chunks", lambda fh, d, chunk=0: (_ for _ in ()).throw(OSError(errno.EDQUOT, "quota"))
    )
    with pytest.raises(DiskFull, match="results.json"):
        store.atomic_write_text(tmp_path / "r" / "results.json", "{}")
    # known before writing: less free space than the file needs
    monkeypatch.undo()
    monkeypatch.setattr(store, "_free_bytes", lambda folder: 10)
    with pytest.raises(DiskFull, match="10 bytes|0.0 MB free"):
        store.atomic_write_bytes(tmp_path / "x.bin", b"x" * 1000)


def test_temporary_files_of_dead_processes_are_removed_at_start(tmp_path):
    from incseg_lib.store import remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    folder = tmp_path / "ckpt" / "15-5-overlapped" / "mib"
    folder.mkdir(parents=True)
    stale = [
        folder / f".step-1.pt.{pid}.tmp",
        folder / f".step-0.importance.pt.{pid}.tmp",
        folder / f".m.{pid}.tmp.png",
    ]
    alive = folder / f".step-2.pt.{os.getpid()}.tmp"
    for p in stale + [alive, folder / "step-1.pt"]:
        p.write_bytes(b"x" * 100)
    removed = remove_stale_temporaries(tmp_path / "ckpt")
    assert sorted(removed) == sorted(stale)
    assert alive.exists() and (folder / "step-1.pt").exists()  # a live writer's file and real files stay


def test_masks_in_16_or_1_bit_are_read_or_named(tmp_path):
    from incseg_lib.data import load_dataset
    from incseg_lib.data.common import DatasetError

    voc = write_voc(
        tmp_path / "voc", {"a": np.zeros((8, 8)), "b": np.zeros((8, 8)), "c": np.zeros((8, 8)), "d": np.zeros((8, 8))}
    )
    masks = voc / "SegmentationClass"
    sixteen = np.full((8, 8), 3, np.uint16)
    Image.fromarray(sixteen).save(masks / "a.png")  # 16-bit, values fit: read as they are
    Image.fromarray(np.full((8, 8), 300, np.uint16)).save(masks / "b.png")  # 16-bit beyond 8 bits
    Image.fromarray(np.ones((8, 8), bool)).save(masks / "c.png")  # 1-bit black and white
    ds = load_dataset("voc", "train", root=tmp_path / "voc")
    assert Image.open(masks / "a.png").mode.startswith("I") and ds.read_mask(0).tolist() == sixteen.tolist()
    with pytest.raises(DatasetError, match=r"b.png is a I;16.* values up to 300"):
        ds.read_mask(1)
    with pytest.raises(DatasetError, match="c.png is a 1-bit black-and-white image"):
        ds.read_mask(2)
    # the data check lists every problem (not the first), naming each file and the fix
    (voc / "JPEGImages" / "d.jpg").unlink()
    with pytest.raises(DatasetError) as info:
        ds.check(max_listed=None, progress=False)
    msg = str(info.value)
    assert msg.startswith("3 of 4 voc images are unusable") and "b.png" in msg and "c.png" in msg and "d.jpg" in msg


def test_a_16_bit_greyscale_image_is_scaled_not_clipped(tmp_path):
    from incseg_lib.data import load_dataset

    voc = write_voc(tmp_path / "voc", {"a": np.zeros((8, 8)), "b": np.zeros((8, 8))})
    grey = np.tile(np.linspace(0, 65535, 8).astype(np.uint16), (8, 1))  # a dark-to-bright ramp in 16 bits
    Image.fromarray(grey).save(voc / "JPEGImages" / "a.jpg", format="PNG")
    ds = load_dataset("voc", "train", root=tmp_path / "voc")
    img = ds.read_image(0)
    assert img.shape == (3, 8, 8) and img.dtype == torch.uint8
    assert img[0, 0].tolist() == np.rint(grey[0] / 257).astype(int).tolist()  # 0 .. 255, the ramp kept
    assert (img == 255).float().mean() < 0.2  # PIL's convert("RGB") made 7 of 8 columns white
    assert ds.read_image(1).sum() == 0  # 8-bit RGB unchanged


def _relabel_same_size(mask_path: Path) -> None:
    """Rewrite a mask with other class ids, keeping its byte size (uncompressed PNG) and moving its
    modification time on, as an editor saving it would."""
    with Image.open(mask_path) as im:
        m, mode, palette = np.array(im), im.mode, im.getpalette()
    before = mask_path.stat()
    out = Image.fromarray(np.where(m == 0, 0, 1).astype(np.uint8)).convert(mode)
    if palette:
        out.putpalette(palette)
    out.save(mask_path, compress_level=0)
    os.utime(mask_path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def test_a_same_size_relabelled_mask_changes_the_data_check_key_and_eval_reuse(tmp_path, shapes_root, said, tiny_cfg):
    """The content fingerprint reads the files: a mask relabelled at the same byte size is a new
    dataset for the data check, the checkpoint key and the evaluation reuse."""
    import shutil

    from incseg_lib.data import load_dataset
    from incseg_lib.experiment import train_step

    root = tmp_path / "shapes"
    shutil.copytree(shapes_root, root)
    masks = root / "VOCdevkit" / "VOC2012" / "SegmentationClass"
    for p in masks.glob("*.png"):  # uncompressed, so a relabelled mask keeps its size
        Image.open(p).save(p, compress_level=0)
    cfg = tiny_cfg(data_root=str(root), run_dir=str(tmp_path / "run"))
    quiet = dict(progress=False)
    first = train_step(cfg, step=0, method="step0", **quiet).record
    val = load_dataset("shapes", "val", root=root, incremental=True, max_images=4)
    before, key = val.content_fingerprint(), cfg.training_key(step=0, method="step0")
    said.clear()
    train_step(cfg, step=0, method="step0", progress=False)
    assert any("eval reused" in str(x) for x in said)  # unchanged data: reused
    for i in range(4):
        size = val.mask_paths[i].stat().st_size
        _relabel_same_size(val.mask_paths[i])
        assert val.mask_paths[i].stat().st_size == size
    assert val.content_fingerprint() != before
    said.clear()
    again = train_step(cfg, step=0, method="step0", progress=False).record
    assert not any("eval reused" in str(x) for x in said) and again["_file"] != first["_file"]
    assert again["eval_data"] != first["eval_data"]
    train = load_dataset("shapes", "train", root=root, incremental=True, max_images=40)
    _relabel_same_size(train.mask_paths[0])
    from incseg_lib import config

    config._FINGERPRINTS.clear()  # a new process: the training list is fingerprinted anew
    assert cfg.training_key(step=0, method="step0")["data"] != key["data"]


def test_caches_beside_unwritable_checkpoints_go_to_a_writable_folder_and_corrupt_ones_are_rebuilt(
    tmp_path, monkeypatch
):
    """A lab's read-only checkpoint folder (here a path whose parent is a file: unwritable even for
    root) does not stop the class-presence and split caches; a truncated cache is named, moved aside
    and rebuilt."""
    from incseg_lib.data import load_dataset
    from incseg_lib.tasks import IncrementalSplit

    monkeypatch.setenv("INCSEG_HOME", str(tmp_path / "home"))
    voc = tmp_path / "voc"
    write_voc(voc, {"a": np.zeros((8, 8)), "b": np.full((8, 8), 16)})
    ds = load_dataset("voc", "train", root=voc)
    (tmp_path / "ro").write_text("a file")
    blocked = tmp_path / "ro" / "splits"  # cannot be created
    with _no_warning():  # the first cache folder that can be written is used, without a word
        presence = ds.class_presence(blocked)
    assert presence[1, 16] and not presence[0, 16]
    stored = sorted((tmp_path / "home" / "cache").glob("presence-*.npy"))
    assert len(stored) == 1  # went to $INCSEG_HOME/cache
    stored[0].write_bytes(b"\x93NUMPY truncated")
    with pytest.warns(UserWarning, match=r"class-presence cache .*presence-.*\.npy is unreadable"):
        again = ds.class_presence(blocked)
    assert (again == presence).all() and list((tmp_path / "home" / "cache").glob("presence-*.corrupt-*"))
    idx = IncrementalSplit("voc", "15-5", 1, "overlapped").train_indices(ds, blocked)
    assert idx.tolist() == [1]


class _no_warning:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def test_data_check_command_lists_every_problem_of_every_split(tmp_path, capsys):
    from incseg_lib.cli import main

    voc = write_voc(tmp_path / "voc", {"a": np.zeros((8, 8)), "b": np.zeros((8, 8))})
    Image.fromarray(np.ones((8, 8), bool)).save(voc / "SegmentationClass" / "a.png")
    Image.fromarray(np.full((8, 8), 99, np.uint8)).save(voc / "SegmentationClass" / "b.png")
    write_voc(tmp_path / "voc", {"v": np.zeros((8, 8))}, split="val")
    assert main(["data", "check", "--dataset", "voc", "--root", str(tmp_path / "voc"), "--split", "train,val"]) == 2
    err = capsys.readouterr()
    assert "a.png is a 1-bit" in err.err and "b.png holds value(s) [99]" in err.err and "train" in err.err


def test_a_split_list_naming_an_image_twice_is_refused(tmp_path):
    from incseg_lib.data import load_dataset
    from incseg_lib.data.common import DatasetError

    voc = write_voc(tmp_path / "voc", {"a": np.zeros((8, 8)), "b": np.zeros((8, 8))})
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\na\n")
    with pytest.raises(DatasetError, match=r"train.txt names 1 image\(s\) more than once: a \(line 3\)"):
        load_dataset("voc", "train", root=tmp_path / "voc")


def test_an_empty_step_is_named_before_the_first_step_trains(tmp_path):
    from incseg_lib.config import RunConfig
    from incseg_lib.experiment import check_steps

    # every image holds class 1 (and step 0's 1..15) but none holds 20 (tvmonitor, the last step of 15-1)
    masks = {f"i{k}": np.pad(np.full((4, 4), 1 + k % 19, np.uint8), 2) for k in range(24)}
    write_voc(tmp_path / "voc", masks)
    write_voc(tmp_path / "voc", {"v": np.zeros((8, 8))}, split="val")
    cfg = RunConfig.from_profile(
        "smoke", dataset="voc", data_root=str(tmp_path / "voc"), checkpoint_dir=str(tmp_path / "ckpt")
    )
    with pytest.raises(ValueError, match=r"no training image for 15-1 overlapped step 5 \(tvmonitor\)"):
        check_steps(cfg, ["15-1"], ["overlapped"])
    assert not list((tmp_path / "ckpt").rglob("*.pt"))  # nothing trained


def test_run_config_options_are_typed_and_folders_absolute(tmp_path, monkeypatch):
    from incseg_lib.config import RunConfig

    with pytest.raises(ValueError, match="option lr='abc' is not a number"):
        RunConfig.from_profile("cpu", lr="abc")
    with pytest.raises(ValueError, match="option epochs='abc' is not a whole number"):
        RunConfig.from_profile("cpu", epochs="abc")
    assert RunConfig.from_profile("cpu", epochs="3", lr="0.5").epochs == 3
    for bad, match in (
        (dict(lr="nan"), "lr must be a positive, finite learning rate, got nan"),
        (dict(lr_next="inf"), "lr_next must be a positive, finite"),
        (dict(max_train_images=-5), "max_train_images must be a whole number >= 0, got -5"),
        (dict(checkpoint_every=-1), "checkpoint_every must be"),
        (dict(batch_size=1), "batch_size must be at least 2"),
    ):
        with pytest.raises(ValueError, match=match):
            RunConfig.from_profile("cpu", **bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' but this machine has no CUDA GPU"):
            RunConfig.from_profile("cpu", device="cuda")
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig.from_profile("smoke", data_root="data/shapes", checkpoint_dir="ck", run_dir="runs/x")
    assert cfg.data_root == str(tmp_path / "data" / "shapes") and cfg.checkpoint_dir == str(tmp_path / "ck")
    assert cfg.run_dir == str(tmp_path / "runs" / "x")  # records name it absolute


def test_a_relative_incseg_home_is_stored_absolute_and_a_file_home_is_named(tmp_path, monkeypatch):
    from incseg_lib.config import RunConfig
    from incseg_lib.env import default_home

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INCSEG_HOME", "home")
    assert default_home() == tmp_path / "home"
    cfg = RunConfig.from_profile("smoke")
    assert Path(str(cfg.checkpoint_path)).is_absolute() and str(cfg.checkpoint_path).startswith(str(tmp_path))
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("INCSEG_HOME", "afile")
    with pytest.raises(ValueError, match="INCSEG_HOME=afile is a file, not a folder"):
        default_home()


def test_incseg_step_names_bad_options_instead_of_a_traceback(tmp_path, capsys):
    from incseg_lib.cli import main

    base = ["step", "--profile", "smoke", "--task", "15-5"]
    for opts, want in (
        (["-p", "lr", "abc"], "option lr='abc' is not a number"),
        (["-p", "epochs", "abc"], "option epochs='abc' is not a whole number"),
        (["-p", "profile", "cpu"], "-p profile would conflict with the command's --profile"),
    ):
        assert main(base + opts) == 2
        assert want in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(base + ["--out", str(tmp_path / "afile")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["suite", "--threads", "-1"]) == 2
    assert "--threads -1" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folders_are_named(tmp_path, capsys):
    from incseg_lib.cli import main

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["step", "--profile", "smoke", "--task", "15-5", "--out", str(ro / "x")]) == 2
        assert "cannot be created" in capsys.readouterr().err
        assert main(["suite", "--profile", "smoke", "--only", "06", "--out", str(ro)]) == 2
        assert "is not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


def test_student_copies_are_written_all_or_nothing(tmp_path):
    from incseg_lib.notebooks import write_student_copies

    out = tmp_path / "student"
    out.mkdir()
    (out / "03_exemplars_smib.ipynb").write_text("mine")
    with pytest.raises(FileExistsError, match="1 student copies exist already.*03_exemplars_smib.ipynb"):
        write_student_copies(out)
    assert sorted(p.name for p in out.iterdir()) == ["03_exemplars_smib.ipynb"]  # nothing else written
    assert (out / "03_exemplars_smib.ipynb").read_text() == "mine"


def test_a_total_memory_budget_is_not_called_per_class():
    from incseg_lib.findings import replay_findings

    plan = {"tasks": ["15-1"], "settings": ["overlapped"], "methods": ["mib"], "sizes": [10, 50]}
    texts = [f.text for f in replay_findings(plan, mode="total")]
    assert texts[0] == "15-1 overlapped: SMiB (10 images in all) keeps more old-class mIoU than MiB"
    assert not any("/class" in t for t in texts)


def _sleeper(folder: Path) -> None:
    long = "import pathlib, time\npathlib.Path(run_dir, 'started').touch()\nfor _ in range(3000):\n    time.sleep(0.1)"
    finish = "pathlib.Path(run_dir, 'finished').touch()"
    for name in ("01_long.ipynb", "02_queued.ipynb"):
        write_notebook(folder / name, long, finish)


def test_ctrl_c_stops_the_suite_within_seconds_and_says_where_its_results_are(tmp_path):
    folder, run = tmp_path / "nbs", tmp_path / "run"
    _sleeper(folder)
    env = {**os.environ, "INCSEG_NOTEBOOKS": str(folder)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "incseg_lib.cli", "suite", "--profile", "smoke", "--jobs", "1", "--out", str(run)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell without job control starts background jobs with SIGINT ignored, and the child
        # would inherit that: give it the default a terminal's Ctrl-C meets
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while not (run / "started").exists():
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    took = time.time() - t0
    assert proc.returncode == 130, (out, err)
    assert took < 30, f"the suite took {took:.0f}s to stop"
    assert not (run / "finished").exists()  # the cell was interrupted, not run to its end
    suite = json.loads((run / "suite.json").read_text())
    assert suite["state"] == "interrupted"
    status = suite["status"]
    assert status["01_long.ipynb"].startswith("interrupted") and status["02_queued.ipynb"] == "not run (interrupted)"
    assert "interrupted" in (run / "report" / "index.html").read_text()
    assert str(run) in err and "reuses every finished checkpoint" in err


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_the_suite_like_ctrl_c(tmp_path, sig):
    """A batch scheduler's stop or a closed SSH session: kernels stopped, suite.json ``interrupted``
    naming the signal, the report written."""
    folder, run = tmp_path / "nbs", tmp_path / "run"
    _sleeper(folder)
    proc = subprocess.Popen(
        [sys.executable, "-m", "incseg_lib.cli", "suite", "--profile", "smoke", "--jobs", "1", "--out", str(run)],
        cwd=REPO,
        env={**os.environ, "INCSEG_NOTEBOOKS": str(folder)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (run / "started").exists():
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    t0 = time.time()
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, (out, err)
    assert time.time() - t0 < 30 and not (run / "finished").exists()
    suite = json.loads((run / "suite.json").read_text())
    assert suite["state"] == "interrupted" and suite["signal"] == sig
    assert suite["status"]["01_long.ipynb"].startswith("interrupted")
    assert "interrupted" in (run / "report" / "index.html").read_text()
    assert f"interrupted ({sig})" in err and str(run) in err


def test_a_full_disk_while_writing_an_executed_notebook_leaves_a_whole_file_state_and_report(tmp_path, monkeypatch):
    from incseg_lib import suite as suite_mod
    from incseg_lib.store import DiskFull

    folder, run = tmp_path / "nbs", tmp_path / "run"
    write_notebook(folder / "01_small.ipynb", "x = 1", "y = 2")
    real, calls = suite_mod.write_executed_notebook, []

    def full_after_two(text, path):
        calls.append(path)
        if len(calls) > 2:
            raise DiskFull(path.parent, "the executed notebook", len(text), 0)
        real(text, path)

    monkeypatch.setattr(suite_mod, "write_executed_notebook", full_after_two)
    with pytest.raises(suite_mod.SuiteError, match="no space left in"):
        suite_mod.run_suite("smoke", out=run, notebooks=folder, jobs=1, threads=1)
    json.loads((run / "notebooks" / "01_small.ipynb").read_text())  # the last whole copy, valid JSON
    assert not list((run / "notebooks").glob("*.tmp*"))
    suite = json.loads((run / "suite.json").read_text())
    assert suite["state"] == "failed" and "no space left" in suite["status"]["01_small.ipynb"]
    assert (run / "report" / "index.html").is_file()


def _read_only_view(src: Path, dst: Path) -> bool:
    """A read-only bind mount of ``src`` at ``dst`` (what a lab's shared folder is); False where
    this machine does not allow mounts."""
    dst.mkdir(parents=True)
    ok = subprocess.run(["mount", "--bind", str(src), str(dst)], capture_output=True).returncode == 0
    if ok and subprocess.run(["mount", "-o", "remount,ro,bind", str(dst)], capture_output=True).returncode != 0:
        subprocess.run(["umount", str(dst)], capture_output=True)
        ok = False
    return ok


def test_finished_steps_in_a_read_only_folder_are_reused(tmp_path, shapes_root, tiny_cfg):
    """A lab hands students a read-only folder of trained steps: step 0, MiB and SDR (whose step-0
    prototypes are made beside step 0 the first time) are reused and evaluated, nothing is written
    there, and the caches go to a writable folder."""
    from incseg_lib.experiment import train_step

    quiet = dict(progress=False)
    cfg = tiny_cfg(run_dir=str(tmp_path / "run"))
    want = [
        train_step(cfg, step=s, method=m, **quiet).record["miou_all"] for s, m in ((0, "step0"), (1, "mib"), (1, "sdr"))
    ]
    ro = tmp_path / "ro"
    if not _read_only_view(tmp_path / "ckpt", ro):
        pytest.skip("this machine does not allow a read-only bind mount")
    try:
        rcfg = cfg.replace(checkpoint_dir=str(ro), run_dir=str(tmp_path / "student-run"))
        got = [
            train_step(rcfg, step=s, method=m, **quiet).record["miou_all"]
            for s, m in ((0, "step0"), (1, "mib"), (1, "sdr"))
        ]
        assert got == want
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_a_corrupt_importance_file_is_named_moved_aside_and_rebuilt(tmp_path, shapes_root, said, tiny_cfg):
    from incseg_lib.experiment import checkpoint_file, train_step
    from incseg_lib.regularizers import importance_file, load_importance

    cfg = tiny_cfg(run_dir=str(tmp_path / "run"))
    quiet = dict(progress=False, record=False)
    train_step(cfg, step=0, method="step0", **quiet)
    imp = importance_file(checkpoint_file(cfg, 0, "ewc"))
    imp.write_bytes(imp.read_bytes()[:1000])  # truncated: a copy or a full disk
    said.clear()
    train_step(cfg, step=1, method="ewc", **quiet)
    text = "\n".join(said)
    assert f"checkpoint {imp} is unreadable" in text and "moved aside" in text
    assert list(imp.parent.glob("step-0.importance.pt.corrupt-*"))
    assert not list(imp.parent.glob("step-0.pt.corrupt-*")) and "step-0.pt removed" in text  # healthy: not kept
    assert set(load_importance(checkpoint_file(cfg, 0, "ewc"))) == {"fisher", "pi", "pi_zenke", "rw"}  # rebuilt


def test_the_viewer_names_a_record_it_cannot_show_and_shows_the_others(
    tmp_path, shapes_root, monkeypatch, capsys, tiny_cfg
):
    import matplotlib

    matplotlib.use("Agg")
    from incseg_lib import results, viz
    from incseg_lib.experiment import train_step

    monkeypatch.setenv("INCSEG_PROGRESS", "1")
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # no widgets: the static gallery
    cfg = tiny_cfg(run_dir=str(tmp_path / "run"))
    good = train_step(cfg, step=0, method="step0", progress=False).record
    broken = tmp_path / "broken" / "step-1.pt"
    broken.parent.mkdir()
    broken.write_bytes(Path(good["checkpoint"]).read_bytes()[:5000])  # truncated
    base = {k: v for k, v in good.items() if not k.startswith("_")}
    later = [
        {**base, "method": "mib", "step": 1, "checkpoint": str(broken)},
        {**base, "method": "ft", "step": 1, "checkpoint": str(tmp_path / "gone" / "step-1.pt")},
    ]
    for r in later:
        results.record(tmp_path / "run", **r)
    fig = viz.results_viewer(results.load(tmp_path / "run"), images=[0])
    out = capsys.readouterr().out
    assert "cannot show" in out and "step-1.pt is unreadable" in out and "is not on this machine" in out
    assert "step 0" in fig.axes[0].figure._suptitle.get_text()  # the record that can be shown is shown


def test_corrupt_side_files_are_named_moved_aside_and_rebuilt(tmp_path):
    """A truncated exemplar memory, synthetic-memory manifest or pseudo-label manifest is named,
    moved aside and rebuilt instead of blocking every re-run."""
    from incseg_lib.exemplars import ExemplarMemory, ReplayConfig
    from incseg_lib.inversion import SyntheticMemory
    from incseg_lib.seam import PseudoLabels
    from incseg_lib.store import CorruptFile

    mem = tmp_path / "memory.json"
    ExemplarMemory(ReplayConfig(), seed=0).save(mem)
    assert ExemplarMemory.load(mem).seed == 0
    mem.write_text(mem.read_text()[:20])  # truncated
    with pytest.raises(
        CorruptFile, match=r"memory.json is unreadable \(exemplar memory: .*moved aside to memory.json.corrupt-"
    ):
        ExemplarMemory.load(mem)
    assert not mem.exists() and list(tmp_path.glob("memory.json.corrupt-*"))
    for cls, what in ((SyntheticMemory, "synthetic memory manifest"), (PseudoLabels, "pseudo-label manifest")):
        folder = tmp_path / cls.__name__
        folder.mkdir()
        (folder / "manifest.json").write_text('{"key": {"a": 1}, "batc')
        with pytest.warns(UserWarning, match=f"manifest.json is unreadable \\({what}"):
            store = cls(folder, {"a": 1})
        assert not store.complete and list(folder.glob("manifest.json.corrupt-*"))
        (folder / "manifest.json").write_text("[1, 2]")  # valid JSON, not a manifest
        with pytest.warns(UserWarning, match="not a manifest"):
            cls(folder, {"a": 1})


def test_a_model_reused_by_another_notebook_is_recorded_for_it_too(tmp_path, shapes_root, said, tiny_cfg):
    """Two notebooks of one run reuse a model: whichever evaluates first, each keeps its own record
    (the same numbers, copied), so the report lists the model under the lowest-numbered notebook."""
    from incseg_lib import results
    from incseg_lib.experiment import train_step
    from incseg_lib.report import records_by_notebook

    cfg = tiny_cfg(run_dir=str(tmp_path / "run"))
    quiet = dict(progress=False)
    first = train_step(cfg, step=0, method="step0", notebook="05_weak", **quiet).record
    said.clear()
    copy = train_step(cfg, step=0, method="step0", notebook="02_steps", progress=False).record
    assert any("eval reused" in str(x) for x in said)  # not evaluated again
    assert copy["notebook"] == "02_steps" and copy["reused_from"] == Path(first["_file"]).name
    assert copy["miou_all"] == first["miou_all"] and copy["iou"] == first["iou"] and copy["_file"] != first["_file"]
    again = train_step(cfg, step=0, method="step0", notebook="02_steps", **quiet).record
    assert again["_file"] == copy["_file"]  # the notebook's own record is reused, not copied again
    back = train_step(cfg, step=0, method="step0", notebook="05_weak", **quiet).record
    assert back["_file"] == first["_file"]  # and so is the first notebook's, though a copy is newer
    recs = results.load(cfg.run_dir)
    assert len(recs) == 2 and list(records_by_notebook(recs)) == ["02_steps"]
