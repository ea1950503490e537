"""Expected findings: what a notebook's run should show, declared as checks on its own records,
each with a margin calibrated against run-to-run noise.

A notebook declares the story it tells ("MiB keeps more old-class mIoU than FT after the last
step of 15-1") as :class:`Finding` s: a number taken from the records, compared with another
number (or a constant), optionally scaled. The **gap** is by how much the claim holds (points of
mIoU; negative when it does not). At its end the notebook evaluates them (:func:`check`), shows
the list, and writes it to ``<run dir>/findings/<notebook>.json``; the suite's HTML report and
``incseg suite`` list every notebook's findings with the numbers that decide them.

**Calibration.** A single run's comparison can flip with the seed, the thread count, the PyTorch
version or the machine when the effect is small, and would then teach the opposite. So each
finding of a profile is calibrated (:mod:`incseg_lib.calibration`: the profile's plan run over
several seeds, thread counts and PyTorch versions): its gap in every calibration run, their
**calibrated range** and spread, and a verdict: **holds** (the claim held in every calibration run
by more than the spread of its gaps: the effect is bigger than the noise), **varies** (inside the
noise: some calibration run had it by less than the spread, or not at all) or **fails** (it failed
in every calibration run). A finding is then

* **reproduced** when its claim holds in this run (gap > 0) and the calibration says it holds;
* **not reproduced** when its claim does not hold in this run (gap <= 0);
* **varies** when the calibration says it is inside the noise (or failed every calibration run
  and holds here): one run cannot settle it, and the calibrated range is shown;
* **no data** when its records are missing (a method not in the plan).

Beside the run's gap the calibrated range is shown; a gap outside it is flagged **outside the
calibrated range**: information (another machine, thread count or version moved the number), not a
failure. A profile without a calibration (cpu, colab, ...) checks the bare comparison and says it
is uncalibrated.

>>> from incseg_lib.findings import Finding, Metric
>>> f = Finding("FT forgets: old-class mIoU at most half of step 0's",
...             Metric("ft", "old"), "<=", Metric("step0", "old"), factor=0.5)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import task_methods
from .env import provenance
from .methods import methods_of
from .results import display_name, latest
from .store import atomic_write_json
from .tasks import get_task, one_class_steps

REPRODUCED, NOT_REPRODUCED, NO_DATA, VARIES = "reproduced", "not reproduced", "no data", "varies"
_OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}


OUTSIDE = "outside the calibrated range"

_PART_WORDS = {
    "old": "old-class mIoU",
    "new": "new-class mIoU",
    "all": "mIoU over all classes",
    "pixel_acc": "pixel accuracy",
    "pseudo_new": "pseudo-labels' new-class IoU",
    "pseudo_chance_new": "chance labels' new-class IoU",
}


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
        aggregation: for synthetic-replay records, the class-target aggregation (``lse``,
            ``scale-aware``); ``None`` = no filter.
    """

    method: str
    part: str = "old"
    task: str = ""
    setting: str = ""
    step: int | None = None
    exemplars: int | None = None
    aggregation: str | None = None

    def label(self) -> str:

        name = display_name(self.method)
        if self.exemplars is not None:
            name += f" (memory {self.exemplars})"
        if self.aggregation is not None:
            name += f" ({self.aggregation})"
        where = " ".join(x for x in (self.task, self.setting) if x)
        step = "" if self.step is None else f" step {self.step}"
        part = self.part if self.part in ("old", "new", "all") else _PART_WORDS.get(self.part, self.part)
        return f"{name} {part}{' ' + where if where else ''}{step}"

    def phrase(self) -> str:
        """The metric in words for a take-away, ``MiB's old-class mIoU`` (the finding's text names
        the task)."""
        name = "step 0" if self.method == "step0" else display_name(self.method)
        if self.exemplars is not None:
            name += f" ({self.exemplars}/class)"
        if self.aggregation is not None:
            name += f" ({self.aggregation})"
        part = _PART_WORDS.get(self.part, self.part)
        step = "" if self.step is None else f" after step {self.step}"
        return f"{name}'s {part}{step}"

    def value(self, records: list[dict]) -> float | None:
        """The metric in % (2 decimals) from the newest matching full-image record, or None if there is none."""

        key = self.part if self.part == "pixel_acc" or self.part.startswith("pseudo") else f"miou_{self.part}"
        best = None
        for r in latest([r for r in records if r.get("eval_protocol", "full") == "full"]):
            if r.get("method") != self.method:
                continue
            if (self.task and r.get("task") != self.task) or (self.setting and r.get("setting") != self.setting):
                continue
            if self.exemplars is not None and (r.get("replay") or {}).get("budget") != self.exemplars:
                continue
            if self.aggregation is not None and synthetic_aggregation(r) != self.aggregation:
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

    Attributes:
        text: the claim, as a student reads it (without its margin: :attr:`FindingResult.claim`
            adds it).
        key: a stable name for the calibration table (default: ``text``).
        margin: points (of mIoU) by which the claim must hold in this run (a threshold the finding
            sets itself); ``None`` = none: the claim must hold (gap > 0) and its calibration decides
            whether that is robust (module docstring).

    Example: FT forgets at least half of what step 0 knew:
    ``Finding("...", Metric("ft", "old"), "<=", Metric("step0", "old"), factor=0.5)``.
    """

    text: str
    left: Metric
    op: str
    right: Metric | float
    factor: float = 1.0
    key: str = ""
    margin: float | None = None

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"finding {self.text!r}: op {self.op!r} is not one of {sorted(_OPS)}")
        if self.margin is not None and self.margin < 0:
            raise ValueError(f"finding {self.text!r}: margin {self.margin} must be >= 0 (points by which it holds)")

    @property
    def name(self) -> str:
        return self.key or self.text

    def gap(self, a: float, b: float) -> float:
        """By how many points ``a <op> factor * b`` holds (negative: by how much it fails)."""
        bound = self.factor * b
        return a - bound if self.op in (">", ">=") else bound - a

    def check(self, records: list[dict], calibration: dict | None = None) -> FindingResult:
        """Evaluate on ``records``; ``calibration`` is this finding's entry of a profile's calibration
        (``{"margin", "verdict", "gaps", ...}``, see :func:`calibrate`), or None."""
        a = self.left.value(records)
        if isinstance(self.right, Metric):
            b, b_label = self.right.value(records), self.right.label()
        else:
            b, b_label = float(self.right), "constant"
        margin = float(self.margin or 0.0)
        base = dict(
            text=self.text,
            key=self.name,
            margin=margin,
            calibration=calibration,
            left_phrase=self.left.phrase(),
            right_phrase=self.right.phrase() if isinstance(self.right, Metric) else "",
            factor=self.factor,
        )
        if a is None or b is None:
            missing = [m.label() for m, v in ((self.left, a), (self.right, b)) if isinstance(m, Metric) and v is None]
            return FindingResult(status=NO_DATA, left=a, right=b, detail=f"no record for {', '.join(missing)}", **base)
        bound = self.factor * b
        gap = round(self.gap(a, b), 6)
        holds = _OPS[self.op](a, bound) and gap > margin
        scaled = f"{self.factor:g} x {b:.1f} = {bound:.1f}" if self.factor != 1 else f"{b:.1f}"
        rhs = scaled if isinstance(self.right, Metric) else f"{bound:.1f}"
        detail = f"{self.left.label()} {a:.1f} {self.op} {rhs}" + (
            f" ({b_label})" if isinstance(self.right, Metric) else ""
        )
        detail += f"; gap {gap:+.1f}" + (f" (needs more than {margin:g})" if margin else "")
        verdict = (calibration or {}).get("verdict")
        if verdict == VARIES or (verdict == "fails" and holds):
            status = VARIES
        else:
            status = REPRODUCED if holds else NOT_REPRODUCED
        result = FindingResult(status=status, left=a, right=b, detail=detail, gap=gap, **base)
        if result.calibration_gaps:
            lo, hi = min(result.calibration_gaps), max(result.calibration_gaps)
            result.detail += f"; calibrated {lo:+.1f} to {hi:+.1f}" + (f" ({OUTSIDE})" if result.outside else "")
        return result


@dataclass
class FindingResult:
    """The outcome of one :class:`Finding`: ``status`` and the numbers (in %) that decide it.

    Attributes:
        gap: by how many points the claim holds (negative: fails); None without data.
        margin: the points it had to hold by to count as reproduced.
        calibration: the profile's calibration of this finding (``gaps`` of every calibration run,
            ``spread``, ``margin``, ``verdict``, ``runs``) or None (uncalibrated).
    """

    text: str
    status: str
    left: float | None
    right: float | None
    detail: str = ""
    notebook: str = field(default="")
    key: str = ""
    gap: float | None = None
    margin: float = 0.0
    calibration: dict | None = None
    left_phrase: str = ""
    right_phrase: str = ""
    factor: float = 1.0

    @property
    def claim(self) -> str:
        """The finding's text, with the threshold it sets itself if any: ``... (by more than 5 points)``."""
        return self.text + (f" (by more than {self.margin:g} points)" if self.margin else "")

    @property
    def calibration_gaps(self) -> list[float]:
        """The gaps of the calibration runs (empty: uncalibrated)."""
        gaps = (self.calibration or {}).get("gaps") or []
        return [float(g) for g in gaps if isinstance(g, (int, float))]

    @property
    def outside(self) -> bool:
        """This run's gap lies outside the calibrated range (information, not a failure)."""
        gaps = self.calibration_gaps
        if self.gap is None or not gaps:
            return False
        return not (min(gaps) - 0.05 <= self.gap <= max(gaps) + 0.05)  # within display rounding

    def calibrated_range(self) -> str:
        """``"gap +12.0 to +20.5 over 4 runs (spread 8.5)"``, or ``"uncalibrated"``."""
        gaps = self.calibration_gaps
        if not gaps:
            return "uncalibrated"
        spread = (self.calibration or {}).get("spread", max(gaps) - min(gaps))
        return f"gap {min(gaps):+.1f} to {max(gaps):+.1f} over {len(gaps)} runs (spread {spread:.1f})"


