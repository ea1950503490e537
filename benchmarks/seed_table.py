"""The demo's results over several suite runs (seeds, thread counts): per notebook, task and method,
mIoU after the last step (old / new / all) in every run, then mean +- sd with hIoU; the tables of
docs/results.md, "Demo profile".

    python benchmarks/seed_table.py runs/demo-calibration/seed-* runs/threads-2
    python benchmarks/seed_table.py --sweep runs/demo-calibration/seed-*

Each run is a suite folder (``incseg suite --out``); a run that did not train a row shows ``-``.
A model several notebooks evaluate is listed once, under the lowest-numbered of them; the models
EWF's slider re-fuses (notebook 07) are left to ``--sweep``, which prints old / new per weight.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from incseg_lib import results
from incseg_lib.metrics import harmonic_iou


def rows(run: Path) -> dict[tuple, results.Record]:
    """``{(notebook, task, display label): record}`` of ``run``'s last steps; a model several notebooks
    evaluate (MiB on 15-5 in 02, 04 and 05) is listed once, under the lowest-numbered of them."""
    records = [r for r in results.load(run) if "ewf_w" not in r]  # EWF's slider: a table of its own
    out: dict[tuple, results.Record] = {}
    seen: set[tuple] = set()
    for notebook in sorted({r.notebook for r in records}):
        finals = results.final_steps([r for r in records if r.notebook == notebook])
        for task in sorted({r.task for r in finals}):
            rs = [r for r in finals if r.task == task]
            for r, label in zip(rs, results.display_labels(rs)):
                if (task, label) not in seen:
                    seen.add((task, label))
                    out[(notebook[:2], task, label)] = r
    return out


def _pct(r: results.Record, part: str) -> float | None:
    v = r.get(f"miou_{part}")
    return None if v is None else 100 * float(v)


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.1f} ± {sd:.1f}"


def tables(runs: list[Path]) -> str:
    """Markdown: every run's old / new / all per row, then mean +- sd and hIoU over the runs."""
    per_run = [rows(run) for run in runs]
    keys = sorted({k for rs in per_run for k in rs}, key=lambda k: (k[0], k[1], k[2]))
    head = "| notebook | task | method | " + " | ".join(run.name for run in runs) + " |"
    lines = [head, "|" + "---|" * (3 + len(runs))]
    for k in keys:
        cells = []
        for rs in per_run:
            r = rs.get(k)
            if r is None:
                cells.append("-")
                continue
            parts = [_pct(r, p) for p in ("old", "new", "all")]
            cells.append(" / ".join("-" if v is None else f"{v:.1f}" for v in parts))
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(cells) + " |")
    lines += ["", "| notebook | task | method | runs | old | new | all | hIoU |", "|---|---|---|---|---|---|---|---|"]
    for k in keys:
        found = [rs[k] for rs in per_run if k in rs]
        old = [v for v in (_pct(r, "old") for r in found) if v is not None]
        new = [v for v in (_pct(r, "new") for r in found) if v is not None]
        all_ = [v for v in (_pct(r, "all") for r in found) if v is not None]
        hiou = [harmonic_iou(o, n) for o, n in zip(old, new)] if len(old) == len(new) else []
        lines.append(
            f"| {k[0]} | {k[1]} | {k[2]} | {len(found)} | {_fmt(old)} | {_fmt(new)} | {_fmt(all_)} | "
            f"{_fmt([h for h in hiou if h is not None])} |"
        )
    return "\n".join(lines)


def sweep_table(runs: list[Path]) -> str:
    """Markdown: EWF's slider (notebook 07), old / new mIoU per weight of the new model in every run."""
    frames = []
    for run in runs:
        recs = results.load(run)
        tasks = sorted({r.task for r in recs if "ewf_w" in r})
        frames += [(run.name, t, results.fusion_frame(recs, recs[0].dataset, t, "overlapped")) for t in tasks]
    weights = sorted({round(w, 2) for _, _, f in frames for w in f["w"]})
    lines = ["| run | task | " + " | ".join(f"w={w:.2f}" for w in weights) + " |", "|" + "---|" * (2 + len(weights))]
    for name, task, f in frames:
        cell = {round(r.w, 2): f"{r.old:.1f} / {r.new:.1f}" + (" *" if r.default else "") for r in f.itertuples()}
        lines.append(f"| {name} | {task} | " + " | ".join(cell.get(w, "-") for w in weights) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="suite run folders")
    parser.add_argument("--sweep", action="store_true", help="EWF's slider per run instead (notebook 07)")
    args = parser.parse_args(argv)
    missing = [str(r) for r in args.runs if not (r / "results").is_dir()]
    if missing:
        parser.error(f"not a suite run folder (no results/ inside): {', '.join(missing)}")
    print(sweep_table(args.runs) if args.sweep else tables(args.runs))


if __name__ == "__main__":
    main()
