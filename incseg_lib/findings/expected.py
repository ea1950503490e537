"""Each lab's expected findings (notebooks 02-05), from its plan: the claims a run of the notebook is
checked against."""

from __future__ import annotations

from ..config import task_methods
from ..methods import methods_of
from ..results import display_name
from ..tasks import one_class_steps
from .claims import Finding, Metric


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