def check(
    findings: list[Finding],
    records: list[dict],
    *,
    notebook: str = "",
    run_dir: str | Path | None = None,
    profile: str = "",
    dataset: str = "",
    print_fn=print,
) -> list[FindingResult]:
    """Evaluate ``findings`` on ``records``; print them, and save them to ``run_dir/findings/<notebook>.json``.

    Args:
        profile, dataset: whose calibration gives the margins (:func:`load_calibration`); empty =
            uncalibrated (margin 0 unless a finding sets its own).

    Returns the results in declaration order. Never raises for a finding that does not hold: it is
    reported as ``not reproduced``, ``varies`` or ``no data`` with its numbers.
    """
    calibration = load_calibration(profile, dataset) if profile and dataset else None
    entries = (calibration or {}).get("findings", {})
    out = []
    for f in findings:
        res = f.check(records, entries.get(calibration_key(notebook, f.name)))
        res.notebook = notebook
        out.append(res)
    for line in format_lines(out):
        print_fn(line)
    if profile:
        print_fn(f"({calibration_line(calibration)})")
    if run_dir is not None and notebook:
        save(
            out,
            Path(run_dir) / "findings" / f"{notebook}.json",
            meta={
                "profile": profile,
                "dataset": dataset,
                "calibration": (calibration or {}).get("source", "") if calibration else "",
            },
        )
    return out


