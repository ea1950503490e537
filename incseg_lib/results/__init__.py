"""The results registry: one JSON record per evaluation, under ``<run dir>/results/``.

Records are written atomically and never overwritten (each gets a unique name; creating an
existing name fails). Notebook 06 and the HTML report read them back with :func:`load`.

Split by job: :mod:`.records` (write, read and check records; :class:`Record`, the typed record,
and the queries :func:`select`, :func:`latest`, :func:`final_steps`), :mod:`.labels` (what a person
reads: a run's name and what tells runs apart), :mod:`.tables` (what notebooks and the report
show) and :mod:`.probing` (notebook 07's probe and fusion tables).
"""

from .labels import AGGREGATION_LABELS, aggregation_label, display_labels, display_name, row_name, run_labels
from .probing import fusion_frame, probe_frame
from .records import (
    REQUIRED,
    Record,
    as_records,
    check_record,
    class_order,
    final_steps,
    find_record,
    find_runs,
    latest,
    load,
    record,
    select,
)
from .tables import (
    class_forgetting,
    class_iou,
    comparison_lines,
    forgetting,
    hiou_percent,
    incremental_table,
    iou_table,
    joint_ratio,
    memory_table,
    miou_by_memory,
    miou_by_step,
    provenance_table,
    pseudo_label_table,
    record_hiou,
    records_table,
    shown,
    synthetic_vs_real_lines,
    training_curves,
)

__all__ = [
    "fusion_frame",
    "probe_frame",
    "AGGREGATION_LABELS",
    "aggregation_label",
    "as_records",
    "check_record",
    "class_forgetting",
    "class_iou",
    "class_order",
    "comparison_lines",
    "synthetic_vs_real_lines",
    "display_labels",
    "display_name",
    "final_steps",
    "find_record",
    "find_runs",
    "forgetting",
    "hiou_percent",
    "incremental_table",
    "iou_table",
    "joint_ratio",
    "latest",
    "load",
    "memory_table",
    "miou_by_memory",
    "miou_by_step",
    "provenance_table",
    "pseudo_label_table",
    "record",
    "Record",
    "record_hiou",
    "records_table",
    "REQUIRED",
    "row_name",
    "select",
    "run_labels",
    "shown",
    "training_curves",
]
