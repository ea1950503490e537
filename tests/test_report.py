"""The suite's HTML report (incseg_lib.report) on a hand-made run folder: offline, formulas as MathML,
a headline with findings and provenance, each model listed once under the notebook that trained it."""

import json
import re

import nbformat
import pytest

from incseg_lib import findings, results
from incseg_lib.findings import FindingResult
from incseg_lib.report import findings_table, records_by_notebook, row_labels, tex_to_mathml, write_report

from .helpers.records import make_record

PROVENANCE = {
    "incseg": "0.1.0",
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "dirty": False,
    "python": "3.11.7",
    "torch": "2.14.1+test",
    "torchvision": "0.29.1+test",
    "numpy": "2.4.6",
    "platform": "Linux x86_64",
    "device": "cpu: Test CPU, 2 cores",
    "threads": 1,
}
NOTEBOOKS = ("01_offline", "02_mib_incremental", "03_exemplars_smib", "04_deepinversion_synthesis", "05_seam_weak")
# internal run codes and paths a reader must never see
INTERNAL = ("seam-r18-os8-step0-8ep-t0.26", "di-1pc-60+30it-64px", "1pc-class-balanced", "5pc-class-balanced", "/ckpt/")


def _record(run, notebook, task, method, step, miou, checkpoint, **extra):
    old, new, all_ = miou
    results.record(
        run,
        notebook=notebook,
        dataset="shapes",
        task=task,
        setting="offline" if task == "offline" else "overlapped",
        method=method,
        step=step,
        backbone="resnet18",
        iou={"background": 0.9},
        miou_all=all_,
        miou_old=old,
        miou_new=new,
        pixel_acc=0.9,
        eval_protocol="full",
        checkpoint=f"/ckpt/{checkpoint}.pt",
        train_seconds=42.0,
        device="cpu",
        provenance=PROVENANCE,
        config={"lr": 0.03, "run_dir": str(run)},
        **extra,
    )