def format_lines(results: list[FindingResult]) -> list[str]:
    """One line per finding: ``[reproduced] text -- numbers; calibrated range``."""
    mark = {
        REPRODUCED: "[reproduced]    ",
        NOT_REPRODUCED: "[NOT reproduced]",
        NO_DATA: "[no data]       ",
        VARIES: "[varies]        ",
    }
    out = []
    for r in results:
        line = f"{mark[r.status]} {r.claim} -- {r.detail}"
        if r.status == VARIES:
            line += f"; inside the run-to-run noise: {r.calibrated_range()}"
        out.append(line)
    return out


def _measured(r: FindingResult) -> str:
    """What the numbers say, in the direction they point: ``MiB's ... (73.0) is above FT's ... (5.1)``."""
    a, b = r.left, r.right
    left = f"{r.left_phrase or 'the measured value'} ({a:.1f})"
    if not r.right_phrase:  # a constant bound
        rel = "reaches" if a >= b else "stays below"
        return f"{left} {rel} {b:.1f}"
    right = f"{r.right_phrase} ({b:.1f})"
    if r.factor != 1:
        share = 100 * a / b if b else float("inf")
        return f"{left} is {share:.0f}% of {right}"
    if abs(a - b) < 0.05:
        return f"{left} equals {right}"
    return f"{left} is {'above' if a > b else 'below'} {right} by {abs(a - b):.1f} points"


def takeaway_lines(results: list[FindingResult]) -> list[str]:
    """One sentence per finding, generated from its numbers so that it cannot contradict them.

    A reproduced claim is stated as this run's result; one that did not hold says what was measured
    instead (a method that lost is described as losing); ``varies`` says the calibrated range and
    that it lies inside the run-to-run noise; a finding without records says the run did not train
    what it compares. A gap outside the calibrated range is said once, as information.
    """
    out = []
    for r in results:
        if r.status == NO_DATA:
            missing = r.detail.removeprefix("no record for ")
            out.append(f"**Not in this run**: {r.text}. This run has no record of {missing}: it did not train it.")
            continue
        measured = _measured(r)
        note = ""
        if r.outside:
            note = (
                f" This gap ({r.gap:+.1f}) is {OUTSIDE} ({r.calibrated_range()}): another machine, thread "
                "count or version moved the numbers."
            )
        if r.status == REPRODUCED:
            out.append(f"**Reproduced**: {r.text}. Here {measured}.{note}")
        elif r.status == VARIES:
            held = "holds" if (r.gap or 0) > 0 else "does not hold"
            out.append(
                f"**Varies between runs**: {r.text}? Here {measured}, so the claim {held} in this run; over "
                f"the calibration runs the {r.calibrated_range()}, inside the run-to-run noise, so one run "
                "cannot settle it."
            )
        else:
            out.append(f"**Not reproduced**: expected: {r.text}; here {measured}.{note}")
    return out


