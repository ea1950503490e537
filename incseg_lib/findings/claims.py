"""A finding is a claim on the records: Metric (a number read from the records), Finding (two metrics
compared, or one against a bar) and FindingResult (its verdict against the calibration)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..results import aggregation_label, as_records, display_name, latest
from ..tasks import get_task

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
            name += f" ({aggregation_label(self.aggregation)})"
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
            name += f" ({aggregation_label(self.aggregation)})"
        part = _PART_WORDS.get(self.part, self.part)
        step = "" if self.step is None else f" after step {self.step}"
        return f"{name}'s {part}{step}"

    def value(self, records: Iterable[Mapping]) -> float | None:
        """The metric in % (2 decimals) from the newest matching full-image record, or None if there is none."""

        key = self.part if self.part == "pixel_acc" or self.part.startswith("pseudo") else f"miou_{self.part}"
        best = None
        for r in latest(records):
            if r.eval_protocol != "full":
                continue
            if r.method != self.method:
                continue
            if (self.task and r.task != self.task) or (self.setting and r.setting != self.setting):
                continue
            if self.exemplars is not None and (r.get("replay") or {}).get("budget") != self.exemplars:
                continue
            if self.aggregation is not None and synthetic_aggregation(r) != self.aggregation:
                continue
            step = self.step
            if step is None:
                try:
                    step = 0 if self.method in ("step0", "offline") else len(get_task(r.dataset, r.task)) - 1
                except (KeyError, ValueError):
                    continue
            if r.step != step or r.get(key) is None:
                continue
            if best is None or r.created_ns >= best.created_ns:
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

    def check(self, records: Iterable[Mapping], calibration: dict | None = None) -> FindingResult:
        """Evaluate on ``records``; ``calibration`` is this finding's entry of a profile's calibration
        (``{"margin", "verdict", "gaps", ...}``, see :func:`calibrate`), or None."""
        records = as_records(records)
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
        d = decimals(a, bound)  # 42.74 > 42.70, never "42.7 > 42.7"
        scaled = f"{self.factor:g} x {b:.{d}f} = {bound:.{d}f}" if self.factor != 1 else f"{b:.{d}f}"
        rhs = scaled if isinstance(self.right, Metric) else f"{bound:.{d}f}"
        detail = f"{self.left.label()} {a:.{d}f} {self.op} {rhs}" + (
            f" ({b_label})" if isinstance(self.right, Metric) else ""
        )
        detail += f"; gap {gap:+.{d}f}" + (f" (needs more than {margin:g})" if margin else "")
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


def decimals(a: float, b: float) -> int:
    """Decimals to print two numbers (points of mIoU) with: 1, or as many (up to 3) as it takes for
    two different numbers not to read as equal (42.74 and 42.70, not 42.7 and 42.7)."""
    for d in (1, 2, 3):
        if f"{a:.{d}f}" != f"{b:.{d}f}":
            return d
    return 1


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


def synthetic_aggregation(record: dict) -> str:
    """The class-target aggregation of a synthetic-replay record (``lse`` for records made before the
    option existed)."""
    return ((record.get("synthetic") or {}).get("settings") or {}).get("aggregation", "lse")
