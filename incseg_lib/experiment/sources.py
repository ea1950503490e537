"""What a step trains on besides its own masks: one interface, one small class per kind.

:func:`~incseg_lib.experiment.step.train_step` trains step ``t >= 1`` on the images labelled with
step ``t``'s classes. A :class:`Source` changes that, in the style of avalanche's plugins
(``avalanche/training/plugins/replay.py``): it names its run, then prepares the step's data at two
moments, and train_step has no branch per kind:

- :meth:`Source.before_heads`, with the step ``t-1`` model loaded (exemplars are chosen with it,
  SEAM copies its ResNet and fuses its predictions);
- :meth:`Source.after_heads`, with the frozen old model and the new model grown by step ``t``'s
  heads (DeepInversion synthesises from the old model, ADI compares with the new one).

Each fills a :class:`StepData`: the training set, images replayed in a fixed share of every batch,
and the fields the results record gets. The kinds here: :class:`Masks` (the default),
:class:`Replay` (stored exemplars, SMiB), :class:`Synthetic` (DeepInversion) and :class:`Weak`
(SEAM pseudo-labels from image-level labels). A new kind is a new class.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import RunConfig
from ..data.transforms import train_transforms
from ..engine import Hardware, Hooks, Saving, Schedule, fit
from ..exemplars import ExemplarMemory, ReplayConfig, annotated_lut
from ..inversion import InversionConfig, SyntheticMemory, measured_scales, object_sizes
from ..log import get_logger
from ..methods import Method, get_method
from ..models import BiSeNet
from ..seam import ImageLabelDataset, PseudoLabels, SeamConfig, SeamNet, image_labels, seam_loss
from ..store import CorruptFile, checkpoint_lock, key_digest
from ..tasks import IncrementalSplit
from . import keys

log = get_logger(__name__)


@dataclass
class StepContext:
    """What a source may read about the step being prepared.

    Attributes:
        split, prev: the step's split and that of the step before.
        train_base: the unfiltered training dataset (class ids, no transforms).
        run_name: this run's name (:mod:`.keys`); ``prev_run``: the run of step ``t-1`` (the
            shared step 0 at ``t = 1``).
        spec: the method.
    """

    cfg: RunConfig
    step: int
    split: IncrementalSplit
    prev: IncrementalSplit
    train_base: object
    run_name: str
    prev_run: str
    spec: Method
    progress: bool = True


@dataclass
class StepData:
    """The step's data as the source leaves it.

    Attributes:
        train_set: the step's labelled images (a source may relabel them).
        memory: images replayed in ``share`` of every batch (:class:`~incseg_lib.exemplars.ReplayBatchSampler`),
            or None.
        record: fields for the step's results record (the variant and what was replayed or made).
    """

    train_set: object
    memory: object = None
    share: float = 0.0
    record: dict = field(default_factory=dict)


class Source:
    """The step's own masks and nothing else (plain FT, LwF, ..., MiB)."""

    needs_old_model = False  # a frozen copy of step t-1 even for a method without distillation

    def run_name(self, method: str) -> str:
        return method

    def before_heads(self, ctx: StepContext, data: StepData, model: BiSeNet) -> None:
        """Prepare ``data`` with ``model``, the step t-1 model, loaded."""

    def after_heads(self, ctx: StepContext, data: StepData, old_model, model: BiSeNet) -> None:
        """Prepare ``data`` with the frozen ``old_model`` and ``model`` grown by the step's heads."""


Masks = Source


@dataclass
class Replay(Source):
    """Rehearsal with an :class:`~incseg_lib.exemplars.ExemplarMemory` (SMiB, FT + memory): the memory
    after step t-1 is selected at the start of step t with the step t-1 model (herding uses its
    features) and saved beside the checkpoint (``memory.json``), so a resumed step replays the same images."""

    config: ReplayConfig

    def run_name(self, method: str) -> str:
        return keys.replay_run_name(method, self.config)

    def before_heads(self, ctx: StepContext, data: StepData, model: BiSeNet) -> None:
        memory = step_memory(
            ctx.cfg, ctx.step, ctx.run_name, self.config, ctx.prev, ctx.train_base, model, progress=ctx.progress
        )
        info = memory.summary(ctx.train_base)
        if self.config.old_labels_on_new:  # the seed code's variant: old classes keep their labels
            data.train_set = data.train_set.with_target_lut(annotated_lut(ctx.split.eval_lut(), ctx.split.num_seen))
        data.memory = memory.dataset(ctx.split, ctx.train_base, train_transforms(ctx.cfg.crop_size))
        data.share = self.config.share
        data.record = {"variant": self.config.tag, "replay": self.config.to_dict(), "memory": info}
        log.info(
            f"  memory: {info['images']} images, {info['bytes'] / 1e6:.2f} MB, "
            f"{self.config.share:.0%} of each batch replayed"
        )


