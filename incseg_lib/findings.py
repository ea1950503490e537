"""Expected findings: what a notebook's run should show, declared as checks on its own records.

A notebook declares the story it tells ("MiB keeps more old-class mIoU than FT after the last
step of 15-1") as :class:`Finding` s: a number taken from the records, compared with another
number (or a constant), optionally scaled. At its end the notebook evaluates them
(:func:`check`), shows the list, and writes it to ``<run dir>/findings/<notebook>.json``; the
suite's HTML report and ``incseg suite`` list every notebook's findings, each **reproduced** or
**not reproduced** with the numbers that decide it. A finding that fails is reported, never
hidden; one whose records are missing (a method not in the plan) is listed as **no data**.

>>> from incseg_lib.findings import Finding, Metric
>>> f = Finding("FT forgets: old-class mIoU at most half of step 0's",
...             Metric("ft", "old"), "<=", Metric("step0", "old"), factor=0.5)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .tasks import one_class_steps

REPRODUCED, NOT_REPRODUCED, NO_DATA = "reproduced", "not reproduced", "no data"
_OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}


@dataclass(frozen=True)
class Metric:
    """One number of the records: mIoU (%) of ``part`` for ``method`` at a step of a task.

    Attributes:
        method: recorded method id (``step0``, ``ft``, ``lwf``, ``ilt``, ``mib``, ``smib``, ``joint``,
            ``offline`` ...).
        part: ``old``, ``new``, ``all`` (mIoU), ``pixel_acc``, or for SEAM runs ``pseudo_new`` /
            ``pseudo_chance_new`` (new-class IoU of the pseudo-labels trained on / of chance labels).
        task, setting: restrict to one task / setting (``""``: any; the newest record wins).
        step: the step; ``None`` = the last step of the task (step 0 for ``step0`` and ``offline``).
        exemplars: for replay records, the memory size (exemplars per class); ``None`` = no filter.
    """

    method: str
    part: str = "old"
    task: str = ""
    setting: str = ""
    step: int | None = None
    exemplars: int | None = None

    def label(self) -> str:
        from .results import display_name

        name = display_name(self.method)
        if self.exemplars is not None:
            name += f" ({self.exemplars}/class)"
        where = " ".join(x for x in (self.task, self.setting) if x)
        step = "" if self.step is None else f" step {self.step}"
        return f"{name} {self.part}{' ' + where if where else ''}{step}"

    def value(self, records: list[dict]) -> float | None:
        """The metric in % (2 decimals) from the newest matching full-image record, or None if there is none."""
        from .results import latest
        from .tasks import get_task

        key = self.part if self.part == "pixel_acc" or self.part.startswith("pseudo") else f"miou_{self.part}"
        best = None
        for r in latest([r for r in records if r.get("eval_protocol", "full") == "full"]):
            if r.get("method") != self.method:
                continue
            if (self.task and r.get("task") != self.task) or (self.setting and r.get("setting") != self.setting):
                continue
            if self.exemplars is not None and (r.get("replay") or {}).get("budget") != self.exemplars:
                continue
            step = self.step
            if step is None:
                try:
                    step = 0 if self.method in ("step0", "offline") else len(get_task(r["dataset"], r["task"])) - 1
                except (KeyError, ValueError):
                    continue
            if r.get("step") != step or r.get(key) is None:
                continue
            if best is None or r.get("created_ns", 0) >= best.get("created_ns", 0):
                best = r
        # rounded only to absorb float noise (0.6 * 100): rounding to 2 decimals here made the
        # 1-decimal display round twice (0.80853 -> 80.85 -> "80.8")
        return None if best is None else round(100 * float(best[key]), 6)


@dataclass(frozen=True)
class Finding:
    """An expected finding: ``left <op> factor * right`` (``right`` a :class:`Metric` or a constant %).

    Example: FT forgets at least half of what step 0 knew:
    ``Finding("...", Metric("ft", "old"), "<=", Metric("step0", "old"), factor=0.5)``.
    """

    text: str
    left: Metric
    op: str
    right: Metric | float
    factor: float = 1.0

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"finding {self.text!r}: op {self.op!r} is not one of {sorted(_OPS)}")

    def check(self, records: list[dict]) -> "FindingResult":
        a = self.left.value(records)
        if isinstance(self.right, Metric):
            b, b_label = self.right.value(records), self.right.label()
        else:
            b, b_label = float(self.right), "constant"
        if a is None or b is None:
            missing = [m.label() for m, v in ((self.left, a), (self.right, b)) if isinstance(m, Metric) and v is None]
            return FindingResult(self.text, NO_DATA, a, b, f"no record for {', '.join(missing)}")
        bound = self.factor * b
        ok = _OPS[self.op](a, bound)
        scaled = f"{self.factor:g} x {b:.1f} = {bound:.1f}" if self.factor != 1 else f"{b:.1f}"
        rhs = scaled if isinstance(self.right, Metric) else f"{bound:.1f}"
        detail = f"{self.left.label()} {a:.1f} {self.op} {rhs}" + (f" ({b_label})" if isinstance(self.right, Metric) else "")
        return FindingResult(self.text, REPRODUCED if ok else NOT_REPRODUCED, a, b, detail)


@dataclass
class FindingResult:
    """The outcome of one :class:`Finding`: ``status`` and the numbers (in %) that decide it."""

    text: str
    status: str
    left: float | None
    right: float | None
    detail: str = ""
    notebook: str = field(default="")


def check(findings: list[Finding], records: list[dict], *, notebook: str = "", run_dir: str | Path | None = None,
          print_fn=print) -> list[FindingResult]:
    """Evaluate ``findings`` on ``records``; print them, and save them to ``run_dir/findings/<notebook>.json``.

    Returns the results in declaration order. Never raises for a finding that does not hold: it is
    reported as ``not reproduced`` (or ``no data``) with its numbers.
    """
    out = []
    for f in findings:
        res = f.check(records)
        res.notebook = notebook
        out.append(res)
    for line in format_lines(out):
        print_fn(line)
    if run_dir is not None and notebook:
        save(out, Path(run_dir) / "findings" / f"{notebook}.json")
    return out


def format_lines(results: list[FindingResult]) -> list[str]:
    """One line per finding: ``[reproduced] text -- numbers``."""
    mark = {REPRODUCED: "[reproduced]    ", NOT_REPRODUCED: "[NOT reproduced]", NO_DATA: "[no data]       "}
    return [f"{mark[r.status]} {r.text} -- {r.detail}" for r in results]


def save(results: list[FindingResult], path: Path) -> Path:
    """Write ``results`` as JSON atomically (a re-run notebook replaces its own findings file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps([asdict(r) for r in results], indent=1))
    os.replace(tmp, path)
    return path


