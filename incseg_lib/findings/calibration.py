"""The calibration: each finding's gaps over seeds, thread counts and PyTorch versions, shipped per
profile and dataset in incseg_lib/calibration/, and its verdict (holds, varies, fails)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .claims import VARIES
from .text import load_file

# ---------------------------------------------------------------------- calibration
CALIBRATION_DIR = Path(__file__).resolve().parents[1] / "calibration"


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