def takeaways(results: list[FindingResult], extra: list[str] = ()):
    """:func:`takeaway_lines` (and ``extra`` sentences first) as a Markdown list, for a notebook's
    take-away cell (an ``IPython.display.Markdown`` when IPython is importable, else the string)."""
    text = "\n".join(f"* {line}" for line in [*extra, *takeaway_lines(results)])
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython comes with the notebooks' dependencies
        return text
    return Markdown(text)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def trained_line(records: list[dict], notebook: str, methods: list[str]) -> str:
    """Which of the ``methods`` (ids) a notebook discusses this run trained, and which it did not,
    so a take-away never speaks of a method as if it had run.

    Args:
        records: results records; those of ``notebook`` count.
        methods: method ids in the order the notebook presents them (``ft``, ``lwf`` ...).
    """
    ran = {r.get("method") for r in records if r.get("notebook") == notebook}
    done = [display_name(m) for m in methods if m in ran]
    missing = [display_name(m) for m in methods if m not in ran]
    if not done:
        return f"This run trained none of {_and([display_name(m) for m in methods])}."
    line = f"This run trained {_and(done)}."
    if missing:
        line += (
            f" {_and(missing)} {'is' if len(missing) == 1 else 'are'} described above but not in this "
            "profile's plan: the notebook's `methods` parameter trains them."
        )
    return line


_GRID_KNOBS = (
    ("backbone", "backbone", str),
    ("lr", "learning rate", lambda v: f"{v:g}"),
    ("batch_size", "batch size", str),
)


def grid_takeaway_lines(records: list[dict]) -> list[str]:
    """What an offline grid's records say about its hyperparameters, generated so that it matches
    them: with one configuration, that the grid cannot rank anything; otherwise, per varied knob
    (backbone, learning rate, batch size), the best mIoU (all classes, %) at each value and the spread.

    Args:
        records: offline results records (``method == "offline"``); others are ignored.
    """
    recs = [r for r in records if r.get("method") == "offline" and r.get("miou_all") is not None]
    if not recs:
        return ["**Not in this run**: no offline model was trained."]
    best = max(recs, key=lambda r: r["miou_all"])
    where = ", ".join(f"{word} {fmt(best[k])}" for k, word, fmt in _GRID_KNOBS if k in best)
    lines = [
        f"The best configuration ({where}) reaches {100 * best['miou_all']:.1f} mIoU; "
        "its checkpoint is the offline reference."
    ]
    varied = [(k, word, fmt) for k, word, fmt in _GRID_KNOBS if len({r.get(k) for r in recs}) > 1]
    if not varied:
        lines.append(
            f"This run trained {len(recs)} configuration{'s' if len(recs) > 1 else ''} of one setting, so it cannot "
            "say which hyperparameter matters: give the notebook several values (`lrs`, `batch_sizes`, "
            "`backbones`) to compare them."
        )
        return lines
    spreads = []
    for k, word, fmt in varied:
        by_value = {}
        for r in recs:
            by_value[r.get(k)] = max(by_value.get(r.get(k), 0.0), 100 * r["miou_all"])
        values = sorted(by_value.items(), key=lambda kv: -kv[1])
        spread = values[0][1] - values[-1][1]
        spreads.append((spread, word))
        listed = ", ".join(f"{v:.1f} at {fmt(x)}" for x, v in values)
        lines.append(f"{word[:1].upper() + word[1:]}: best mIoU {listed} (a spread of {spread:.1f} points).")
    if len(spreads) > 1:
        lines.append(f"In this grid the {max(spreads)[1]} moves mIoU the most.")
    return lines


def save(results: list[FindingResult], path: Path, meta: dict | None = None) -> Path:
    """Write ``results`` as JSON atomically (a re-run notebook replaces its own findings file), with
    the process's :func:`~incseg_lib.env.provenance` and ``meta`` (profile, dataset, calibration)."""

    doc = {"provenance": provenance(), **(meta or {}), "findings": [asdict(r) for r in results]}
    return atomic_write_json(path, doc, what="the findings", indent=1)


