"""Exercises and student copies: every solved exercise passes its check, every student
copy's check raises ExerciseNotDone, and the notebook files sync both ways."""

import json
import shutil

import pytest

from incseg_lib.exercises import EXERCISES, ExerciseNotDone, ExerciseWrong, check
from incseg_lib.notebooks import (
    SyncConflict,
    exercise_cells,
    render,
    setup_cell,
    strip_solutions,
    sync_all,
    write_student_copies,
)
from incseg_lib.suite import find_notebooks

NOTEBOOKS = find_notebooks()


def _run_pair(exercise: str, check_src: str) -> None:
    ns: dict = {}
    exec(compile(exercise, "<exercise>", "exec"), ns)
    exec(compile(check_src, "<check>", "exec"), ns)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_solved_exercises_pass_their_checks(nb, capsys):
    pairs = exercise_cells(nb.read_text())
    assert 2 <= len(pairs) <= 3, f"{nb.name}: {len(pairs)} exercises"
    for ex, chk in pairs:
        _run_pair(ex, chk)
    assert capsys.readouterr().out.count(": correct") == len(pairs)


def test_student_copies_fail_until_solved(tmp_path):
    paths = write_student_copies(tmp_path / "student")
    assert [p.stem for p in paths] == [nb.stem for nb in NOTEBOOKS]
    names = set()
    for p in paths:
        text = p.read_text()
        assert "BEGIN SOLUTION" not in text and "ExerciseNotDone" not in text
        for ex, chk in exercise_cells(text):
            with pytest.raises(ExerciseNotDone, match="not done yet"):
                _run_pair(ex, chk)
            names.add(chk.split('check("')[1].split('"')[0])
    assert names == set(EXERCISES)  # every check is used by some notebook
    with pytest.raises(FileExistsError, match="--force"):
        write_student_copies(tmp_path / "student")
    assert write_student_copies(tmp_path / "student", force=True)


def test_a_wrong_answer_says_what_differs():
    with pytest.raises(ExerciseWrong, match="learning rate at iteration"):
        check("poly_lr", lambda base, it, total, power=0.9: base)
    with pytest.raises(ExerciseWrong, match="shape"):
        check("max_norm", lambda cam, eps=1e-5: cam[0])
    with pytest.raises(KeyError, match="unknown exercise"):
        check("nope", print)


def test_solution_markers_must_balance():
    assert (
        strip_solutions("def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n")
        == 'def f():\n    raise NotImplementedError("exercise: write this part")\n'
    )
    with pytest.raises(ValueError, match="without"):
        strip_solutions("x = 1\n# END SOLUTION\n")
    with pytest.raises(ValueError, match="without"):
        strip_solutions("# BEGIN SOLUTION\nx = 1\n")
    with pytest.raises(ValueError, match=r"^03_x.py: line 2: # BEGIN SOLUTION inside the .* opened at line 1"):
        strip_solutions("# BEGIN SOLUTION\n# BEGIN SOLUTION\n", "03_x.py")


def test_markers_with_a_note_are_solutions_too():
    """``# BEGIN SOLUTION (exercise 1)`` or ``#end solution`` mark a block like the bare markers."""
    text = "def f(x):\n    # BEGIN SOLUTION (exercise 1)\n    return torch.softmax(x, dim=1)\n    #end solution: done\n"
    assert "softmax" not in strip_solutions(text) and "NotImplementedError" in strip_solutions(text)


def _notebook_folder(tmp_path, body: str):
    folder = tmp_path / "notebooks"
    folder.mkdir(parents=True)
    (folder / "01_x.py").write_text("# %%\n" + body)
    return folder


def test_a_copy_that_would_keep_a_solution_is_refused_naming_the_notebook(tmp_path):
    """A marker the stripper does not know (``# BEGIN-SOLUTION``) leaves its block in the copy: the
    check of the finished copy refuses it, and nothing is written."""
    body = "def f(x):\n    # BEGIN-SOLUTION\n    return x.clamp(min=0) * 2\n    # END-SOLUTION\n"
    with pytest.raises(ValueError, match="01_x.py: the student copy would still hold a solution"):
        write_student_copies(tmp_path / "out", folder=_notebook_folder(tmp_path / "a", body))
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="01_x.py: line 2: # BEGIN SOLUTION without"):
        write_student_copies(tmp_path / "out", folder=_notebook_folder(tmp_path / "b", "# BEGIN SOLUTION\nx = 1\n"))
    fine = "def f(x):\n    # BEGIN SOLUTION (exercise 1)\n    return x.clamp(min=0) * 2\n    # END SOLUTION\n"
    copy = write_student_copies(tmp_path / "out", folder=_notebook_folder(tmp_path / "c", fine))[0].read_text()
    assert "clamp" not in copy and "NotImplementedError" in copy