@dataclass
class Synthetic(Source):
    """Replay of DeepInversion images of the old classes, synthesised from the step t-1 model before
    step t trains (:func:`synthetic_memory`), in the same fixed share of every batch as exemplars."""

    config: InversionConfig
    needs_old_model = True

    def run_name(self, method: str) -> str:
        return keys.synthetic_run_name(method, self.config)

    def after_heads(self, ctx: StepContext, data: StepData, old_model, model: BiSeNet) -> None:
        cfg = ctx.cfg
        memory = synthetic_memory(
            cfg,
            ctx.step,
            ctx.prev_run,
            ctx.prev,
            old_model,
            self.config,
            student=model.to(cfg.torch_device()),
            student_run=ctx.run_name,
            progress=ctx.progress,
            train_base=ctx.train_base,
        )
        data.memory = memory.dataset(
            ctx.split, ctx.train_base.info, train_transforms(cfg.crop_size), labels=self.config.replay_labels
        )
        data.share = self.config.share
        data.record = {"variant": self.config.tag, "synthetic": {**memory.summary(), "settings": self.config.to_dict()}}
        log.info(f"  synthetic memory: {len(data.memory)} images, {data.share:.0%} of each batch replayed")


@dataclass
class Weak(Source):
    """Image-level labels only: SEAM pseudo-labels replace the step's masks (:func:`step_pseudo_labels`;
    the old model's predictions fill in the old classes only for methods that keep an old model)."""

    config: SeamConfig

    def run_name(self, method: str) -> str:
        return keys.weak_run_name(method, self.config)

    def before_heads(self, ctx: StepContext, data: StepData, model: BiSeNet) -> None:
        seam = self.config
        pseudo = step_pseudo_labels(
            ctx.cfg,
            ctx.step,
            seam,
            ctx.split,
            ctx.prev,
            ctx.train_base,
            model,
            ctx.prev_run,
            fuse=seam.fuse_old and ctx.spec.uses_old_model,
            progress=ctx.progress,
        )
        data.train_set = pseudo.dataset(data.train_set, ctx.split.eval_lut())
        info = {**pseudo.summary(), "seam": seam.to_dict()}
        quality = pseudo.quality()
        data.record = {
            "variant": seam.tag,
            "weak": info,
            "pseudo_new": _fraction(quality[info["used"]]["miou_new"]),
            "pseudo_chance_new": _fraction(quality["chance"]["miou_new"]),
        }


def source_for(
    replay: ReplayConfig | None = None, synthetic: InversionConfig | None = None, weak: SeamConfig | None = None
) -> Source:
    """The :class:`Source` of train_step's shorthand options (at most one may be given).

    Raises:
        ValueError: more than one given.
    """
    given = [s for s in (replay and Replay(replay), synthetic and Synthetic(synthetic), weak and Weak(weak)) if s]
    if len(given) > 1:
        raise ValueError("pass at most one of replay= (stored exemplars), synthetic= (DeepInversion) and weak= (SEAM)")
    return given[0] if given else Source()


def _fraction(percent):
    return None if percent is None else round(percent / 100, 6)


# ---------------------------------------------------------------------- exemplars
def step_memory(
    cfg: RunConfig,
    step: int,
    run_name: str,
    replay: ReplayConfig,
    prev: IncrementalSplit,
    train_base,
    prev_model: BiSeNet,
    progress: bool = True,
) -> ExemplarMemory:
    """The exemplar memory used at ``step``: the memory of step-1 plus exemplars of ``prev``'s classes.

    Selected once (with ``prev_model`` for herding) and saved beside step ``step``'s checkpoint
    as ``memory.json``; later calls read it back, so a resumed or re-run step replays the same
    images.

    Raises:
        FileNotFoundError: step ``step - 1`` of this run was trained without its memory (names the file).
    """
    path = keys.memory_file(cfg, step, run_name)
    with checkpoint_lock(path):  # selected once, also when two notebooks need it at the same time
        if path.is_file():
            try:
                return ExemplarMemory.load(path)
            except CorruptFile as e:  # selected again below, as the first time
                warnings.warn(str(e), stacklevel=2)
        if step > 1:
            before = keys.memory_file(cfg, step - 1, run_name)
            if not before.is_file():
                raise FileNotFoundError(
                    f"{before} is missing: step {step - 1} of this replay run was trained "
                    "without its memory; delete that step's checkpoint folder to retrain it"
                )
            memory = ExemplarMemory.load(before)
        else:
            memory = ExemplarMemory(replay, seed=cfg.seed)
        memory.update(
            prev,
            train_base,
            model=prev_model,
            device=cfg.torch_device(),
            cache_dir=cfg.checkpoint_path / "splits",
            progress=progress,
        )
        memory.save(path)
        return memory


