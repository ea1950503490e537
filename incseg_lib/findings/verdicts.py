"""Checking a run: each finding's verdict on the records against the profile's calibration, shown and
saved."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from ..log import get_logger
from ..results import as_records
from .calibration import calibration_key, calibration_line, load_calibration
from .claims import Finding, FindingResult
from .text import format_lines, save

log = get_logger(__name__)


def check(
    findings: list[Finding],
    records: Iterable[Mapping],
    *,
    notebook: str = "",
    run_dir: str | Path | None = None,
    profile: str = "",
    dataset: str = "",
) -> list[FindingResult]:
    """Evaluate ``findings`` on ``records``; print them, and save them to ``run_dir/findings/<notebook>.json``.

    Args:
        profile, dataset: whose calibration gives the margins (:func:`load_calibration`); empty =
            uncalibrated (margin 0 unless a finding sets its own).

    Returns the results in declaration order. Never raises for a finding that does not hold: it is
    reported as ``not reproduced``, ``varies`` or ``no data`` with its numbers.
    """
    records = as_records(records)
    calibration = load_calibration(profile, dataset) if profile and dataset else None
    entries = (calibration or {}).get("findings", {})
    out = []
    for f in findings:
        res = f.check(records, entries.get(calibration_key(notebook, f.name)))
        res.notebook = notebook
        out.append(res)
    for line in format_lines(out):
        log.info(line)
    if profile:
        log.info(f"({calibration_line(calibration)})")
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