def test_student_copies_refuse_an_ipynb_edited_after_its_source(tmp_path):
    folder = _notebook_folder(tmp_path, "x = 1\n")
    nb = json.loads(render(folder / "01_x.py"))
    nb["cells"][0]["source"] = "x = 2  # edited in Jupyter only\n"
    (folder / "01_x.ipynb").write_text(json.dumps(nb))
    with pytest.raises(SyncConflict, match="01_x.ipynb differ from their .py sources.*make notebooks"):
        write_student_copies(tmp_path / "out", folder=folder)
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran"}]
    nb["cells"][0]["source"] = "x = 1"  # run in Jupyter, not edited: outputs are no edit
    (folder / "01_x.ipynb").write_text(json.dumps(nb))
    assert "x = 1" in write_student_copies(tmp_path / "out", folder=folder)[0].read_text()


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_comes_from_pyproject(nb):
    src = nb.with_suffix(".py").read_text()
    assert setup_cell() in src, f"{nb.name}: run `make notebooks` to re-render its setup cell from pyproject.toml"
    assert 'SOURCE = "git+https://github.com/incseg/incseg@v0.1.0"' in setup_cell()


def _project(tmp_path):
    """A scratch project: pyproject, version and two notebooks, as sync_all expects."""
    root = tmp_path / "proj"
    (root / "incseg_lib").mkdir(parents=True)
    (root / "incseg_lib" / "__init__.py").write_text('__version__ = "9.9.9"\n')
    (root / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[project.urls]\nRepository = "https://example.org/fork"\n'
    )
    nbdir = root / "notebooks"
    nbdir.mkdir()
    for nb in NOTEBOOKS[:2]:
        shutil.copy(nb.with_suffix(".py"), nbdir)
        shutil.copy(nb, nbdir)
    return nbdir


def test_sync_goes_both_ways_and_refuses_a_double_edit(tmp_path):
    nbdir = _project(tmp_path)
    py, nb = sorted(nbdir.glob("01_*.py"))[0], sorted(nbdir.glob("01_*.ipynb"))[0]
    written = sync_all(nbdir)  # the fork's address goes into every setup cell
    assert py in written and "git+https://example.org/fork@v9.9.9" in py.read_text()
    assert nb.read_text() == render(py) and sync_all(nbdir) == []

    py.write_text(py.read_text().replace("## Expected findings", "## Expected findings (edited in .py)"))
    assert sync_all(nbdir) == [nb] and "edited in .py" in nb.read_text()

    data = json.loads(nb.read_text())  # edited in Jupyter: a cell changed, an output saved
    cell = next(c for c in data["cells"] if c["cell_type"] == "markdown")
    cell["source"] = "# edited in Jupyter\n"
    code = next(c for c in data["cells"] if c["cell_type"] == "code")
    code["outputs"], code["execution_count"] = [{"output_type": "stream", "name": "stdout", "text": "hi"}], 1
    nb.write_text(json.dumps(data))
    assert set(sync_all(nbdir)) == {py, nb}
    assert "# edited in Jupyter" in py.read_text() and '"outputs": []' in nb.read_text()  # outputs stripped
    assert nb.read_text() == render(py)

    py.write_text(py.read_text() + "\n# %%\nx = 1\n")
    data = json.loads(nb.read_text())
    data["cells"][-1]["source"] = "y = 2\n"
    nb.write_text(json.dumps(data))
    with pytest.raises(SyncConflict, match="--prefer"):
        sync_all(nbdir)
    assert "y = 2" in nb.read_text() and "x = 1" in py.read_text()  # nothing overwritten
    sync_all(nbdir, prefer="ipynb")
    assert "y = 2" in py.read_text() and "x = 1" not in py.read_text()
