"""What a finding says: the lines of a findings table and of a notebook's take-away, generated from the
verdicts and the records; saving and loading a notebook's findings."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path

from ..env import provenance
from ..results import as_records, display_name
from ..store import atomic_write_json
from .claims import NO_DATA, NOT_REPRODUCED, OUTSIDE, REPRODUCED, VARIES, FindingResult, decimals


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
    d = decimals(a, b) if r.factor == 1 else 1
    left = f"{r.left_phrase or 'the measured value'} ({a:.{d}f})"
    if not r.right_phrase:  # a constant bound
        rel = "reaches" if a >= b else "stays below"
        return f"{left} {rel} {b:.{d}f}"
    right = f"{r.right_phrase} ({b:.{d}f})"
    if r.factor != 1:
        share = 100 * a / b if b else float("inf")
        return f"{left} is {share:.0f}% of {right}"
    if a == b:
        return f"{left} equals {right}"
    return f"{left} is {'above' if a > b else 'below'} {right} by {abs(a - b):.{d}f} points"


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


def trained_line(records: Iterable[Mapping], notebook: str, methods: list[str]) -> str:
    """Which of the ``methods`` (ids) a notebook discusses this run trained, and which it did not,
    so a take-away never speaks of a method as if it had run.

    Args:
        records: results records; those of ``notebook`` count.
        methods: method ids in the order the notebook presents them (``ft``, ``lwf`` ...).
    """
    ran = {r.method for r in as_records(records) if r.notebook == notebook}
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


def grid_takeaway_lines(records: Iterable[Mapping]) -> list[str]:
    """What an offline grid's records say about its hyperparameters, generated so that it matches
    them: with one configuration, that the grid cannot rank anything; otherwise, per varied knob
    (backbone, learning rate, batch size), the best mIoU (all classes, %) at each value and the spread.

    Args:
        records: offline results records (``method == "offline"``); others are ignored.
    """
    recs = [r for r in as_records(records) if r.method == "offline" and r.miou_all is not None]
    if not recs:
        return ["**Not in this run**: no offline model was trained."]
    best = max(recs, key=lambda r: r.miou_all)
    where = ", ".join(f"{word} {fmt(best[k])}" for k, word, fmt in _GRID_KNOBS if k in best)
    lines = [
        f"The best configuration ({where}) reaches {100 * best.miou_all:.1f} mIoU; "
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
            by_value[r.get(k)] = max(by_value.get(r.get(k), 0.0), 100 * r.miou_all)
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
