"""Run identity: every run's tag and every checkpoint path, built here and nowhere else (run
names themselves are built and read by :mod:`incseg_lib.runs`)::

    mib+mem-5pc-class-balanced    exemplar memory (ReplayConfig.tag)       recorded as  smib
    ft+mem-20tot-herding          (any other method with memory)           recorded as  ft+mem
    mib+di-<digest>               DeepInversion's synthetic memory         recorded as  mib+di
    mib+seam-<digest>             SEAM pseudo-labels instead of masks      recorded as  mib-s
    joint-s+mib-<digest>          Joint on the pseudo-labels of mib-s      recorded as  joint-s

Its checkpoint at step ``k`` lives at
``<checkpoints>/<dataset>/<task>-<setting>/<run>/<backbone>-<digest>/step-<k>.pt``, the digest being
that of :meth:`~incseg_lib.config.RunConfig.training_key` (everything that determines the weights),
so a changed option trains a new checkpoint and an unchanged one is found again. Step 0 does not
depend on the method: it lives under ``step0`` (``step0-bce`` for LwF-MC) and the task's base
signature (``0-15of21``), shared by every method and by the tasks with the same step-0 classes.
Memories, SEAM weights and pseudo-labels live beside the checkpoint they come from.
"""

from __future__ import annotations

from pathlib import Path

from .. import runs
from ..config import RunConfig, step0_name
from ..exemplars import ReplayConfig
from ..inversion import InversionConfig, SyntheticMemory
from ..runs import REPLAY, SYNTHETIC, WEAK, parse_run_name
from ..seam import PseudoLabels, SeamConfig
from ..store import key_digest
from ..tasks import get_task


# ---------------------------------------------------------------------- names
def replay_run_name(method: str, replay: ReplayConfig) -> str:
    """``mib+mem-5pc-class-balanced``: ``method`` replaying an exemplar memory."""
    return runs.run_name(method, REPLAY, replay.tag)


def synthetic_run_name(method: str, inversion: InversionConfig) -> str:
    """``mib+di-<digest>``: ``method`` replaying DeepInversion's synthetic images."""
    return runs.run_name(method, SYNTHETIC, key_digest(inversion.to_dict()))


def weak_run_name(method: str, seam: SeamConfig) -> str:
    """``mib+seam-<digest>``: ``method`` trained on SEAM pseudo-labels instead of masks."""
    return runs.run_name(method, WEAK, key_digest(seam.to_dict()))


def joint_weak_run_name(source: str, seam: SeamConfig) -> str:
    """``joint-s+mib-<digest>``: Joint on the pseudo-labels that ``source``'s weak run trained on."""
    return runs.joint_weak_run_name(source, key_digest(seam.to_dict()))


def training_key(cfg: RunConfig, step: int, run_name: str) -> dict:
    """:meth:`RunConfig.training_key` of a run: the method it is of and whether it replays images are
    read from its name here."""
    base, variant = parse_run_name(run_name)
    return cfg.training_key(
        step=step, method=run_name, base=base if variant else "", replayed=variant in (REPLAY, SYNTHETIC)
    )


# ---------------------------------------------------------------------- paths
def checkpoint_file(cfg: RunConfig, step: int, method: str) -> Path:
    """Where the step-``step`` checkpoint of run ``method`` lives (folder named by the key's hash)."""
    key = training_key(cfg, step, method)
    single = len(get_task(cfg.dataset, cfg.task)) == 1
    setting = cfg.setting if not single else "all"
    task = cfg.key_task(step, parse_run_name(method)[0])
    folder = step0_name(parse_run_name(method)[0]) if step == 0 else method
    return (
        cfg.checkpoint_path
        / cfg.dataset
        / f"{task}-{setting}"
        / folder
        / f"{cfg.backbone}-{key_digest(key)}"
        / f"step-{step}.pt"
    )


def memory_file(cfg: RunConfig, step: int, run_name: str) -> Path:
    """The exemplar memory replayed at ``step``, beside that step's checkpoint: ``memory.json``."""
    return checkpoint_file(cfg, step, run_name).parent / "memory.json"