def load_file(path: Path) -> tuple[dict, list[FindingResult]]:
    """``(provenance and meta, results)`` of one findings file (a bare list: an older file, no provenance).

    Raises:
        ValueError, TypeError: not a findings file.
    """
    doc = json.loads(Path(path).read_text())
    if isinstance(doc, list):
        doc = {"findings": doc}
    known = set(FindingResult.__dataclass_fields__)
    results = [FindingResult(**{k: v for k, v in d.items() if k in known}) for d in doc["findings"]]
    return {k: v for k, v in doc.items() if k != "findings"}, results


def load(run_dir: str | Path) -> list[FindingResult]:
    """Every notebook's saved findings under ``run_dir/findings/`` (notebook order); unreadable files skipped."""
    out = []
    for p in sorted((Path(run_dir) / "findings").glob("*.json")):
        try:
            out.extend(load_file(p)[1])
        except (ValueError, TypeError, KeyError) as e:
            import warnings

            warnings.warn(f"findings file {p} is unreadable ({e}); skipped", stacklevel=2)
    return out


def findings_table(results: list[FindingResult]):
    """A DataFrame for notebooks and the report: notebook, finding (with its margin), status, the
    numbers that decide it, and the range calibrated for it."""
    import pandas as pd

    cols = ["notebook", "finding", "status", "numbers", "calibrated"]
    return pd.DataFrame(
        [
            {
                "notebook": r.notebook,
                "finding": r.claim,
                "status": r.status,
                "numbers": r.detail,
                "calibrated": r.calibrated_range(),
            }
            for r in results
        ],
        columns=cols,
    )


# ---------------------------------------------------------------------- calibration
CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"


def calibration_key(notebook: str, name: str) -> str:
    return f"{notebook}|{name}"


def calibration_file(profile: str, dataset: str) -> Path:
    """Where the calibration of ``profile`` on ``dataset`` lives: ``$INCSEG_CALIBRATION`` if set (a
    file), else ``incseg_lib/calibration/<profile>-<dataset>.json`` (shipped with the package)."""
    env = os.environ.get("INCSEG_CALIBRATION", "").strip()
    return Path(env) if env else CALIBRATION_DIR / f"{profile}-{dataset}.json"


def load_calibration(profile: str, dataset: str) -> dict | None:
    """The calibration of ``profile`` on ``dataset`` (:func:`calibrate`'s output), or None if there is
    none for it; a file ``$INCSEG_CALIBRATION`` names that is missing or not a calibration, or a
    shipped file that is not one, is named in a warning (the findings are then uncalibrated)."""
    import warnings

    path = calibration_file(profile, dataset)
    named = bool(os.environ.get("INCSEG_CALIBRATION", "").strip())
    if not path.is_file():
        if named:
            warnings.warn(
                f"INCSEG_CALIBRATION={path} is not a file; findings are checked without a calibration", stacklevel=2
            )
        return None
    try:
        doc = check_calibration(json.loads(path.read_text()), str(path))
    except ValueError as e:
        warnings.warn(f"{e}; findings are checked without a calibration", stacklevel=2)
        return None
    if (doc.get("profile"), doc.get("dataset")) != (profile, dataset):
        return None  # $INCSEG_CALIBRATION names another profile's calibration
    return {**doc, "source": path.name}


def check_calibration(doc, where: str) -> dict:
    """``doc`` if it has a calibration's shape (an object with ``profile``, ``dataset``, a list of
    ``runs`` and an object of ``findings``, each with a list of numeric ``gaps``).

    Raises:
        ValueError: naming ``where`` (a file) and what is wrong.
    """
    if not isinstance(doc, dict):
        raise ValueError(f"{where} is not a calibration (a JSON object), it holds a {type(doc).__name__}")
    if not isinstance(doc.get("findings"), dict) or not isinstance(doc.get("runs", []), list):
        raise ValueError(f"{where} is not a calibration: it needs 'findings' (an object) and 'runs' (a list)")
    for key, entry in doc["findings"].items():
        gaps = entry.get("gaps") if isinstance(entry, dict) else None
        if not isinstance(gaps, list) or not all(isinstance(g, (int, float)) for g in gaps):
            raise ValueError(f"{where}: finding {key!r} has no list of numeric gaps")
    return doc


