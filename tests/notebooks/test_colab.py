"""The Colab code path without Colab: the package built as a wheel, installed by a notebook's
setup cell into a fresh virtual environment, with a stand-in ``google.colab`` and INCSEG_SOURCE
pointing at the wheel; data, checkpoints and results land under INCSEG_HOME, not the working folder."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from incseg_lib.suite import find_notebooks

REPO = Path(__file__).resolve().parents[2]

STAND_IN = '''"""Stand-in for Colab's google.colab (tests only)."""
'''
DRIVE = """MOUNTED = []


def mount(path, **kwargs):
    import os
    os.makedirs(os.path.join(path, "MyDrive"), exist_ok=True)
    MOUNTED.append(path)
"""


def _stand_in(root: Path) -> Path:
    pkg = root / "google" / "colab"  # no google/__init__.py: a namespace package beside protobuf's
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(STAND_IN)
    (pkg / "drive.py").write_text(DRIVE)
    return root


def _fresh_venv(tmp: Path) -> Path:
    """A new venv that sees this environment's dependencies (torch, papermill, ...) but not incseg:
    a folder of links to every site-packages entry except incseg's, on the new venv's path."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True
    )  # pip comes with the links
    py = tmp / "venv" / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    deps = tmp / "deps"
    deps.mkdir()
    here = Path(sysconfig.get_paths()["purelib"])
    for entry in here.iterdir():
        if entry.name.startswith(("incseg", "__editable__", "_incseg")) or entry.suffix == ".pth":
            continue
        (deps / entry.name).symlink_to(entry)
    (site / "zz_incseg_test_deps.pth").write_text(str(deps) + "\n")
    return py


@pytest.mark.notebooks
def test_notebook_installs_the_wheel_and_writes_under_incseg_home(tmp_path):
    dist = tmp_path / "dist"
    src = tmp_path / "src"  # built from a copy: setuptools writes build/ and *.egg-info into the source folder
    top = {".venv", ".git", "checkpoints", "data", "runs", "build", "dist", ".pytest_cache", "student"}

    def skip(folder, names):  # the checkout's large or generated folders, at its top level only
        return [
            n for n in names if (Path(folder) == REPO and n in top) or n.endswith(".egg-info") or n == "__pycache__"
        ]

    shutil.copytree(REPO, src, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
        check=True,
    )
    wheel = next(dist.glob("incseg-*.whl"))
    py = _fresh_venv(tmp_path)
    probe = subprocess.run([str(py), "-c", "import incseg_lib"], cwd=tmp_path, capture_output=True, text=True)
    assert probe.returncode != 0  # the fresh venv has no incseg before the setup cell runs

    work = tmp_path / "unrelated"
    work.mkdir()
    home = tmp_path / "home"
    env = {
        **os.environ,
        "PYTHONPATH": str(_stand_in(tmp_path / "colab")),
        "INCSEG_SOURCE": str(wheel),
        "INCSEG_HOME": str(home),
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "OMP_NUM_THREADS": "1",
    }
    nb = next(p for p in find_notebooks() if p.name.startswith("01_"))
    out = work / "01_executed.ipynb"
    run = subprocess.run(
        [
            str(py),
            "-m",
            "papermill",
            str(nb),
            str(out),
            "-p",
            "smoke",
            "True",
            "-p",
            "lrs",
            "0.05",
            "--no-progress-bar",
            "-k",
            "python3",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    cells = json.loads(out.read_text())["cells"]
    setup = next(c for c in cells if "setup" in c["metadata"].get("tags", []))
    texts = [o.get("text", "") for o in setup["outputs"]]
    printed = "".join("".join(t) if isinstance(t, list) else t for t in texts)
    assert f"installed incseg 0.1.0 ({wheel})" in printed, printed
    assert str(tmp_path / "venv") in printed  # the kernel imported the installed wheel, not the checkout
    assert (home / "data" / "shapes").is_dir()  # data, checkpoints and results under INCSEG_HOME
    assert (home / "checkpoints").is_dir()
    assert list((home / "runs" / "01_offline_bisenet_tuning" / "results").glob("*.json"))
    assert sorted(p.name for p in work.iterdir()) == ["01_executed.ipynb"]  # nothing in the working folder


@pytest.mark.notebooks
def test_setup_cell_names_the_variable_when_the_source_is_unreachable(tmp_path):
    from incseg_lib.notebooks import setup_cell

    code = setup_cell().split("\n", 1)[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(_stand_in(tmp_path / "colab")),
        "INCSEG_SOURCE": str(tmp_path / "no-such-wheel-0.1.0-py3-none-any.whl"),
        "PIP_NO_INDEX": "1",
    }
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "set INCSEG_SOURCE" in run.stderr and "no-such-wheel" in run.stderr
    plain = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "INCSEG_SOURCE": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.returncode == 0 and plain.stdout == ""  # not on Colab: nothing installed, nothing said


def test_drive_flag_mounts_drive_and_moves_incseg_home(tmp_path, monkeypatch):
    import importlib

    from incseg_lib import colab
    from incseg_lib.env import runs_root

    monkeypatch.syspath_prepend(str(_stand_in(tmp_path / "colab")))
    importlib.invalidate_caches()
    monkeypatch.delenv("INCSEG_HOME", raising=False)
    info = colab.setup("a-source", drive=True, home=str(tmp_path / "drive" / "incseg"))
    from google.colab import drive

    assert drive.MOUNTED == [colab.DRIVE_MOUNT]
    assert os.environ["INCSEG_HOME"] == str(tmp_path / "drive" / "incseg") == info["home"]
    assert runs_root() == tmp_path / "drive" / "incseg" / "runs"
    assert info["version"] == "0.1.0" and info["source"] == "a-source"
    monkeypatch.delitem(sys.modules, "google.colab.drive")
    monkeypatch.delitem(sys.modules, "google.colab")