def _notebook(path, title, math=False):
    nb = nbformat.v4.new_notebook()
    text = f"# {title}\n\nThe loss " + ("$\\alpha = \\sum_i x_i$ sums over pixels." if math else "is plain.")
    code = nbformat.v4.new_code_cell("print('hi')", execution_count=1)
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nb.cells = [nbformat.v4.new_markdown_cell(text), code]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder: suite.json, records of five notebooks (03 re-evaluates 02's MiB), findings, notebooks."""
    run = tmp_path_factory.mktemp("run")
    status = {
        "01_offline.ipynb": "done in 10s",
        "02_mib_incremental.ipynb": "done in 601s",
        "03_exemplars_smib.ipynb": "failed in cell 5: ValueError: boom",
        "04_deepinversion_synthesis.ipynb": "done in 252s",
        "05_seam_weak.ipynb": "interrupted after 3s",
    }
    suite = {
        "profile": "demo",
        "parameters": {"profile": "demo"},
        "notebooks": list(status),
        "state": "interrupted",
        "status": status,
        "provenance": {**PROVENANCE, "jobs": 2},
        "seconds": 1004.3,
    }
    (run / "suite.json").write_text(json.dumps(suite))
    _record(run, "01_offline", "offline", "offline", 0, (0.81, None, 0.81), "offline")
    _record(run, "02_mib_incremental", "15-1", "step0", 0, (0.8, None, 0.8), "step0")
    _record(run, "02_mib_incremental", "15-1", "ft", 5, (0.05, 0.1, 0.06), "ft5")
    _record(run, "02_mib_incremental", "15-1", "mib", 5, (0.432, 0.41, 0.46), "mib5")
    _record(run, "03_exemplars_smib", "15-1", "mib", 5, (0.432, 0.41, 0.46), "mib5")  # 02's model, re-evaluated
    for budget, old in ((1, 0.776), (5, 0.767)):
        replay = {"budget": budget, "mode": "per-class", "strategy": "class-balanced", "share": 0.5}
        variant = f"{budget}pc-class-balanced"
        _record(
            run,
            "03_exemplars_smib",
            "15-1",
            "smib",
            5,
            (old, 0.6, 0.7),
            f"smib{budget}",
            replay=replay,
            variant=variant,
        )
    for aggregation, old in (("lse", 0.711), ("scale-aware", 0.722)):
        synthetic = {"images": 15, "settings": {"aggregation": aggregation, "images_per_class": 1, "lr": 0.2}}
        variant = "di-1pc-60+30it-64px" + ("-scale-0.1-0.3" if aggregation != "lse" else "")
        _record(run, "04_deepinversion_synthesis", "15-5", "mib+di", 1, (old, 0.6, 0.7), f"di-{aggregation}",
                synthetic=synthetic, variant=variant)  # fmt: skip
    weak = {"seam": {"cam_source": "pcm", "fuse_old": True, "bg_threshold": 0.26}, "used": "pcm+fuse"}
    _record(run, "05_seam_weak", "15-5", "mib-s", 1, (0.687, 0.41, 0.62), "mib-s", weak=weak,
            variant="seam-r18-os8-step0-8ep-t0.26")  # fmt: skip

    def finding(notebook, text, status, margin=0.0, calibration=None):
        return FindingResult(text=text, status=status, left=50.0, right=40.0, detail="MiB old 50.0 > 40.0; gap +10.0",
                             notebook=notebook, margin=margin, calibration=calibration)  # fmt: skip

    cal = {"gaps": [8.0, 12.0, 15.0], "spread": 7.0, "margin": 1.0, "verdict": findings.REPRODUCED}
    meta = {"profile": "demo", "dataset": "shapes", "calibration": "incseg_lib/calibration/demo-shapes.json"}
    findings.save(
        [
            finding("02_mib_incremental", "MiB keeps more than FT", findings.REPRODUCED, 1.0, cal),
            finding("02_mib_incremental", "MiB keeps 70% of step 0", findings.NOT_REPRODUCED),
        ],
        run / "findings" / "02_mib_incremental.json",
        meta=meta,
    )
    findings.save(
        [
            finding("03_exemplars_smib", "SMiB keeps more than MiB", findings.REPRODUCED),
            finding("03_exemplars_smib", "more memory keeps more", findings.VARIES, calibration=cal),
        ],
        run / "findings" / "03_exemplars_smib.json",
        meta=meta,
    )
    (run / "notebooks").mkdir()
    _notebook(run / "notebooks" / "01_offline.ipynb", "01 · Offline BiSeNet")
    _notebook(run / "notebooks" / "02_mib_incremental.ipynb", "02 · Learning classes in steps", math=True)
    _notebook(run / "notebooks" / "03_exemplars_smib.ipynb", "03 · Rehearsal with exemplars")
    index = write_report(run)
    return run, index.read_text(), (run / "report" / "02_mib_incremental.html").read_text()


def _remote_references(page: str) -> list[str]:
    """Every reference that a browser would fetch from elsewhere: script, stylesheet, image, frame, font."""
    found = re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*?(?:src|href)=[\"']?((?:https?:)?//[^\"' >]+)", page)
    found += re.findall(r"@import[^;]*", page)
    found += re.findall(r"url\(\s*[\"']?((?:https?:)?//[^)]+)\)", page)
    return found


def _section(index: str, notebook: str) -> str:
    """The part of ``index`` under ``notebook``'s heading (up to the next notebook's)."""
    start = index.index(f'<h2 id="{notebook}">')
    end = index.find("<h2 ", start + 1)
    return index[start : end if end > 0 else len(index)]


def test_pages_load_nothing_from_elsewhere(run):
    folder, index, page = run
    for html in (index, page):
        assert _remote_references(html) == []
        assert "<script src" not in html and "<link" not in html
        assert "cdnjs" not in html and "mathjax" not in html.lower()
    hrefs = re.findall(r'href="([^"]*)"', index)
    assert hrefs and all(not re.match(r"[a-z]+:|/", h) for h in hrefs)  # relative: the folder can move
    assert {f"{nb}.html" for nb in NOTEBOOKS[:3]} <= set(hrefs)
    assert all((folder / "report" / h).is_file() for h in hrefs if h.endswith(".html"))
    assert 'href="index.html"' in page  # the way back


def test_formulas_are_mathml_written_at_export(run):
    _, _, page = run
    math = re.findall(r"<math\b.*?</math>", page, flags=re.S)
    assert len(math) == 1 and "α" in math[0] and "∑" in math[0] and "<msub>" in math[0]
    assert "\\alpha" not in page and "$" not in re.sub(r"<style.*?</style>", "", page, flags=re.S)
    assert "<mi>α</mi>" in tex_to_mathml(r"\alpha") or "&#x003B1;" in tex_to_mathml(r"\alpha")
    assert 'mathvariant="normal">arg<' in tex_to_mathml(r"\arg\min_i x")  # a command it does not know: upright
    assert "incseg-tex" in tex_to_mathml(r"\frac{1}{")  # broken TeX is shown as TeX, not an error


def test_headline_names_profile_findings_and_software(run):
    _, index, _ = run
    head = index[: index.index("<h2")]
    assert "demo" in head and "shapes" in head
    assert (
        "2 of 4 expected findings reproduced (1 not, 1 varies between runs); 0 gaps outside the calibrated range"
        in head
    )
    assert "torch 2.14.1+test" in head and "torchvision 0.29.1+test" in head and "numpy 2.4.6" in head
    assert "incseg 0.1.0 (0123456)" in head and "cpu: Test CPU, 2 cores" in head and "1 thread" in head
    assert "2 notebooks at a time" in head and "Software and machine" in head
    assert "demo-shapes.json" in head  # which calibration, and where it ran
    assert "Calibrated over" in head and "threads" in head and "commit" in head


def test_findings_grouped_per_notebook_with_status_numbers_and_range(run):
    _, index, _ = run
    assert "inside the noise" in index and "varies" in index and "outside it is flagged" in index  # the words
    assert "margin" not in re.sub(r"<style.*?</style>", "", index, flags=re.S)  # no threshold word left
    nb02, nb03 = _section(index, "02_mib_incremental"), _section(index, "03_exemplars_smib")
    assert "MiB keeps more than FT (by more than 1 points)" in nb02 and "SMiB keeps more than MiB" not in nb02
    assert "gap +8.0 to +15.0 over 3 runs" in nb02 and "MiB old 50.0 &gt; 40.0; gap +10.0" in nb02
    assert ">reproduced<" in nb02 and ">not reproduced<" in nb02 and ">varies<" in nb03
    assert "1 of 2 expected findings reproduced (1 varies between runs)" in nb03


def test_each_model_listed_once_under_the_notebook_that_trained_it(run):
    _, index, _ = run
    rows = re.findall(r'<tr><td class="l">([^<]*)</td>', index)
    assert rows.count("MiB") == 1 and ">MiB</td>" in _section(index, "02_mib_incremental")
    assert ">MiB</td>" not in _section(index, "03_exemplars_smib")
    assert "43.2" in _section(index, "02_mib_incremental") and index.count("43.2") == 1
    nb03, nb04 = _section(index, "03_exemplars_smib"), _section(index, "04_deepinversion_synthesis")
    assert "SMiB (1/class)" in nb03 and "SMiB (5/class)" in nb03
    assert "MiB+DI (LSE)" in nb04 and "MiB+DI (scale-aware)" in nb04
    assert "MiB-S" in _section(index, "05_seam_weak") and "offline" in _section(index, "01_offline")
    assert "step 0" not in rows  # rows are the methods after the last step
    assert "15-1 overlapped: mIoU (%) after step 5, the last" in index
    for code in INTERNAL:
        assert code not in index


def test_notebook_status_next_to_its_link(run):
    _, index, _ = run
    toc = index[index.index("<h2>Notebooks</h2>") : index.index("</ul>")]
    assert "done in 601s" in toc and "failed in cell 5: ValueError: boom" in toc and "interrupted after 3s" in toc
    assert '<a href="02_mib_incremental.html">02 · Learning classes in steps</a>' in toc
    assert "05 · " not in toc and "05_seam_weak" in toc  # interrupted before its notebook was written: no link


def test_records_by_notebook_keeps_the_lowest_numbered_notebook():
    def rec(notebook, method, **fields):
        return make_record(method, 5, 0.5, task="15-1", notebook=notebook, **fields)

    recs = [
        rec("03_x", "mib", checkpoint="a.pt"),
        rec("02_y", "mib", checkpoint="a.pt"),
        rec("03_x", "ft", checkpoint="a.pt"),  # another method on the same file: its own model
        rec("04_z", "mib", _file="1.json"),  # no checkpoint: kept where it is
    ]
    out = records_by_notebook(recs)
    assert [r["method"] for r in out["02_y"]] == ["mib"] and [r["method"] for r in out["03_x"]] == ["ft"]
    assert len(out["04_z"]) == 1


def test_row_labels_say_what_tells_two_records_of_a_method_apart():
    def rec(method, **fields):
        return make_record(method, 1, 0.5, **{"config": {"lr": 0.03, "epochs": 4}, **fields})

    smib = [rec("smib", replay={"budget": b, "mode": "per-class"}) for b in (1, 5)]
    assert row_labels([*smib, rec("mib")]) == ["SMiB (1/class)", "SMiB (5/class)", "MiB"]
    assert row_labels(smib[:1]) == ["SMiB (1/class)"]  # a memory is always shown
    lrs = [rec("offline", config={"lr": lr, "epochs": 4}) for lr in (0.01, 0.05)]
    assert row_labels(lrs) == ["offline (lr 0.01)", "offline (lr 0.05)"]
    assert row_labels([rec("ft"), rec("ft")]) == ["FT #1", "FT #2"]


def test_findings_table_leaves_out_the_calibration_column_when_nothing_is_calibrated():
    r = FindingResult(text="MiB keeps more", status=findings.REPRODUCED, left=50.0, right=40.0, detail="gap +10.0")
    assert "calibrated" not in findings_table([r]) and "MiB keeps more" in findings_table([r])


MARKUP = '<img src=x onerror="alert(1)">'


def test_markup_planted_in_any_record_field_is_shown_as_text(tmp_path):
    """Every string a record holds reaches the page escaped: no field can add markup to the report."""
    fields = ("notebook", "dataset", "task", "setting", "method", "eval_protocol", "variant", "backbone")
    for i, field in enumerate(fields):
        run = tmp_path / field
        (run / "results").mkdir(parents=True)
        rec = dict(
            notebook="02_mib_incremental", dataset="shapes", task="15-5", setting="overlapped", method="mib",
            step=1, backbone="resnet18", iou={"background": 0.9}, miou_all=0.5, miou_old=0.6, miou_new=0.3,
            pixel_acc=0.9, eval_protocol="full", checkpoint=f"/ckpt/{i}.pt", provenance=PROVENANCE,
        )  # fmt: skip
        rec[field] = MARKUP
        results.record(run, **rec)
        (run / "suite.json").write_text(json.dumps({"profile": MARKUP, "state": MARKUP, "provenance": PROVENANCE}))
        page = write_report(run).read_text()
        assert "<img" not in page, field


def _png(colour) -> str:
    """A 4x3 PNG of one colour, base64 (what a notebook output holds)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 3), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_the_first_page_opens_with_the_tagged_figures_and_pages_hide_setup_and_this_machines_paths(tmp_path):
    from incseg_lib.report import dangling_links

    run = tmp_path / "2026-12-07-demo"
    (run / "notebooks").mkdir(parents=True)
    (run / "suite.json").write_text(json.dumps({"profile": "demo", "state": "done", "status": {}}))

    def notebook(name, tagged_colour, reading):
        nb = nbformat.v4.new_notebook()
        setup = nbformat.v4.new_code_cell("SOURCE = 'pip install'", metadata={"tags": ["setup"]})
        params = nbformat.v4.new_code_cell("profile = 'demo'", metadata={"tags": ["parameters"]})
        injected = nbformat.v4.new_code_cell(f"run_dir = '{run}'", metadata={"tags": ["injected-parameters"]})
        said = nbformat.v4.new_code_cell("print(run_dir)", execution_count=1)
        said.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"results in {run}/results\n")]
        fig = nbformat.v4.new_code_cell("viz.figure()", execution_count=2, metadata={"tags": ["report"]})
        fig.outputs = [
            nbformat.v4.new_output("display_data", data={"image/png": _png(tagged_colour), "text/plain": "<Figure>"}),
            nbformat.v4.new_output("stream", name="stdout", text=reading),
        ]
        untagged = nbformat.v4.new_code_cell("viz.other()", execution_count=3)
        untagged.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _png((0, 0, 255))})]
        title = nbformat.v4.new_markdown_cell(f"# {name}\n\n[results](https://example.org/docs/results.md)")
        nb.cells = [title, setup, params, injected, said, fig, untagged]
        nbformat.write(nb, run / "notebooks" / f"{name}.ipynb")

    notebook("06_results_comparison", (0, 255, 0), "MiB keeps 80 % of the old pixels.\n")
    notebook("02_mib_incremental", (255, 0, 0), "")
    index = write_report(run).read_text()
    glance = index[index.index("At a glance") : index.index("<h2>Notebooks")]
    figs = re.findall(r'<img src="([^"]+)"', glance)
    assert figs == ["figures/02_mib_incremental-1.png", "figures/06_results_comparison-1.png"]  # 02 first, tagged only
    from PIL import Image

    assert Image.open(run / "report" / figs[0]).getpixel((0, 0)) == (255, 0, 0)
    assert "MiB keeps 80 % of the old pixels." in glance  # the reading printed under the figure
    page = (run / "report" / "02_mib_incremental.html").read_text()
    assert "pip install" not in page and "profile = " not in page and "run_dir = " not in page  # hidden cells
    for text in (index, page):
        assert str(run) not in text and str(tmp_path) not in text
    assert "results in &lt;run&gt;/results" in page  # the run folder named, not this machine's path
    assert "max-width: none" in page  # figures at their own size: 7-pt text stays 9.7 px
    for html_page in (index, page):
        assert dangling_links(html_page, run / "report") == []
    assert dangling_links('<a href="../docs/results.md">x</a>', run / "report") == ["../docs/results.md"]
