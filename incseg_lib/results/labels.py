"""Labels a person reads: the field's name of a recorded run, and what tells two runs of one method
apart (memory, selection, aggregation, ...) in a table's row names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .. import runs
from .records import Record, as_records

# ---------------------------------------------------------------------- incremental tables
display_name = runs.display_name  # the field's name for a recorded run (``smib`` -> ``SMiB``)


# ---------------------------------------------------------------------- labels a person reads
_SKIPPED_CONFIG = {"run_dir", "data_root", "checkpoint_dir", "device", "num_workers", "profile"}


# How tables, figures and findings name DeepInversion's class-target aggregations (never the code ``lse``).
AGGREGATION_LABELS = {"lse": "LSE", "scale-aware": "scale-aware"}


def aggregation_label(aggregation: str) -> str:
    """``"LSE"`` for ``lse``; other aggregations as named."""
    return AGGREGATION_LABELS.get(aggregation, aggregation)


def _describe(r: Record) -> list[tuple[str, str]]:
    """What tells ``r`` apart from other records of its method, most telling first: ``(key, text)``."""
    parts: list[tuple[str, str]] = []
    rep = r.get("replay") or {}
    if rep:
        per_class = rep.get("mode", "per-class") == "per-class"
        parts.append(("memory", f"{rep.get('budget')}/class" if per_class else f"{rep.get('budget')} in total"))
        parts.append(("selection", str(rep.get("strategy", "class-balanced"))))
        parts.append(("share", f"replay share {rep.get('share', 0.5):g}"))
        parts.append(("old labels", "old labels kept" if rep.get("old_labels_on_new") else "new labels only"))
    syn = (r.get("synthetic") or {}).get("settings") or {}
    if r.get("synthetic"):
        aggregation = syn.get("aggregation", "lse")
        parts.append(("aggregation", aggregation_label(aggregation)))
        parts.append(("images", f"{syn.get('images_per_class', '?')} image(s)/class"))
        parts.append(("labels", "unlabelled" if syn.get("replay_labels") == "none" else "pseudo-labelled"))
    seam = (r.get("weak") or {}).get("seam") or {}
    if isinstance(seam, dict) and seam:
        parts.append(("cams", f"{str(seam.get('cam_source', 'pcm')).upper()} labels"))
        parts.append(("fusion", "fused with the old model" if seam.get("fuse_old", True) else "not fused"))
        parts.append(("threshold", f"background threshold {seam.get('bg_threshold')}"))
    backbone = str(r.backbone)
    parts.append(("backbone", backbone.replace("resnet", "ResNet-") if backbone.startswith("resnet") else backbone))
    groups = {"replay": rep, "synthetic": syn, "weak": seam if isinstance(seam, dict) else {}}
    groups["config"] = {k: v for k, v in (r.config or {}).items() if k not in _SKIPPED_CONFIG}
    for group, settings in groups.items():  # every other setting, shown only when nothing named tells apart
        for k, v in sorted(settings.items()):
            if isinstance(v, (int, float, str, bool)):
                parts.append((f"{group}.{k}", f"{k.replace('_', ' ')} {f'{v:g}' if isinstance(v, float) else v}"))
    return parts


def display_labels(records: Iterable[Mapping], *, shown_elsewhere: Iterable[str] = ()) -> list[str]:
    """A label per record for one table or figure: the method's name (:func:`display_name`), and where
    two records share a method what tells them apart (``SMiB (1/class)``, ``MiB+DI (scale-aware)``).

    A replay run always shows its memory; other settings only when they differ between records of
    the same method: a named setting (memory, selection, aggregation, SEAM's labels, backbone ...)
    when the named ones tell the records apart, else every setting that differs. Internal run
    codes (``variant``, such as ``di-1pc-60+30it-64px``) never appear. Records alike in everything
    are numbered (``FT #1``, ``FT #2``).

    Args:
        records: results records (:class:`~incseg_lib.results.Record`, or their dictionaries):
            ``replay``, ``synthetic``, ``weak``, ``backbone`` and ``config`` tell them apart.
        shown_elsewhere: keys of :func:`_describe` the caller shows beside the label (a memory
            column: ``("memory", "selection")``): left out of the labels, and records that differ
            in them need not be told apart by the label.

    Returns:
        One label per record, in the order of ``records``.
    """
    records = as_records(records)
    hidden = set(shown_elsewhere)
    described = [dict(_describe(r)) for r in records]
    elsewhere = [tuple(str(d.get(k)) for k in sorted(hidden)) for d in described]
    labels = []
    for i, r in enumerate(records):
        mine = {k: v for k, v in described[i].items() if k not in hidden}
        same = [described[j] for j, o in enumerate(records) if o.method == r.method and elsewhere[j] == elsewhere[i]]
        differ = [k for k in mine if len({str(d.get(k)) for d in same}) > 1]
        named = [k for k in differ if "." not in k]  # a named difference says enough; other settings if needed
        keys = named if named and _tells_apart(same, named) else differ
        extra = [v for k, v in mine.items() if k in keys or k == "memory"]  # a replay run always shows its memory
        labels.append(display_name(r.method) + (f" ({', '.join(extra)})" if extra else ""))
    tagged = list(zip(labels, elsewhere))
    alike = {t for t in tagged if tagged.count(t) > 1}  # a re-run with the same settings: numbered
    seen: dict[tuple, int] = {}
    for i, t in enumerate(tagged):
        if t in alike:
            seen[t] = seen.get(t, 0) + 1
            labels[i] = f"{labels[i]} #{seen[t]}"
    return labels


def _tells_apart(described: list[dict], keys: list[str]) -> bool:
    """Whether the values of ``keys`` differ between every two of ``described``."""
    values = [tuple(str(d.get(k)) for k in keys) for d in described]
    return len(set(values)) == len(values)


def run_labels(records: Iterable[Mapping], *, shown_elsewhere: Iterable[str] = ()) -> list[str]:
    """A label per record, the same for every record of one run whatever its task or step.

    A run is a method with its variant (a memory, a synthetic set, SEAM's labels: ``smib`` with 1
    and with 5 exemplars per class are two runs). Each run is labelled by :func:`display_labels`
    of its newest record among ``records``, so a table over several tasks gets one row per run
    (``SMiB (1/class)``), never an internal run code.

    Args:
        records: results records (``method``; ``variant`` and the fields of :func:`display_labels`).
        shown_elsewhere: as in :func:`display_labels`.

    Returns:
        One label per record, in the order of ``records``.
    """
    records = as_records(records)
    runs = [row_name(r) for r in records]
    newest: dict[str, Record] = {}
    for r, run in zip(records, runs):
        if run not in newest or r.created_ns >= newest[run].created_ns:
            newest[run] = r
    named = dict(zip(newest, display_labels(list(newest.values()), shown_elsewhere=shown_elsewhere)))
    return [named[run] for run in runs]


def row_name(r: Mapping) -> str:
    """A run: a table row per method, and per memory for replay runs: ``smib`` with 1 and 5 exemplars
    per class are two rows (``smib|1pc-class-balanced``), shown as ``SMiB (1/class)``."""
    r = Record.from_dict(r)
    tagged = r.get("replay") or r.get("synthetic") or r.get("weak") or r.get("joint_weak")
    return r.method + (f"|{r.variant}" if r.variant and tagged else "")