def calibration_line(calibration: dict | None) -> str:
    """Where a calibration ran, in one sentence: its runs' seeds, thread counts, PyTorch versions,
    machines and commits (``"Calibrated over 4 runs: seeds 0, 1, 2; 1 thread; torch 2.14.1+cu130,
    2.9.1; cpu: Intel(R) Xeon(R) Processor, 2 cores; commit cfba6e5."``), or that there is none."""
    if not calibration:
        return "No calibration for this profile and dataset: the comparisons are checked without one."
    runs = [r for r in calibration.get("runs", []) if isinstance(r, dict)]

    def values(key, fmt=str):
        seen = list(dict.fromkeys(fmt(r.get(key)) for r in runs if r.get(key) not in (None, "")))
        return ", ".join(seen) if seen else "not recorded"

    return (
        f"Calibrated over {len(runs)} run{'s' if len(runs) != 1 else ''}: seeds {values('seed')}; "
        f"threads {values('threads')}; torch {values('torch')}; {values('device')}; "
        f"commit {values('commit', lambda c: str(c)[:7])}."
    )


def _margin(gaps: list[float]) -> tuple[str, float, float]:
    """``(verdict, spread, margin)`` of a finding's gaps over the calibration runs (module docstring)."""
    spread = max(gaps) - min(gaps)
    if max(gaps) <= 0:
        return "fails", spread, 0.0
    if min(gaps) <= 0 or min(gaps) <= spread:
        return VARIES, spread, 0.0
    return "holds", spread, math.floor(2 * (min(gaps) - spread)) / 2


def calibrate(run_dirs: list[str | Path]) -> dict:
    """The calibration of a profile from suite runs of it (seeds, PyTorch versions): per finding, its
    gap in every run, their spread, the verdict and the margin (module docstring).

    Args:
        run_dirs: suite run folders (``incseg suite`` output) of one profile and dataset.

    Returns:
        ``{"profile", "dataset", "runs": [{"run", "seed", "torch", "commit", ...}], "findings":
        {"<notebook>|<key>": {"notebook", "text", "gaps", "values", "spread", "verdict", "margin"}}}``.

    Raises:
        ValueError: no findings in ``run_dirs``, a run given twice, or runs of different profiles or
            datasets.
    """
    resolved = [Path(rd).resolve() for rd in run_dirs]
    twice = sorted({str(r) for r in resolved if resolved.count(r) > 1})
    if twice:
        raise ValueError(f"run {', '.join(twice)} given twice: each run counts once in a calibration")
    runs: list[dict] = []
    table_: dict[str, dict] = {}
    kinds = set()
    for rd in run_dirs:
        rd = Path(rd)
        suite = json.loads((rd / "suite.json").read_text()) if (rd / "suite.json").is_file() else {}
        info: dict = {}
        for p in sorted((rd / "findings").glob("*.json")):
            meta, results = load_file(p)
            info = info or meta
            kinds.add((meta.get("profile") or suite.get("profile"), meta.get("dataset", "")))
            for r in results:
                if r.gap is None:
                    continue
                entry = table_.setdefault(
                    calibration_key(r.notebook, r.key or r.text),
                    {"notebook": r.notebook, "text": r.text, "gaps": [], "values": [], "runs": []},
                )
                entry["gaps"].append(r.gap)
                entry["values"].append([r.left, r.right])
                entry["runs"].append(rd.name)
        prov = info.get("provenance", {})
        runs.append(
            {
                "run": rd.name,
                "seed": (suite.get("parameters") or {}).get("seed", 0),
                **{
                    k: prov.get(k)
                    for k in (
                        "incseg",
                        "commit",
                        "dirty",
                        "torch",
                        "torchvision",
                        "numpy",
                        "python",
                        "device",
                        "threads",
                    )
                },
            }
        )
    if not table_:
        raise ValueError(f"no findings with numbers in {[str(r) for r in run_dirs]}: run `incseg suite` first")
    if len(kinds) > 1:
        raise ValueError(f"the runs mix profiles/datasets {sorted(map(str, kinds))}; calibrate one at a time")
    for entry in table_.values():
        verdict, spread, margin = _margin(entry["gaps"])
        entry.update(verdict=verdict, spread=round(spread, 3), margin=margin)
    profile, dataset = next(iter(kinds))
    return {"profile": profile, "dataset": dataset, "runs": runs, "findings": table_}