def load(run_dir: str | Path) -> list[FindingResult]:
    """Every notebook's saved findings under ``run_dir/findings/`` (notebook order); unreadable files skipped."""
    out = []
    for p in sorted((Path(run_dir) / "findings").glob("*.json")):
        try:
            out.extend(FindingResult(**d) for d in json.loads(p.read_text()))
        except (ValueError, TypeError) as e:
            import warnings

            warnings.warn(f"findings file {p} is unreadable ({e}); skipped", stacklevel=2)
    return out


def table(results: list[FindingResult]):
    """A DataFrame for notebooks and the report: notebook, finding, status, numbers."""
    import pandas as pd

    return pd.DataFrame([{"notebook": r.notebook, "finding": r.text, "status": r.status, "numbers": r.detail}
                         for r in results], columns=["notebook", "finding", "status", "numbers"])


# ---------------------------------------------------------------------- each lab's expected findings
def incremental_findings(plan: dict) -> list[Finding]:
    """Notebook 02's story per task and setting of ``plan`` (:func:`~incseg_lib.experiment.study_plan`):
    FT forgets at least half of step 0's old-class mIoU; MiB keeps at least 70% of it and learns
    the new classes; Joint is above MiB; LwF and ILT (when run) sit between FT and MiB.

    "Learns the new classes" is new mIoU >= 30 for a task whose steps add several classes (15-5),
    and, for a task of one-class steps (15-1, 10-1, 19-1) when FT is run, new mIoU above FT's:
    there a step's few images teach its class, later steps erode it, and the MiB paper's own
    15-5s row has MiB at 13.5 new against FT's 1.8 (Cermelli et al., CVPR 2020, Table 1,
    overlapped), so no absolute bar is the paper's; FT keeps only the last step's class.
    """
    from .results import display_name

    out = []
    for task in plan["tasks"]:
        relative = one_class_steps(task) and "ft" in plan["methods"]
        for setting in plan["settings"]:
            m = lambda method, part="old": Metric(method, part, task, setting)  # noqa: E731
            where = f"{task} {setting}"
            learns = (Finding(f"{where}: MiB learns more of the new classes than FT (new)", m("mib", "new"), ">",
                              m("ft", "new")) if relative else
                      Finding(f"{where}: MiB learns the new classes (new mIoU >= 30)", m("mib", "new"), ">=", 30.0))
            out += [Finding(f"{where}: FT forgets at least half of step 0's old-class mIoU", m("ft"), "<=", m("step0"), 0.5),
                    Finding(f"{where}: MiB keeps at least 70% of step 0's old-class mIoU", m("mib"), ">=", m("step0"), 0.7),
                    learns,
                    Finding(f"{where}: Joint is above MiB (all)", m("joint", "all"), ">", m("mib", "all"))]
            for method in ("lwf", "ilt"):
                if method in plan["methods"]:
                    name = display_name(method)
                    out += [Finding(f"{where}: {name} keeps more than FT", m(method), ">", m("ft")),
                            Finding(f"{where}: {name} keeps less than MiB", m(method), "<", m("mib"))]
    return out


