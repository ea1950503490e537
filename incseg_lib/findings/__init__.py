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

The package is split by job: :mod:`.claims` (:class:`Metric`, :class:`Finding`,
:class:`FindingResult`), :mod:`.verdicts` (:func:`check`), :mod:`.text` (tables and take-aways),
:mod:`.calibration` and :mod:`.expected` (each lab's findings).
"""

from .calibration import (
    CALIBRATION_DIR,
    calibrate,
    calibration_file,
    calibration_key,
    calibration_line,
    calibration_table,
    check_calibration,
    load_calibration,
    update_calibration,
)
from .claims import (
    NO_DATA,
    NOT_REPRODUCED,
    OUTSIDE,
    REPRODUCED,
    VARIES,
    Finding,
    FindingResult,
    Metric,
    synthetic_aggregation,
)
from .expected import incremental_findings, inversion_findings, probing_findings, replay_findings, weak_findings
from .text import (
    findings_table,
    format_lines,
    grid_takeaway_lines,
    load,
    load_file,
    save,
    takeaway_lines,
    takeaways,
    trained_line,
)
from .verdicts import check

__all__ = [
    "NO_DATA",
    "NOT_REPRODUCED",
    "REPRODUCED",
    "VARIES",
    "calibrate",
    "CALIBRATION_DIR",
    "calibration_file",
    "calibration_key",
    "calibration_line",
    "calibration_table",
    "check",
    "check_calibration",
    "Finding",
    "FindingResult",
    "findings_table",
    "format_lines",
    "grid_takeaway_lines",
    "incremental_findings",
    "inversion_findings",
    "load",
    "load_calibration",
    "load_file",
    "Metric",
    "OUTSIDE",
    "probing_findings",
    "replay_findings",
    "save",
    "synthetic_aggregation",
    "takeaway_lines",
    "takeaways",
    "trained_line",
    "update_calibration",
    "weak_findings",
]
