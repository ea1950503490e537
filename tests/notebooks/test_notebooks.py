"""The notebooks: clean, in sync with their jupytext sources, and the smoke suite end to end."""

import json

import pytest

from incseg_lib import findings, results
from incseg_lib.notebooks import render
from incseg_lib.suite import SuiteError, find_notebooks, notebooks_dir, run_suite

NOTEBOOKS = find_notebooks()


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_in_sync(nb):
    data = json.loads(nb.read_text())
    code = [c for c in data["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), "commit notebooks without outputs"
    assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in data["cells"]) == 1
    src = nb.with_suffix(".py")
    assert src.is_file(), f"{nb.name} has no jupytext source"
    assert nb.read_text() == render(src), f"{nb.name} is out of sync with {src.name}: run `make notebooks`"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_line_is_read_by_papermill(nb):
    """papermill drops a parameter whose comment holds '=' (e.g. '>= 1') with only a warning."""
    from papermill.translators import PythonTranslator

    cell = next(c for c in json.loads(nb.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    lines = [ln for ln in "".join(cell["source"]).splitlines() if ln.strip() and not ln.startswith("#")]
    parsed = PythonTranslator.inspect({"source": "".join(cell["source"])})
    assert [p.name for p in parsed] == [ln.split(":")[0] for ln in lines]


def test_unknown_parameter_is_refused_before_running(tmp_path):
    with pytest.raises(SuiteError, match="declares a parameter 'epoch'; did you mean 'epochs' in 01, 02, 03"):
        run_suite("smoke", out=tmp_path / "run", extra={"epoch": 3})
    assert not (tmp_path / "run").exists()  # no empty run folder left behind


def test_suite_parameters_go_to_the_notebooks_that_declare_them():
    from incseg_lib.suite import route_parameters

    routed = route_parameters(NOTEBOOKS, {"profile": "smoke", "tasks": "15-5", "pretrained": "none", "epochs": 2})
    by = {nb.stem[:2]: p for nb, p in routed.items()}
    assert by["02"]["tasks"] == "15-5" and by["03"]["tasks"] == "15-5" and "tasks" not in by["06"]
    assert by["01"]["pretrained"] == "none" and "pretrained" not in by["06"]
    assert all(p["profile"] == "smoke" for p in by.values())
    with pytest.raises(SuiteError, match="epochs='abc' does not fit 01_offline_bisenet_tuning.ipynb.*int"):
        route_parameters(NOTEBOOKS, {"epochs": "abc"})
    # a number given to a text parameter is passed as text (-p methods 1 is the string "1")
    assert route_parameters(NOTEBOOKS[1:2], {"tasks": 15})[NOTEBOOKS[1]]["tasks"] == "15"


def test_conflicting_suite_options_are_refused(tmp_path):
    with pytest.raises(SuiteError, match="-p profile would silently override the suite's --profile"):
        run_suite("smoke", out=tmp_path / "a", extra={"profile": "cpu"})
    with pytest.raises(SuiteError, match="both --data-root and -p data_root"):
        run_suite("smoke", data_root="x", out=tmp_path / "b", extra={"data_root": "y"})
    (tmp_path / "file").write_text("x")
    with pytest.raises(SuiteError, match="is a file"):
        run_suite("smoke", out=tmp_path / "file", only=["06"])


def test_run_folders_are_created_exclusively(tmp_path, monkeypatch):
    from incseg_lib.suite import new_run_dir

    monkeypatch.setenv("INCSEG_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    a, b = new_run_dir(None, "demo"), new_run_dir(None, "demo")  # same second: two folders
    assert a != b and a.is_dir() and b.is_dir()
    assert a.parent == tmp_path / "home" / "runs"  # under the runs root, not the working directory


def test_every_notebook_writes_under_the_runs_root(tmp_path, monkeypatch):
    """Run by hand from notebooks/ (Jupyter), a notebook's default results folder is the runs root's,
    which is where notebook 06 and the suite look."""
    from incseg_lib import results
    from incseg_lib.env import notebook_run_dir, runs_root

    monkeypatch.setenv("INCSEG_HOME", str(tmp_path))
    monkeypatch.chdir(notebooks_dir())
    assert runs_root() == tmp_path / "runs"
    assert notebook_run_dir("02_mib_incremental") == str(tmp_path / "runs" / "02_mib_incremental")
    assert notebook_run_dir("02_mib_incremental", "elsewhere") == "elsewhere"
    for nb in NOTEBOOKS:
        src = nb.with_suffix(".py").read_text()
        if "run_dir: str" in src and nb.stem[:2] != "06":  # its own folder by name, through its session
            opened = f'open_notebook("{nb.stem}", globals())' in src
            assert opened or f'notebook_run_dir("{nb.stem}", run_dir)' in src, nb.name
    rec = results.record(
        str(tmp_path / "runs" / "02_mib_incremental"),
        dataset="shapes",
        task="15-5",
        setting="overlapped",
        method="ft",
        step=1,
        notebook="02_mib_incremental",
        backbone="resnet18",
        iou={},
        miou_all=0.1,
        miou_old=0.1,
        miou_new=0.0,
        pixel_acc=0.5,
    )
    assert results.find_runs() == [rec.parents[1]]


@pytest.mark.notebooks
def test_smoke_suite_end_to_end(tmp_path):
    import os

    here = os.getcwd()
    run = run_suite("smoke", out=tmp_path / "run")
    assert os.getcwd() == here  # two notebooks at a time leave the caller where it was
    for nb in NOTEBOOKS:
        assert (run / "notebooks" / nb.name).is_file()
        assert (run / "report" / f"{nb.stem}.html").is_file()
    recs = results.load(run)
    assert recs, "the suite recorded no result"
    offline = [r for r in recs if r["notebook"] == "01_offline_bisenet_tuning"]
    assert len(offline) == 2  # the smoke grid: two learning rates
    for r in offline:
        assert set(r["iou"]) >= {"background", "disc"} and 0 <= r["miou_all"] <= 1
        assert r["train_seconds"] > 0 and r["images_per_second"] > 0
    incremental = results.final_steps([r for r in recs if r["notebook"] == "02_mib_incremental"])
    table = results.incremental_table(incremental)
    assert set(table.index) == {"FT", "MiB", "PLOP", "SDR", "Joint"}  # the smoke plan + Joint
    assert {c[1] for c in table.columns} == {"15-5", "15-1"}
    assert {r["method"] for r in incremental if r["task"] == "15-5"} == {"ft", "mib", "joint"}  # PLOP/SDR: 15-1 only
    steps = {(r["task"], r["method"]): r["step"] for r in incremental}
    assert steps[("15-1", "mib")] == 5 and steps[("15-5", "mib")] == 1
    mem = results.memory_table(recs)
    assert ("SMiB", "2") in mem.index and ("FT + memory", "1") in mem.index and ("MiB", "-") in mem.index
    assert mem.loc[("SMiB", "2"), ("shapes", "15-5", "overlapped", "memory images")] == 30  # 2 x 15 classes
    di = {r["method"]: r for r in results.final_steps(recs) if r["notebook"] == "04_deepinversion_synthesis"}
    assert {"mib+di", "ft+di"} <= set(di)  # its references (MiB, FT, SMiB 1/class) are reused from 02 and 03
    syn = di["mib+di"]["synthetic"]
    assert syn["images"] == 15 and syn["seconds"] > 0 and syn["settings"]["resolution"] == 48  # smoke: 1 x 15
    rows = list(results.incremental_table(recs).index)  # display labels: the aggregation, never the run code
    assert {"MiB+DI (LSE)", "MiB+DI (scale-aware)"} <= set(rows) and not [r for r in rows if "it-" in r or "px" in r]
    weak = {r["method"]: r for r in results.final_steps(recs) if r["notebook"] == "05_seam_weak_supervision"}
    assert {"mib-s", "ft-s", "joint-s"} <= set(weak)  # FT, MiB and Joint with masks are reused from notebook 02
    js = weak["joint-s"]["joint_weak"]
    assert js["pseudo_images"] > 0 and js["masked_images"] > 0 and js["source"].startswith("joint-s+mib-")
    q = weak["mib-s"]["weak"]
    assert q["used"] == "pcm+fuse" and weak["ft-s"]["weak"]["used"] == "pcm"  # fusion needs an old model
    assert q["images"] > 0 and 0 <= weak["mib-s"]["pseudo_new"] <= 1
    assert (run / "findings" / "05_seam_weak_supervision.json").is_file()
    probing = [r for r in recs if r["notebook"] == "07_probes_frozen_fusion"]
    probes = {(r["method"], r["step"]) for r in probing if r["method"].endswith("|probe")}
    assert {("step0|probe", 0)} | {(f"{m}|probe", s) for m in ("ft", "mib") for s in range(1, 6)} == probes
    last = {r["method"] for r in results.final_steps(probing)}
    assert {"dft", "mib+ewf"} <= last and "step0-prealloc" in {r["method"] for r in probing if r["step"] == 0}
    assert {r["ewf_w"] for r in probing if "ewf_w" in r} >= {0.0, 1.0}
    assert (run / "findings" / "07_probes_frozen_fusion.json").is_file()
    assert "Results" in (run / "report" / "index.html").read_text()
    _report_reads_anywhere(run, recs)
    # every record, suite.json, findings file and the report say what produced them
    fields = {"incseg", "commit", "dirty", "python", "torch", "torchvision", "numpy", "device", "threads"}
    assert all(fields <= set(r["provenance"]) for r in recs)
    assert all(r["decisions"]["eval"]["channels_last"] is False for r in recs)  # 48 px crops: NCHW by the rule
    assert all(r["provenance"]["threads"] == 1 for r in recs)  # two notebooks at a time on 2 cores
    suite = json.loads((run / "suite.json").read_text())
    assert suite["state"] == "done" and fields <= set(suite["provenance"]) and suite["provenance"]["jobs"] >= 1
    meta, _ = findings.load_file(run / "findings" / "02_mib_incremental.json")
    assert fields <= set(meta["provenance"]) and meta["profile"] == "smoke"
    assert "Software and machine" in (run / "report" / "index.html").read_text()
    assert len(results.provenance_table(recs)) == 1  # one run, one software and machine
    assert not list(notebooks_dir().glob("*.ipynb.tmp"))


def _report_reads_anywhere(run, recs):
    """The smoke suite's report as a reader meets it: it opens with notebook 02's step figure and 06's
    last-step galleries; no path of this machine, no "NaN", no run code; every relative link resolves."""
    import re
    import sys
    from pathlib import Path

    from incseg_lib.report import dangling_links

    index = (run / "report" / "index.html").read_text()
    glance = index[index.index("At a glance") : index.index("<h2>Notebooks")]
    figs = re.findall(r'<img src="([^"]+)"', glance)
    assert figs[0] == "figures/02_mib_incremental-1.png" and len(figs) == 3  # 02's steps; 06: 15-5 and 15-1
    assert all((run / "report" / f).stat().st_size > 1000 for f in figs)
    assert glance.count("that each model still labels") == 2  # each gallery's reading
    codes = {r["variant"] for r in recs if r.get("variant")} | {r["method"] for r in recs} - {"offline"}
    for page in sorted((run / "report").glob("*.html")):
        raw = page.read_text()
        text = re.sub(r"data:image/[^\"']+", "", raw)  # images' base64 can spell anything
        prose = re.sub(r'<div class="highlight.*?</div>', "", text, flags=re.S)  # code cells name methods by code
        for path in (str(run), str(Path.cwd()), str(Path.home()), sys.prefix):
            assert path not in text, f"{page.name} shows {path}"
        assert not re.search(r">\s*NaN\s*<", text), f"{page.name} shows NaN in a cell"
        # a variant's code (1pc-class-balanced) anywhere, a method's code (mib) as a whole cell or label
        leaked = sorted(c for c in codes if ("-" in c and c in prose) or f">{c}<" in prose or f" {c}]" in prose)
        assert not leaked, f"{page.name} shows run codes {leaked}"
        assert dangling_links(raw, run / "report") == [], page.name


def test_failing_notebook_names_the_cell(tmp_path):
    from ..helpers.notebook_files import write_notebook

    folder = tmp_path / "nbs"
    write_notebook(folder / "01_broken.ipynb", "x = 1", "raise ValueError('boom')")
    with pytest.raises(SuiteError, match="01_broken.ipynb failed in cell .*ValueError: boom"):
        run_suite("smoke", out=tmp_path / "run", notebooks=folder)
    assert (tmp_path / "run" / "notebooks" / "01_broken.ipynb").is_file()


def test_thread_setting_reaches_the_notebook_kernels(tmp_path, said):
    import nbformat

    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('profile = "smoke"\nrun_dir = ""', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import pathlib, torch\npathlib.Path(run_dir, 'threads.txt').write_text(str(torch.get_num_threads()))"
        ),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "01_threads.ipynb")
    said.clear()
    run = run_suite("smoke", out=tmp_path / "run", notebooks=folder, threads=1, report=False)
    assert (run / "threads.txt").read_text() == "1"
    assert any("1 PyTorch thread(s) per kernel" in s for s in said)


def test_a_killed_kernel_is_named_and_the_report_still_written(tmp_path):
    import nbformat

    folder = tmp_path / "nbs"
    folder.mkdir()
    for name, body in (("01_fine", "x = 1"), ("02_killed", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")):
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell('profile = "smoke"\nrun_dir = ""', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(body),
        ]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{name}.ipynb")
    with pytest.raises(
        SuiteError, match="02_killed.ipynb did not finish: its kernel died, most likely killed for lack of memory"
    ):
        run_suite("smoke", out=tmp_path / "run", notebooks=folder)
    index = (tmp_path / "run" / "report" / "index.html").read_text()
    assert "01_fine" in index and "died" in index
    status = json.loads((tmp_path / "run" / "suite.json").read_text())["status"]
    assert status["01_fine.ipynb"].startswith("done") and status["02_killed.ipynb"].startswith("died")


def test_parallel_lanes_leave_papermill_no_stale_folder(tmp_path):
    """Two lanes must not leave papermill's process-wide file-handler folder pointing at a run folder.

    papermill's execute_notebook saves and restores that folder around itself; two threads restore
    each other's value out of order. A later suite then chdir'd into a deleted folder of an earlier one
    (CI: FileNotFoundError naming another test's temporary folder). Here the earlier value is a
    folder that no longer exists, as pytest leaves it, and the slow notebook keeps writing after the
    quick one has restored.
    """
    import nbformat
    import papermill.iorw

    folder = tmp_path / "nbs"
    folder.mkdir()
    # launch_order starts 02 first: the quick notebook saves the deleted folder, then restores it
    # while the slow one (started second) still writes
    for name, body in (("02_quick", "x = 1"), ("01_slow", "import time\ntime.sleep(4)")):
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell('profile = "smoke"\nrun_dir = ""', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(body),
            nbformat.v4.new_code_cell("z = 3"),
        ]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{name}.ipynb")
    handler = papermill.iorw.papermill_io.get_handler("local")
    gone = str(tmp_path / "deleted-run")
    before = handler.cwd(gone)
    try:
        run = run_suite("smoke", out=tmp_path / "run", notebooks=folder, jobs=2, report=False)
        assert handler.cwd(gone) == gone  # the caller's value is back, not a run folder
    finally:
        handler.cwd(before)
    status = json.loads((run / "suite.json").read_text())["status"]
    assert all(s.startswith("done") for s in status.values()), status


@pytest.mark.notebooks
@pytest.mark.demo
def test_demo_notebook_02_tells_its_story(tmp_path):
    """The default run teaches: notebook 02 in the demo profile on 15-5, at two threads (what it gets
    run alone on 2 cores), reproduces every expected finding its calibration found robust by a wide
    margin, and reports each finding the calibration found inside the noise as varying. Findings
    that held by less than 5 points in every calibration run are reported, not asserted: the
    calibration ran on one CPU vendor, and this test must pass on any x86 machine."""

    run = run_suite("demo", only=["02"], out=tmp_path / "run", extra={"tasks": "15-5"}, threads=2)
    found = findings.load(run)
    # FT forgets; MiB keeps 70%, more than FT, learns more new than FT; Joint; LwF and ILT between FT and MiB
    assert len(found) == 9
    calibration = findings.load_calibration("demo", "shapes")["findings"]
    entry = {r.text: calibration[findings.calibration_key(r.notebook, r.key or r.text)] for r in found}
    robust = [r for r in found if entry[r.text]["verdict"] == "holds" and entry[r.text]["margin"] >= 5]
    assert len(robust) >= 5, entry  # FT's forgetting, MiB against FT and step 0, Joint: the lab's spine
    lines = dict(zip((r.text for r in found), findings.format_lines(found)))
    failed = [lines[r.text] for r in robust if r.status != findings.REPRODUCED]
    failed += [lines[r.text] for r in found if entry[r.text]["verdict"] == "varies" and r.status != findings.VARIES]
    assert not failed, "\n".join(failed)
    # the take-away a student reads is the findings' own sentences, and names what did not run
    nb = json.loads((run / "notebooks" / "02_mib_incremental.ipynb").read_text())
    last = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in nb["cells"][-1].get("outputs", []))
    assert last.count("**Reproduced**") == sum(r.status == findings.REPRODUCED for r in found) >= len(robust)
    assert "This run trained FT, LwF, ILT, MiB and Joint." in last
    assert "EWC, PI, RW, PLOP and SDR are described above but not in this profile's plan" in last


def test_launch_order_starts_the_longest_notebooks_first():
    from pathlib import Path

    from incseg_lib.suite import launch_order

    nbs = [Path(f"{i:02d}_x.ipynb") for i in range(1, 8)]
    assert [p.name[:2] for p in launch_order(nbs, 2)] == ["02", "01", "05", "03", "07", "04", "06"]
    assert launch_order(nbs, 1) == nbs  # one lane: numeric order
    assert [p.name[:2] for p in launch_order(nbs[2:4], 2)] == ["03", "04"]  # --only 03,04