def replay_findings(plan: dict) -> list[Finding]:
    """Notebook 03's story: SMiB with the smallest memory keeps more old-class mIoU than MiB, and
    the largest memory more than the smallest (``plan`` from :func:`~incseg_lib.experiment.replay_plan`;
    not claimed where ``plan["size_effect"]`` is False, as on the demo's shapes).
    On a task of one-class steps (15-1) the memory also holds the classes each step added, so SMiB
    keeps more of the new classes than MiB too (MiB has only distillation to keep step 1's class
    through four more steps)."""
    small, large = min(plan["sizes"]), max(plan["sizes"])
    out = []
    for task in plan["tasks"]:
        for setting in plan["settings"]:
            if "mib" not in plan["methods"]:
                continue
            smib = lambda k, part="old": Metric("smib", part, task, setting, exemplars=k)  # noqa: E731
            out.append(Finding(f"{task} {setting}: SMiB ({small}/class) keeps more old-class mIoU than MiB",
                               smib(small), ">", Metric("mib", "old", task, setting)))
            if one_class_steps(task):
                out.append(Finding(f"{task} {setting}: SMiB ({small}/class) keeps more of the steps' new classes than MiB",
                                   smib(small, "new"), ">", Metric("mib", "new", task, setting)))
            if large > small and plan.get("size_effect", True):
                out.append(Finding(f"{task} {setting}: more memory keeps more ({large} vs {small}/class)",
                                   smib(large), ">", smib(small)))
    return out


def inversion_findings(plan: dict) -> list[Finding]:
    """Notebook 04's story: MiB+DI keeps more old-class mIoU than MiB; FT+DI more than FT."""
    out = []
    for task in plan["tasks"]:
        for setting in plan["settings"]:
            for method, name in (("mib", "MiB"), ("ft", "FT")):
                if method in plan["methods"]:
                    out.append(Finding(f"{task} {setting}: {name}+DI keeps more old-class mIoU than {name}",
                                       Metric(f"{method}+di", "old", task, setting), ">",
                                       Metric(method, "old", task, setting)))
    return out


def weak_findings(plan: dict) -> list[Finding]:
    """Notebook 05's story: SEAM's pseudo-labels localise the new classes far better than chance
    (new-class IoU at least twice that of labels drawn at random among background and the image's
    classes), and MiB-S sits between FT-S and MiB with masks (all)."""
    out = []
    for task in plan["tasks"]:
        for setting in plan["settings"]:
            m = lambda method, part="all": Metric(method, part, task, setting)  # noqa: E731
            where = f"{task} {setting}"
            if "mib" in plan["methods"]:
                out += [Finding(f"{where}: MiB-S's pseudo-labels find the new classes (IoU at least twice chance)",
                                m("mib-s", "pseudo_new"), ">=", m("mib-s", "pseudo_chance_new"), 2.0),
                        Finding(f"{where}: MiB-S is below MiB with masks (all)", m("mib-s"), "<", m("mib"))]
                if "ft" in plan["methods"]:
                    out.append(Finding(f"{where}: MiB-S is above FT-S (all)", m("mib-s"), ">", m("ft-s")))
    return out