# ---------------------------------------------------------------------- DeepInversion
def synthetic_memory(
    cfg: RunConfig,
    step: int,
    prev_run: str,
    prev: IncrementalSplit,
    old_model: BiSeNet,
    inversion: InversionConfig,
    *,
    student: BiSeNet | None = None,
    student_run: str = "",
    progress: bool = True,
    train_base=None,
) -> SyntheticMemory:
    """The synthetic memory replayed at ``step``: DeepInversion of the step ``step - 1`` model.

    Every old foreground class of ``prev`` (the split of step ``step - 1``) gets
    ``inversion.images_per_class`` images, stored where :func:`.keys.find_synthetic_memory` says; a
    re-run or a resumed run reuses finished batches. Scale-aware synthesis without configured scales
    takes the quartiles of the old classes' sizes in ``prev``'s real training masks
    (:func:`real_object_sizes` of ``train_base``).
    """
    memory = keys.find_synthetic_memory(cfg, step, prev_run, inversion, student_run=student_run)
    if memory.complete:
        return memory
    with checkpoint_lock(memory.manifest_path):  # another notebook may be making it
        memory = keys.find_synthetic_memory(cfg, step, prev_run, inversion, student_run=student_run)
        if memory.complete:
            return memory
        classes = [c for c in prev.seen_classes if c != 0]
        out_index = {c: i for i, c in enumerate(prev.class_order[: prev.num_seen])}
        n = len(classes) * inversion.images_per_class
        scales = ()
        if inversion.scale_aware and not inversion.scales:
            scales = measured_scales(real_object_sizes(cfg, prev, train_base, classes))
            log.info(f"  target object sizes (quartiles of the real step-{step - 1} objects): {scales}")
        log.info(
            f"  DeepInversion of step {step - 1}: {n} images of {len(classes)} old classes at "
            f"{inversion.resolution} px, {inversion.iterations_low}+{inversion.iterations_full} iterations"
        )
        memory.build(
            old_model,
            classes,
            out_index,
            prev.class_order[: prev.num_seen],
            inversion,
            student=student,
            device=cfg.torch_device(),
            progress=progress,
            scales=scales,
        )
        info = memory.summary()
        log.info(
            f"  synthesised in {info['seconds']:.0f} s ({info['seconds_per_image']:.2f} s/image, "
            f"{info['image_iterations_per_second']:.1f} image-iterations/s)"
        )
    return memory


def real_object_sizes(cfg: RunConfig, split: IncrementalSplit, train_base, classes: list[int]) -> np.ndarray:
    """The sizes (fraction of the image) of the objects of ``classes`` in ``split``'s real training
    masks (:func:`~incseg_lib.inversion.object_sizes`)."""
    idx = split.train_indices(train_base, cfg.checkpoint_path / "splits")
    keep = np.asarray(sorted(classes))
    masks = (np.where(np.isin(m, keep), m, 0) for m in (train_base.read_mask(int(i)) for i in idx))
    return object_sizes(masks)


# ---------------------------------------------------------------------- SEAM
def step_image_labels(cfg: RunConfig, split: IncrementalSplit, train_base, progress: bool = False):
    """The step's training images and what an annotator would say of them: ``(indices into train_base,
    new foreground classes (dataset ids), (N, K) bool image-level labels)``."""
    cache = cfg.checkpoint_path / "splits"
    new = [c for c in split.new_classes if c != 0]
    idx = split.train_indices(train_base, cache, progress=progress)
    return idx, new, image_labels(train_base.class_presence(cache)[idx], new)