def update_calibration(old: dict, new: dict) -> dict:
    """``old`` with the findings that ``new`` calibrated replaced (:func:`calibrate`'s outputs of one
    profile and dataset): recalibrates the notebooks that changed without re-running the whole suite.
    Findings only ``old`` has keep their gaps and runs; ``new``'s runs are added to the run list,
    a name ``old`` already holds from other software (``seed-0`` of an earlier commit) getting
    ``@<commit>`` appended, so each finding's ``runs`` name the runs its gaps came from.

    Raises:
        ValueError: the two calibrate different profiles or datasets.
    """
    if (old.get("profile"), old.get("dataset")) != (new.get("profile"), new.get("dataset")):
        raise ValueError(
            f"cannot update the calibration of {old.get('profile')}/{old.get('dataset')} with runs of "
            f"{new.get('profile')}/{new.get('dataset')}; calibrate one profile and dataset at a time"
        )
    taken = {r["run"]: r for r in old.get("runs", [])}
    rename = {}
    for r in new["runs"]:
        same = taken.get(r["run"])
        if same is not None and same != r:
            rename[r["run"]] = f"{r['run']}@{str(r.get('commit') or 'unknown')[:7]}"
    runs = list(old.get("runs", []))
    for r in new["runs"]:
        r = {**r, "run": rename.get(r["run"], r["run"])}
        if r not in runs:  # the same update given twice lists its runs once
            runs.append(r)
    findings = dict(old.get("findings", {}))
    for key, entry in new["findings"].items():
        findings[key] = {**entry, "runs": [rename.get(n, n) for n in entry["runs"]]}
    used = {n for e in findings.values() for n in e.get("runs", [])}
    runs = [r for r in runs if r["run"] in used]  # a run none of the findings comes from any more
    return {**old, "runs": runs, "findings": findings}