def find_synthetic_memory(
    cfg: RunConfig, step: int, prev_run: str, inversion: InversionConfig, *, student_run: str = ""
) -> SyntheticMemory:
    """The :class:`~incseg_lib.inversion.SyntheticMemory` replayed at ``step`` (built or not): beside
    the step-``step - 1`` checkpoint of ``prev_run``, keyed by that checkpoint's training key and the
    synthesis settings (the replay share and labels excluded: they do not change the images; the
    student's run included when ADI uses it), so FT+DI and MiB+DI share the images of one step 0."""
    prev_ckpt = checkpoint_file(cfg, step - 1, prev_run)
    settings = {k: v for k, v in inversion.to_dict().items() if k not in ("share", "replay_labels")}
    key = {
        "old": key_digest(training_key(cfg, step - 1, prev_run)),
        "inversion": settings,
        "student": student_run if inversion.adi > 0 else "",
    }
    return SyntheticMemory(prev_ckpt.parent / "synthetic" / key_digest(key), key)


def seam_checkpoint(cfg: RunConfig, step: int, seam: SeamConfig, prev_run: str) -> tuple[Path, dict]:
    """``(path, key)`` of the SEAM weights of ``step``: ``<checkpoints>/<dataset>/<task>-<setting>/seam/
    <backbone>-<digest>/seam-step-<step>.pt``, keyed by the data, the step, the SEAM training settings
    and (``init="step0"``) the step t-1 checkpoint of ``prev_run`` whose ResNet starts it."""
    init_from = key_digest(training_key(cfg, step - 1, prev_run)) if seam.init == "step0" else seam.init
    key = {
        "seam": seam.training_part(),
        "dataset": cfg.dataset,
        "data": cfg.data_fingerprint(),
        "voc_split": cfg.voc_split if cfg.dataset == "voc" else "",
        "task": cfg.task,
        "setting": cfg.setting,
        "step": step,
        "max_train_images": cfg.max_train_images,
        "init_from": init_from,
    }
    folder = (
        cfg.checkpoint_path / cfg.dataset / f"{cfg.task}-{cfg.setting}" / "seam" / f"{seam.backbone}-{key_digest(key)}"
    )
    return folder / f"seam-step-{step}.pt", key


def pseudo_label_store(cfg: RunConfig, step: int, seam: SeamConfig, prev_run: str, fuse: bool) -> PseudoLabels:
    """The :class:`~incseg_lib.seam.PseudoLabels` of ``step`` (made or not): beside the SEAM weights
    (``pseudo/<digest>/``), keyed by those weights, the inference settings and, with ``fuse``, the
    old checkpoint whose predictions fill in the old classes."""
    ckpt, _ = seam_checkpoint(cfg, step, seam, prev_run)
    inference = {k: seam.to_dict()[k] for k in ("scales", "flip", "bg_threshold", "cam_source")}
    key = {
        "seam": ckpt.parent.name,
        "inference": inference,
        "old": key_digest(training_key(cfg, step - 1, prev_run)) if fuse else "",
    }
    return PseudoLabels(ckpt.parent / "pseudo" / key_digest(key), key)


def joint_weak_checkpoint(jcfg: RunConfig, labels: dict[int, PseudoLabels]) -> tuple[Path, dict]:
    """``(path, key)`` of Joint-S (Joint's configuration ``jcfg``): Joint's training key plus the keys
    of the pseudo-labels it trains on, per step."""
    key = {**jcfg.training_key(step=0, method="offline"), "weak": {s: pl.key for s, pl in labels.items()}}
    folder = jcfg.checkpoint_path / jcfg.dataset / f"{jcfg.task}-all" / "joint-s" / f"{jcfg.backbone}-{key_digest(key)}"
    return folder / "step-0.pt", key


def seam_weights_of(pseudo: PseudoLabels, step: int) -> Path:
    """The SEAM weights that made ``pseudo`` (:func:`pseudo_label_store` keeps them beside each other)."""
    return pseudo.folder.parent.parent / f"seam-step-{step}.pt"