def train_seam(
    cfg: RunConfig,
    step: int,
    seam: SeamConfig,
    split: IncrementalSplit,
    train_base,
    prev_model: BiSeNet,
    prev_run: str,
    *,
    progress: bool = True,
) -> tuple[SeamNet, dict, Path]:
    """Train (or reuse) SEAM on step ``step``'s training images with their image-level labels of the new classes.

    The weights live at :func:`.keys.seam_checkpoint`; ``init="step0"`` copies ``prev_model``'s ResNet.

    Returns:
        ``(model, history, checkpoint)``.

    Raises:
        ValueError: ``init="step0"`` with a SEAM backbone other than the BiSeNet's.
    """
    idx, new, labels = step_image_labels(cfg, split, train_base, progress)
    ckpt, key = keys.seam_checkpoint(cfg, step, seam, prev_run)
    torch.manual_seed(seam.seed)
    model = SeamNet(
        len(new),
        seam.backbone,
        seam.output_stride,
        "imagenet" if seam.init == "imagenet" else "",
        freeze_bn=seam.bn_frozen,
    )
    if seam.init == "step0":
        if prev_model.backbone_name != seam.backbone:
            raise ValueError(
                f"SEAM init 'step0' copies the step-{step - 1} BiSeNet's {prev_model.backbone_name}; "
                f"the SEAM backbone is {seam.backbone}: use the same backbone or init 'imagenet'/'none'"
            )
        model.backbone.load_state_dict(prev_model.resnet.state_dict())
    data = ImageLabelDataset(
        train_base.subset(idx).with_transforms(train_transforms(seam.crop_size, seam.scale_range)), labels
    )
    log.info(
        f"[SEAM step {step}] {seam.backbone} OS{seam.output_stride} from {seam.init}, {len(data)} images with "
        f"image-level labels of {len(new)} classes, lr {seam.lr}, {seam.epochs} epochs"
    )
    history = fit(
        model,
        data,
        Schedule(seam.epochs, seam.batch_size, seam.lr, momentum=0.9, weight_decay=seam.weight_decay, seed=seam.seed),
        Hardware(device=cfg.torch_device(), amp=cfg.amp, num_workers=cfg.num_workers),
        Saving(checkpoint=ckpt, key=key, every=cfg.checkpoint_every),
        Hooks(loss_fn=lambda m, x, y, out: seam_loss(m, x, y, out, seam)),
        log_dir=Path(cfg.run_dir) / "tensorboard" / f"{cfg.dataset}-{cfg.task}-seam-step{step}-{key_digest(key)}",
        progress=progress,
    )
    return model.eval(), history, ckpt


def step_pseudo_labels(
    cfg: RunConfig,
    step: int,
    seam: SeamConfig,
    split: IncrementalSplit,
    prev: IncrementalSplit,
    train_base,
    prev_model: BiSeNet,
    prev_run: str,
    *,
    fuse: bool,
    progress: bool = True,
) -> PseudoLabels:
    """The SEAM pseudo-labels of step ``step``'s training images (SEAM trained first if needed).

    Stored where :func:`.keys.pseudo_label_store` says; SEAM is trained (or its weights reused) only
    when they are missing.
    """
    labels = keys.pseudo_label_store(cfg, step, seam, prev_run, fuse)
    if not labels.complete:
        with checkpoint_lock(labels.manifest_path):  # another notebook may be making them
            labels = keys.pseudo_label_store(cfg, step, seam, prev_run, fuse)
            if not labels.complete:
                model, _, _ = train_seam(cfg, step, seam, split, train_base, prev_model, prev_run, progress=progress)
                idx, new, tags = step_image_labels(cfg, split, train_base)
                labels.build(
                    model,
                    train_base.subset(idx),
                    tags,
                    new,
                    seam,
                    old_model=prev_model if fuse else None,
                    old_class_order=prev.class_order[: prev.num_seen],
                    old_classes=prev.seen_classes,
                    device=cfg.torch_device(),
                    progress=progress,
                )
    q = labels.quality()
    shown = "  ".join(f"{v} {q[v]['miou']:.1f}" for v in q)
    log.info(f"  pseudo-labels of {labels.manifest['images']} images, mIoU against the masks they replace: {shown}")
    return labels


def find_pseudo_labels(cfg: RunConfig, step: int, method: str, seam: SeamConfig) -> PseudoLabels:
    """The stored pseudo-labels ``method`` trained on at ``step`` (made by train_step with ``weak=``).

    Raises:
        FileNotFoundError: that step has not been trained on pseudo-labels yet.
    """
    spec = get_method(method)
    prev_run = keys.weak_run_name(method, seam) if step > 1 else spec.step0
    labels = keys.pseudo_label_store(cfg, step, seam, prev_run, seam.fuse_old and spec.uses_old_model)
    if not labels.complete:
        raise FileNotFoundError(
            f"no pseudo-labels of {cfg.task} {cfg.setting} step {step} for {method} with "
            f"{seam.tag} in {labels.folder}; run the step with weak= first"
        )
    return labels
