"""Run names: the one module that builds and reads them.

A *run* is a method trained through the steps of a task: plain (``mib``), or a variant of it whose
name says what it trains on besides the step's masks. Its full name (what its checkpoints are
filed under) carries the variant's tag; its *recorded* name (what results records, tables and
findings use) drops the tag::

    run name                        recorded as   shown as
    mib                             mib           MiB
    mib+mem-5pc-class-balanced      smib          SMiB           exemplar memory (SMiB for MiB)
    ft+mem-20tot-herding            ft+mem        FT + memory
    mib+di-<digest>                 mib+di        MiB+DI         DeepInversion's synthetic images
    mib+seam-<digest>               mib-s         MiB-S          SEAM pseudo-labels instead of masks
    joint-s+mib-<digest>            joint-s       Joint-S        Joint on those pseudo-labels
    step0, step0-bce, joint, offline                             the runs that are not step methods

A recorded name may carry a variant after ``|`` (``smib|5pc-class-balanced``) where a table must
tell two runs of one method apart. :mod:`incseg_lib.experiment.keys` computes the tags (from the
variant's options) and the checkpoint paths; everything else reads names through this module.
"""

from __future__ import annotations

from .methods import is_method, method_spec, step0_label, step0_names

#: Run-name infixes of the variants: exemplar memory, synthetic images, SEAM pseudo-labels.
REPLAY, SYNTHETIC, WEAK = "+mem-", "+di-", "+seam-"
VARIANTS = (REPLAY, SYNTHETIC, WEAK)
#: Recorded names of the runs that are not (variants of) step methods, and their labels.
_RUN_LABELS = {"smib": "SMiB", "joint": "Joint", "joint-s": "Joint-S", "offline": "offline"}
#: Recorded suffix of each variant and how it is shown after the method's label.
_SUFFIXES = {REPLAY: ("+mem", " + memory"), SYNTHETIC: ("+di", "+DI"), WEAK: ("-s", "-S")}


def run_name(method: str, variant: str = "", tag: str = "") -> str:
    """The full run name of ``method`` with ``variant`` (one of :data:`VARIANTS`, or ``""``) and its
    ``tag``: ``run_name("mib", REPLAY, "5pc-class-balanced")`` -> ``mib+mem-5pc-class-balanced``.

    Raises:
        ValueError: an unknown variant, or a variant without its tag.
    """
    if not variant:
        return method
    if variant not in VARIANTS or not tag:
        raise ValueError(f"run variant {variant!r} with tag {tag!r}; choose one of {VARIANTS} and give its tag")
    return f"{method}{variant}{tag}"


#: The detail of a linear probe's recorded name (``ft|probe``, shown ``FT (probe)``): the probe of a
#: run's model after a step (:mod:`incseg_lib.experiment.probing`).
PROBE = "probe"


def probe_name(recorded: str) -> str:
    """The recorded name of the probe of a recorded run: ``ft`` -> ``ft|probe``."""
    return f"{recorded}|{PROBE}"


def is_probe(recorded: str) -> bool:
    """Whether a recorded name is a probe's (``ft|probe``)."""
    return recorded.partition("|")[2] == PROBE


def joint_weak_run_name(source: str, tag: str) -> str:
    """``joint-s+mib-<tag>``: Joint on the pseudo-labels that ``source``'s weak run trained on."""
    return f"joint-s+{source}-{tag}"


def parse_run_name(name: str) -> tuple[str, str]:
    """``(method, variant)`` of a full run name: ``("mib", REPLAY)`` for ``mib+mem-5pc-...``,
    ``("mib", "")`` for ``mib``."""
    for variant in VARIANTS:
        if variant in name:
            return name.split(variant, 1)[0], variant
    return name, ""


def replay_method_name(method: str) -> str:
    """The recorded name of ``method`` with rehearsal: ``mib`` -> ``smib``, else ``<method>+mem``."""
    return "smib" if method == "mib" else f"{method}{_SUFFIXES[REPLAY][0]}"


def recorded_name(name: str) -> str:
    """What a run is recorded (and shown) as: ``smib``, ``ft+mem``, ``mib+di``, ``mib-s`` or the method
    (Joint-S is recorded as ``joint-s`` by the step that trains it)."""
    base, variant = parse_run_name(name)
    if variant == REPLAY:
        return replay_method_name(base)
    return f"{base}{_SUFFIXES[variant][0]}" if variant else name


def base_method(recorded: str) -> tuple[str, str]:
    """``(method, variant)`` of a recorded name: ``("mib", REPLAY)`` for ``smib`` or ``smib|5pc``,
    ``("ft", SYNTHETIC)`` for ``ft+di``, ``("mib", WEAK)`` for ``mib-s``, ``(name, "")`` otherwise."""
    name = recorded.partition("|")[0]
    if name == "smib":
        return "mib", REPLAY
    for variant, (suffix, _) in _SUFFIXES.items():
        if name.endswith(suffix) and is_method(name[: -len(suffix)]):
            return name[: -len(suffix)], variant
    return name, ""


def is_replay(recorded: str) -> bool:
    """Whether a recorded run replays an exemplar memory (``smib``, ``ft+mem``)."""
    return base_method(recorded)[1] == REPLAY


def display_name(recorded: str) -> str:
    """The field's name for a recorded run (``mib`` -> ``MiB``; ``smib|5pc-class-balanced`` ->
    ``SMiB (5pc-class-balanced)``); unknown names are returned as given."""
    name, _, detail = recorded.partition("|")
    if is_method(name):
        label = method_spec(name).label
    elif name in step0_names():
        label = step0_label(name)
    elif name in _RUN_LABELS:
        label = _RUN_LABELS[name]
    else:
        base, variant = base_method(name)
        label = method_spec(base).label + _SUFFIXES[variant][1] if variant and is_method(base) else name
    return f"{label} ({detail})" if detail else label


def run_label(name: str) -> str:
    """What a person reads for a full run name (training log lines): the display name, and for an
    exemplar memory its size and selection (``mib+mem-5pc-class-balanced`` -> ``SMiB (memory
    5/class, class-balanced)``, ``ft+mem-20tot-herding`` -> ``FT + memory (memory 20 in total,
    herding)``); a synthetic or SEAM run by its name alone (its tag is a digest)."""
    import re

    base, variant = parse_run_name(name)
    label = display_name(recorded_name(name))
    m = re.fullmatch(r"(\d+)(pc|tot)-(.+)", name.split(REPLAY, 1)[1]) if variant == REPLAY else None
    if m:
        size = f"{m[1]}/class" if m[2] == "pc" else f"{m[1]} in total"
        label += f" (memory {size}, {m[3]})"
    return label


def run_rank(recorded: str) -> tuple:
    """Table order of a recorded run: step-0 runs, the registered methods in their declared order
    (each method's memory, DeepInversion and SEAM runs right after it), SMiB, then Joint and
    anything else; ties by name."""
    name = recorded.partition("|")[0]
    if name in step0_names():
        return (0, step0_names().index(name), recorded)
    base, variant = base_method(name)
    if is_method(base) and not (variant == REPLAY and name == "smib"):
        return (1, method_spec(base).order, recorded)
    return (2 if name == "smib" else 3, 0, recorded)