def calibration_table(calibration: dict) -> str:
    """A Markdown table of :func:`calibrate`'s output: every finding x run, its gap, the verdict and margin."""
    runs = [r["run"] for r in calibration["runs"]]
    head = "| notebook | finding | " + " | ".join(runs) + " | spread | verdict | margin |"
    lines = [head, "|" + "---|" * (len(runs) + 5)]
    for entry in calibration["findings"].values():
        gaps = dict(zip(entry["runs"], entry["gaps"]))
        cells = " | ".join(f"{gaps[r]:+.1f}" if r in gaps else "-" for r in runs)
        lines.append(
            f"| {entry['notebook'][:2]} | {entry['text']} | {cells} | {entry['spread']:.1f} | "
            f"{entry['verdict']} | {entry['margin']:g} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------- each lab's expected findings
def incremental_findings(plan: dict) -> list[Finding]:
    """Notebook 02's story per task and setting of ``plan`` (:func:`~incseg_lib.experiment.study_plan`):
    FT forgets at least half of step 0's old-class mIoU; MiB keeps at least 70% of it and learns
    the new classes; Joint is above MiB; the output-distillation methods (LwF, LwF-MC, ILT, when run)
    sit between FT and MiB; the feature-space methods (PLOP, SDR, when run) keep more of the old
    classes than MiB (their papers' VOC 15-1 overlapped rows: MiB
    29.7 all, SDR 39.5, PLOP 54.6).

    "Learns the new classes" is new mIoU >= 30 for a task whose steps add several classes (15-5),
    and, for a task of one-class steps (15-1, 10-1, 19-1) when FT is run, new mIoU above FT's:
    there a step's few images teach its class, later steps erode it, and the MiB paper's own
    15-5s row has MiB at 13.5 new against FT's 1.8 (Cermelli et al., CVPR 2020, Table 1,
    overlapped), so no absolute bar is the paper's; FT keeps only the last step's class.
    """

    out = []
    for task in plan["tasks"]:
        relative = one_class_steps(task) and "ft" in plan["methods"]
        for setting in plan["settings"]:
            m = lambda method, part="old", task=task, setting=setting: Metric(method, part, task, setting)  # noqa: E731
            where = f"{task} {setting}"
            learns = (
                Finding(
                    f"{where}: MiB learns more of the new classes than FT (new)", m("mib", "new"), ">", m("ft", "new")
                )
                if relative
                else Finding(f"{where}: MiB learns the new classes (new mIoU >= 30)", m("mib", "new"), ">=", 30.0)
            )
            out += [
                Finding(
                    f"{where}: FT forgets at least half of step 0's old-class mIoU", m("ft"), "<=", m("step0"), 0.5
                ),
                Finding(f"{where}: MiB keeps at least 70% of step 0's old-class mIoU", m("mib"), ">=", m("step0"), 0.7),
                learns,
                Finding(f"{where}: Joint is above MiB (all)", m("joint", "all"), ">", m("mib", "all")),
            ]
            for method in methods_of("output distillation"):  # between FT and MiB, as in MiB's tables
                if method in plan["methods"]:
                    name = display_name(method)
                    out += [
                        Finding(f"{where}: {name} keeps more than FT", m(method), ">", m("ft")),
                        Finding(f"{where}: {name} keeps less than MiB", m(method), "<", m("mib")),
                    ]
            for method in methods_of("feature space"):  # where their papers show them: one-class steps
                if method in task_methods(plan, task):
                    name = display_name(method)
                    out.append(Finding(f"{where}: {name} keeps more old-class mIoU than MiB", m(method), ">", m("mib")))
    return out


def replay_findings(plan: dict, mode: str = "per-class") -> list[Finding]:
    """Notebook 03's story: SMiB with the smallest memory keeps more old-class mIoU than MiB, and
    the largest memory more than the smallest (``plan`` from :func:`~incseg_lib.experiment.replay_plan`;
    not claimed where ``plan["size_effect"]`` is False, as on the demo's shapes).
    On a task of one-class steps (15-1) the memory also holds the classes each step added, so SMiB
    keeps more of the new classes than MiB too (MiB has only distillation to keep step 1's class
    through four more steps). ``mode``: the memory budget's unit (``per-class``: exemplars per
    class; ``total``: images in all), as the findings then say it."""
    small, large = min(plan["sizes"]), max(plan["sizes"])
    size = (lambda k: f"{k}/class") if mode == "per-class" else (lambda k: f"{k} images in all")  # noqa: E731
    out = []
    for task in plan["tasks"]:
        for setting in plan["settings"]:
            if "mib" not in plan["methods"]:
                continue
            smib = lambda k, part="old", task=task, setting=setting: Metric("smib", part, task, setting, exemplars=k)  # noqa: E731
            out.append(
                Finding(
                    f"{task} {setting}: SMiB ({size(small)}) keeps more old-class mIoU than MiB",
                    smib(small),
                    ">",
                    Metric("mib", "old", task, setting),
                )
            )
            if one_class_steps(task):
                out.append(
                    Finding(
                        f"{task} {setting}: SMiB ({size(small)}) keeps more of the steps' new classes than MiB",
                        smib(small, "new"),
                        ">",
                        Metric("mib", "new", task, setting),
                    )
                )
            if large > small and plan.get("size_effect", True):
                out.append(
                    Finding(
                        f"{task} {setting}: more memory keeps more ({size(large)} vs {size(small)})",
                        smib(large),
                        ">",
                        smib(small),
                    )
                )
    return out


def synthetic_aggregation(record: dict) -> str:
    """The class-target aggregation of a synthetic-replay record (``lse`` for records made before the
    option existed)."""
    return ((record.get("synthetic") or {}).get("settings") or {}).get("aggregation", "lse")


def inversion_findings(plan: dict) -> list[Finding]:
    """Notebook 04's story: MiB+DI keeps more old-class mIoU than MiB; FT+DI more than FT (with the
    plan's first aggregation); and with every further aggregation (scale-aware) MiB+DI keeps more than
    MiB too."""
    aggregations = plan.get("aggregations", ["lse"])
    out = []
    for task in plan["tasks"]:
        for setting in plan["settings"]:
            for method in ("mib", "ft"):  # DeepInversion's replay on the course's reference and on FT
                name = display_name(method)
                if method in plan["methods"]:
                    out.append(
                        Finding(
                            f"{task} {setting}: {name}+DI keeps more old-class mIoU than {name}",
                            Metric(f"{method}+di", "old", task, setting, aggregation=aggregations[0]),
                            ">",
                            Metric(method, "old", task, setting),
                        )
                    )
            for agg in aggregations[1:] if "mib" in plan["methods"] else []:
                out.append(
                    Finding(
                        f"{task} {setting}: MiB+DI ({agg}) keeps more old-class mIoU than MiB",
                        Metric("mib+di", "old", task, setting, aggregation=agg),
                        ">",
                        Metric("mib", "old", task, setting),
                    )
                )
    return out


def weak_findings(plan: dict) -> list[Finding]:
    """Notebook 05's story: SEAM's pseudo-labels localise the new classes far better than chance
    (new-class IoU at least twice that of labels drawn at random among background and the image's
    classes), and MiB-S sits between FT-S and MiB with masks (all)."""
    out = []
    for task in plan["tasks"]:
        for setting in plan["settings"]:
            m = lambda method, part="all", task=task, setting=setting: Metric(method, part, task, setting)  # noqa: E731
            where = f"{task} {setting}"
            if "mib" in plan["methods"]:
                out += [
                    Finding(
                        f"{where}: MiB-S's pseudo-labels find the new classes (IoU at least twice chance)",
                        m("mib-s", "pseudo_new"),
                        ">=",
                        m("mib-s", "pseudo_chance_new"),
                        2.0,
                    ),
                    Finding(f"{where}: MiB-S is below MiB with masks (all)", m("mib-s"), "<", m("mib")),
                ]
                if "ft" in plan["methods"]:
                    out.append(Finding(f"{where}: MiB-S is above FT-S (all)", m("mib-s"), ">", m("ft-s")))
    return out
