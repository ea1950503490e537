"""Each lab's expected findings (notebooks 02-05 and 07), from its plan: the claims a run of the notebook is
checked against."""

from __future__ import annotations

from ..config import task_methods
from ..methods import methods_of
from ..results import display_name
from ..tasks import one_class_steps, task_steps
from .claims import Finding, Metric


# ---------------------------------------------------------------------- each lab's expected findings
def incremental_findings(plan: dict) -> list[Finding]:
    """Notebook 02's story per task and setting of ``plan`` (:func:`~incseg_lib.experiment.study_plan`),
    each claim one that MiB's and the later papers' tables show (Cermelli et al., CVPR 2020, Table 1;
    Douillard et al., CVPR 2021, Tables 1-2; VOC overlapped):

    - FT forgets at least half of step 0's old-class mIoU (MiB's table: FT keeps 2.1 of ~80 on 15-5).
    - MiB keeps more old-class mIoU than FT, and where a step adds several classes (15-5) at least
      70% of step 0's (MiB 15-5: 76.4 old); over one-class steps MiB itself forgets (15-5s: 35.1
      old, 10-1 in PLOP's table: 12.3), so no share of step 0 is claimed there.
    - MiB learns more of the new classes than FT (15-5: 50.0 against 33.1; 15-5s: 13.5 against
      1.8); without FT in the plan, new mIoU >= 30 where a step adds several classes.
    - Joint is above MiB (all); the output-distillation methods (LwF, LwF-MC, ILT, when run) sit
      between FT and MiB; the feature-space methods (PLOP, SDR, when run) keep more of the old
      classes than MiB (15-1: MiB 29.7 all, SDR 39.5, PLOP 54.6; 10-1: MiB 12.7, PLOP 30.5).
    - Over two one-class sequences with MiB (15-1 and 10-1), MiB keeps less old-class mIoU after the
      longer one (PLOP's table: 35.1 after 15-1's five steps, 12.3 after 10-1's ten).
    """
    out = []
    for task in plan["tasks"]:
        ms = task_methods(plan, task)
        for setting in plan["settings"]:
            m = lambda method, part="old", task=task, setting=setting: Metric(method, part, task, setting)  # noqa: E731
            out += _incremental_task_findings(f"{task} {setting}", ms, m, several=not one_class_steps(task))
    out += _sequence_length_findings(plan)
    return out


def _incremental_task_findings(where: str, ms: list[str], m, several: bool) -> list[Finding]:
    """:func:`incremental_findings` for one task and setting: ``ms`` its methods, ``m(method, part)``
    its metric, ``several`` whether its steps add several classes."""
    out = []
    if "ft" in ms:
        out.append(
            Finding(f"{where}: FT forgets at least half of step 0's old-class mIoU", m("ft"), "<=", m("step0"), 0.5)
        )
    if "mib" in ms:
        if several:
            out.append(
                Finding(f"{where}: MiB keeps at least 70% of step 0's old-class mIoU", m("mib"), ">=", m("step0"), 0.7)
            )
        if "ft" in ms:
            out += [
                Finding(f"{where}: MiB keeps more old-class mIoU than FT", m("mib"), ">", m("ft")),
                Finding(
                    f"{where}: MiB learns more of the new classes than FT (new)", m("mib", "new"), ">", m("ft", "new")
                ),
            ]
        elif several:
            out.append(Finding(f"{where}: MiB learns the new classes (new mIoU >= 30)", m("mib", "new"), ">=", 30.0))
        out.append(Finding(f"{where}: Joint is above MiB (all)", m("joint", "all"), ">", m("mib", "all")))
    for method in methods_of("output distillation"):  # between FT and MiB, as in MiB's tables
        if method in ms:
            name = display_name(method)
            out += [Finding(f"{where}: {name} keeps more than FT", m(method), ">", m("ft"))] if "ft" in ms else []
            out += [Finding(f"{where}: {name} keeps less than MiB", m(method), "<", m("mib"))] if "mib" in ms else []
    for method in methods_of("feature space"):
        if method in ms and "mib" in ms:
            name = display_name(method)
            out.append(Finding(f"{where}: {name} keeps more old-class mIoU than MiB", m(method), ">", m("mib")))
    return out


def _sequence_length_findings(plan: dict) -> list[Finding]:
    """MiB after the shortest and the longest one-class sequence of ``plan`` that run it (15-1, 10-1)."""
    singles = [t for t in plan["tasks"] if one_class_steps(t) and "mib" in task_methods(plan, t)]
    if len(singles) < 2:
        return []
    by_steps = sorted(singles, key=task_steps)
    short, long = by_steps[0], by_steps[-1]
    if task_steps(short) == task_steps(long):
        return []
    return [
        Finding(
            f"{setting}: MiB keeps less old-class mIoU after {long}'s {task_steps(long) - 1} one-class "
            f"steps than after {short}'s {task_steps(short) - 1}",
            Metric("mib", "old", long, setting),
            "<",
            Metric("mib", "old", short, setting),
        )
        for setting in plan["settings"]
    ]


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


def probing_findings(plan: dict) -> list[Finding]:
    """Notebook 07's story per task and setting of ``plan``
    (:func:`~incseg_lib.experiment.probing_plan`), each a claim of its paper:

    - The probe of FT's features after the last step keeps more old-class mIoU than FT itself, and
      at least half of step 0's: much of what FT "forgets" is still in its features, its classifier
      has drifted (RevisitingCSS, Fig. 1: VOC 15-1, the probe 71 to 57 while FT falls 80 to 4).
    - DFT* keeps more old-class mIoU than FT and than MiB (RevisitingCSS, Table 1: 10-1, DFT* 44.4
      all against MiB's and PLOP's lower rows).
    - MiB+EWF keeps more old-class mIoU than MiB, and learns less of the new classes (Xiao et al.,
      CVPR 2023, Table 1: EWF's fusion trades plasticity for stability).
    """
    out = []
    for task in plan["tasks"]:
        ms = task_methods(plan, task)
        for setting in plan["settings"]:
            where = f"{task} {setting}"
            m = lambda method, part="old", task=task, setting=setting: Metric(method, part, task, setting)  # noqa: E731
            if "ft" in plan.get("probe", []) and "ft" in ms:
                out += [
                    Finding(
                        f"{where}: the probe of FT's features keeps more old-class mIoU than FT",
                        m("ft|probe"),
                        ">",
                        m("ft"),
                    ),
                    Finding(
                        f"{where}: the probe of FT's features keeps at least half of step 0's old-class mIoU",
                        m("ft|probe"),
                        ">=",
                        m("step0"),
                        0.5,
                    ),
                ]
            if "dft" in ms:
                out += [
                    Finding(f"{where}: DFT* keeps more old-class mIoU than {display_name(b)}", m("dft"), ">", m(b))
                    for b in ("ft", "mib")
                    if b in ms
                ]
            if "mib+ewf" in ms and "mib" in ms:
                out += [
                    Finding(f"{where}: MiB+EWF keeps more old-class mIoU than MiB", m("mib+ewf"), ">", m("mib")),
                    Finding(
                        f"{where}: MiB+EWF learns less of the new classes than MiB",
                        m("mib+ewf", "new"),
                        "<",
                        m("mib", "new"),
                    ),
                ]
    return out
