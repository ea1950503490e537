"""Run configuration: one dataclass, four profiles, and the project's default folders.

Every notebook builds a :class:`RunConfig` from its papermill parameters with
:meth:`RunConfig.from_profile`, so ``incseg suite --profile cpu`` and a Colab session given
the same parameters train the same thing.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import dataset_names, dataset_spec, load_dataset, train_split
from ..env import default_checkpoint_root, default_data_root
from ..methods import CE_NORMALISATIONS, PROTOCOLS, get_method, is_method, method_spec, preallocates, step0_names
from ..models import DEEPLAB_BACKBONES, MODELS
from ..models.bisenet import ARCHITECTURE_VERSION
from ..profiles import PROFILE_VALUES, PROFILES
from ..store import key_digest
from ..tasks import base_signature, get_task
from .options import inversion_config as inversion_config  # re-exported: config is where callers look
from .options import parse_list as parse_list
from .options import profile_options as profile_options
from .options import seam_config as seam_config

BACKBONES = ("resnet18", "resnet50", "resnet101")
CHOICES = {
    "optimizer": ("sgd", "sgd-mib"),
    "aux_next": ("ce", "off", "distill"),
    "distill_pixels": ("labelled", "all"),
    "pi_estimator": ("mib", "zenke"),
    "void_label": ("ignore", "background"),
    "eval_unseen": ("background", "ignore"),
    "protocol": PROTOCOLS,
    "ce_normalisation": ("",) + CE_NORMALISATIONS,
}


def _check_plans(profile: str, spec, values: dict) -> None:
    """Refuse up front a profile whose notebook plans name tasks ``spec``'s dataset does not have
    (the demo's VOC tasks on CamVid), rather than late in a notebook.

    Raises:
        ValueError: naming the profile, the dataset, the plan and the tasks, and the way out.
    """
    for plan in ("incremental", "replay", "inversion", "weak", "probing"):
        tasks = (values.get(plan) or {}).get("tasks", [])
        missing = [t for t in tasks if t not in spec.tasks and t not in ("15-5s",)]
        if missing:
            raise ValueError(
                f"profile {profile} has no plan for dataset {spec.name}: its {plan} plan trains "
                f"{', '.join(missing)}, not a task of {spec.name} ({', '.join(sorted(spec.tasks))}); choose "
                f"a profile that sizes {spec.name} ({', '.join(sorted(spec.profile_values)) or 'none yet'})"
            )


@dataclass
class RunConfig:
    """Everything that determines a training run and its evaluation.

    Attributes:
        profile: ``demo`` (the default run), ``smoke``, ``cpu``, ``colab`` or ``paper`` (README, "Profiles").
        dataset: ``shapes`` (embedded, procedurally drawn), ``voc`` or ``camvid``.
        data_root: dataset folder; ``""`` means :func:`default_data_root` / dataset name.
        voc_split: VOC training list, ``train`` (1,464 official) or ``train_aug`` (10,582, needs SBD).
        task: task protocol name, e.g. ``offline``, ``15-5``, ``15-1``; see :mod:`incseg_lib.tasks`.
        setting: ``disjoint`` or ``overlapped``.
        model: ``bisenet`` (the course's model) or ``deeplabv3`` (the papers': MiB, PLOP and SDR
            report DeepLabV3-ResNet-101 at output stride 16; ResNet-50/101 only).
        backbone: ``resnet18``, ``resnet50`` or ``resnet101`` (BiSeNet's context path, DeepLab's encoder).
        pretrained: ``imagenet`` (torchvision weights API), a path to a ResNet state dict, or ``""``
            (random init; :meth:`from_profile` also accepts ``"none"`` for it).
        crop_size: square training crop in pixels.
        eval_crop: if > 0, also evaluate MiB-style on a resize + centre crop of this size.
        batch_size: images per training batch.
        epochs: training epochs of step 0 (and of offline / Joint training).
        epochs_next: training epochs of each step >= 1; 0 = ``epochs`` (MiB trains every step 30
            epochs; the cpu profile uses fewer so a notebook fits in about an hour).
        epochs_next_single: training epochs of each step >= 1 that adds a **single** class (every
            step of 15-1, 10-1, 19-1, CamVid 8-1); 0 = ``epochs_next``. MiB's code trains every step
            the same epochs; only the demo profile sets this (12 against 4): a one-class step of the
            shapes has about 40 images, 20 iterations at 4 epochs, too few for MiB to learn the
            new class (README, "What the demo shows": 15-1 MiB new 25.1 at 4 epochs, 36.6 at 8 on
            architecture 2; on architecture 3, 12 epochs make the old classes fade enough for
            notebook 03's memory to show what it keeps).
            Setting ``epochs_next`` alone (a notebook parameter) resets it to 0.
        lr: initial learning rate at step 0 (poly schedule, power 0.9).
        protocol: how steps >= 1 train around each method's loss: ``official`` (each method at its
            own scripts' protocol, :class:`~incseg_lib.methods.StepProtocol`: MiB, PLOP and SDR at
            a tenth of ``lr``, the classification loss averaged over every pixel, SDR's KD 100) or
            ``shared`` (the course's single setting: every method at ``lr_next``, losses averaged
            over labelled pixels, SDR's KD 10). Giving ``lr_next`` to :meth:`from_profile` without
            a protocol asks for ``shared``.
        lr_next: initial learning rate for steps >= 1 under ``protocol="shared"``.
        lr_factor: under ``protocol="official"``, one learning-rate factor (steps >= 1 against
            step 0) for every method in place of each method's own; 0 = each method's (the
            protocol study's knob, benchmarks/protocol_study.py).
        ce_normalisation: ``""`` (the protocol's), ``all`` or ``labelled``: how the classification
            loss of steps >= 1 is averaged (:meth:`incseg_lib.methods.Method.loss_fn`); ``labelled``
            under the official protocol is PLOP with this library's earlier normalisation.
        momentum, weight_decay: SGD hyperparameters.
        optimizer: ``sgd`` (momentum, no weight decay on BatchNorm parameters and biases) or
            ``sgd-mib`` (MiB's ``run.py``: Nesterov momentum, weight decay on every parameter; the
            ``paper`` profile's choice).
        aux_next: what BiSeNet's auxiliary heads learn at steps >= 1: ``ce`` (the method's
            classification loss), ``off`` or ``distill`` (see :meth:`incseg_lib.methods.Method.loss_fn`).
        distill_pixels: ``labelled`` (distillation skips crop padding and void) or ``all`` (MiB's code).
        pi_estimator: PI's importance: ``mib`` (fcdl94/MiB ``utils/regularizer.py``: each gradient
            with the previous update, damping 1e-20) or ``zenke`` (Zenke et al. 2017: the
            gradient with the update it made, damping 1e-3).
        void_label: training label of void (255) pixels: ``ignore`` or ``background`` (MiB's
            dataset code maps 255 to 0 in training; padding of crops stays ignored).
        eval_unseen: evaluation at steps before the last: ``background`` (every validation image,
            unseen classes are background) or ``ignore`` (MiB's test protocol: only images with a
            seen class, unseen classes ignored). The last step is the same under both.
        aux_weight: weight of each BiSeNet auxiliary loss (1.0 in the paper).
        num_workers: DataLoader worker processes.
        seed: seed for weights, data order and augmentation.
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda``.
        amp: mixed precision: True = float16 AMP on CUDA only; "bf16"/"fp16" = that autocast on any
            device, CPU included (engine.accel).
        sync_bn: with several processes (``torchrun incseg step``), BatchNorm statistics over the
            global batch (SyncBatchNorm, CUDA only) instead of each process's share.
        max_train_images, max_val_images: caps (0 = all) for quick looks.
        checkpoint_dir: root of the checkpoint tree; ``""`` means :func:`default_checkpoint_root`.
        checkpoint_every: epochs between checkpoints (the last epoch is always saved; 0 = only
            the last). 1 lets a Colab disconnect resume after any epoch; smoke uses 0.
        run_dir: where results, TensorBoard logs and figures of this run go.
        grid: profile-sized hyperparameter grid for notebook 01 (backbones, lrs, batch_sizes).
        incremental: profile-sized plan of notebook 02 (``tasks``, ``settings``, ``methods``).
        replay: profile-sized plan of notebook 03 (``tasks``, ``settings``, ``sizes`` = exemplars
            per class, ``methods`` run with memory; ``size_effect``: False where the profile's data
            does not show a larger memory keeping more, so notebook 03 does not claim it).
        inversion: notebook 04's plan (``tasks``, ``settings``, ``methods`` replayed with synthetic
            images); default one task per dataset whose single later step adds several classes
            (``15-5``, CamVid ``8-3``: one synthesis from the step-0 model), MiB and FT.
        weak: notebook 05's plan (methods trained on SEAM pseudo-labels), default as ``inversion``
            with FT and MiB.
        probing: notebook 07's plan (``tasks``, ``settings``, ``methods`` trained, ``task_methods``,
            ``probe``: the runs whose features are probed after every step, ``sweep``: the task
            whose last step EWF's weight slider re-fuses).
    """

    profile: str = "smoke"
    dataset: str = "shapes"
    data_root: str = ""
    voc_split: str = "train"
    task: str = "offline"
    setting: str = "overlapped"
    model: str = "bisenet"
    backbone: str = "resnet18"
    pretrained: str = ""
    crop_size: int = 64
    eval_crop: int = 0
    batch_size: int = 8
    epochs: int = 4
    epochs_next: int = 0
    epochs_next_single: int = 0
    lr: float = 0.01
    protocol: str = "official"
    lr_next: float = 0.001
    lr_factor: float = 0.0
    ce_normalisation: str = ""
    momentum: float = 0.9
    weight_decay: float = 1e-4
    optimizer: str = "sgd"
    aux_weight: float = 1.0
    aux_next: str = "ce"
    distill_pixels: str = "labelled"
    pi_estimator: str = "mib"
    void_label: str = "ignore"
    eval_unseen: str = "background"
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool | str = True
    sync_bn: bool = False
    max_train_images: int = 0
    max_val_images: int = 0
    checkpoint_dir: str = ""
    checkpoint_every: int = 1
    run_dir: str = "runs/default"
    grid: dict[str, list] = field(default_factory=dict)
    incremental: dict[str, list] = field(default_factory=dict)
    replay: dict[str, list] = field(default_factory=dict)
    inversion: dict[str, list] = field(default_factory=dict)
    weak: dict[str, list] = field(default_factory=dict)
    probing: dict = field(default_factory=dict)

    def __post_init__(self):
        # Folders are stored absolute: a record or a checkpoint path written from one working folder
        # must still point at the same files when notebook 06 reads it from another.
        for name in ("data_root", "checkpoint_dir", "run_dir"):
            value = getattr(self, name)
            if isinstance(value, str) and value:
                setattr(self, name, str(Path(value).expanduser().resolve()))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_profile(cls, profile: str = "smoke", **overrides: Any) -> RunConfig:
        """Build the configuration of ``profile`` and apply ``overrides``.

        Overrides whose value is ``None`` or ``""`` (papermill's "use the default") are skipped;
        ``pretrained="none"`` asks for random initialisation.

        Raises:
            ValueError: unknown profile, unknown option name, or an invalid value.
        """
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        names = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ValueError(f"unknown RunConfig option(s) {bad}; valid options: {sorted(names)}")
        values: dict[str, Any] = dict(PROFILE_VALUES[profile])
        values["profile"] = profile
        dataset = overrides.get("dataset") or values["dataset"]
        spec = dataset_spec(dataset)  # raises for an unknown dataset, naming the registered ones
        values.update(spec.profile_values.get(profile, {}))
        # notebooks 04 and 05: one synthesis / one SEAM, on the task whose one later step adds several classes
        one_step = spec.one_step_task
        values.setdefault(
            "inversion",
            {
                "tasks": [one_step],
                "settings": ["overlapped"],
                "methods": ["mib", "ft"],
                "aggregations": ["lse", "scale-aware"],
            },
        )
        values.setdefault("weak", {"tasks": [one_step], "settings": ["overlapped"], "methods": ["ft", "mib"]})
        for key, val in overrides.items():
            if val is None or (isinstance(val, str) and val == ""):
                continue
            values[key] = "" if key == "pretrained" and val == "none" else coerce_option(key, val)
        if overrides.get("lr_next") and overrides.get("protocol") in (None, ""):
            values["protocol"] = "shared"  # one lr_next for every method is the shared setting
        if overrides.get("epochs_next") and overrides.get("epochs_next_single") in (None, ""):
            values["epochs_next_single"] = 0  # an explicit epochs_next holds for every later step
        _check_plans(profile, spec, values)
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (validated)."""
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ``ValueError`` naming the option and the valid choices when a value is off."""
        if self.dataset not in dataset_names():
            raise ValueError(f"dataset={self.dataset!r} is not known; choose one of {dataset_names()}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone={self.backbone!r} is not known; choose one of {BACKBONES}")
        if self.model not in MODELS:
            raise ValueError(f"model={self.model!r} is not known; choose one of {MODELS}")
        if self.model == "deeplabv3" and self.backbone not in DEEPLAB_BACKBONES:
            raise ValueError(
                f"model=deeplabv3 takes backbone {' or '.join(DEEPLAB_BACKBONES)}, got {self.backbone!r} "
                "(-p backbone resnet101, as MiB)"
            )
        if self.setting not in ("disjoint", "overlapped"):
            raise ValueError(f"setting={self.setting!r}; choose 'disjoint' or 'overlapped'")
        if self.voc_split not in ("train", "train_aug"):
            raise ValueError(f"voc_split={self.voc_split!r}; choose 'train' or 'train_aug'")
        for name in ("crop_size", "batch_size", "epochs"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if int(self.batch_size) < 2:  # BatchNorm trains on batch statistics: one image has none
            raise ValueError(
                f"batch_size must be at least 2 (BatchNorm needs two images per batch), got {self.batch_size}"
            )
        for name in ("max_train_images", "max_val_images", "checkpoint_every", "num_workers"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {getattr(self, name)!r}")
        if not (math.isfinite(self.lr_factor) and 0 <= self.lr_factor <= 10):
            raise ValueError(f"lr_factor must be in [0, 10] (0 = each method's own), got {self.lr_factor!r}")
        for name in ("epochs_next", "epochs_next_single"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = the default), got {getattr(self, name)!r}")
        for name in ("lr", "lr_next"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive, finite learning rate, got {value!r}")
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}={getattr(self, name)!r}; choose one of {choices}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device={self.device!r}; choose 'auto', 'cpu' or 'cuda[:N]'")
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(f"device={self.device!r} but this machine has no CUDA GPU; use device 'auto' or 'cpu'")

    # ------------------------------------------------------------------ derived values
    @property
    def data_path(self) -> Path:
        """The dataset folder this run reads."""
        return Path(self.data_root).expanduser() if self.data_root else default_data_root() / self.dataset

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint_dir).expanduser() if self.checkpoint_dir else default_checkpoint_root()

    def torch_device(self):
        """The ``torch.device`` to use (``auto`` picks CUDA when available)."""
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def epochs_at(self, step: int) -> int:
        """Training epochs of ``step``: ``epochs`` at step 0; after it ``epochs_next_single`` for a
        step adding one class (if set), else ``epochs_next`` (if set), else ``epochs``."""
        if step == 0:
            return int(self.epochs)
        if self.epochs_next_single:
            steps = get_task(self.dataset, self.task)
            if step < len(steps) and len(steps[step]) == 1:
                return int(self.epochs_next_single)
        return int(self.epochs_next) if self.epochs_next else int(self.epochs)

    def lr_at(self, step: int, method: str = "") -> float:
        """Initial learning rate of ``step`` for ``method``: ``lr`` at step 0; after it, under the
        official protocol ``lr`` times the method's :attr:`~incseg_lib.methods.StepProtocol.lr_factor`
        (a method outside the registry, or none given: ``lr_next``), under the shared one ``lr_next``."""
        if step == 0:
            return float(self.lr)
        if self.protocol == "official" and is_method(method):
            # rounded so that 0.05 x 0.1 is 0.005 in the key and the record, not 0.005000000000000001
            return round(float(self.lr) * (self.lr_factor or method_spec(method).protocol.lr_factor), 12)
        return float(self.lr_next)

    def ce_normalisation_at(self, method: str = "") -> str:
        """How ``method``'s classification loss is averaged at steps >= 1 (``all`` or ``labelled``):
        :attr:`ce_normalisation` if set, else the official protocol's, else ``labelled``."""
        if self.ce_normalisation:
            return self.ce_normalisation
        if self.protocol == "official" and is_method(method):
            return method_spec(method).protocol.ce_normalisation
        return "labelled"

    def step_protocol(self, step: int, method: str) -> dict:
        """What ``method`` trains ``step`` with, as recorded: protocol name, learning rate, loss
        normalisation, and the loss weights of the method as built (``{}`` at step 0)."""
        if step == 0 or not is_method(method):
            return {"protocol": "step0" if step == 0 else self.protocol, "lr": self.lr_at(step, method)}
        return {
            "protocol": self.protocol,
            "lr": self.lr_at(step, method),
            "ce_normalisation": self.ce_normalisation_at(method),
            "weights": dict(get_method(method, protocol=self.protocol).weights),
        }

    def data_fingerprint(self) -> str:
        """Content fingerprint of the training list this run reads (not its path; see
        :meth:`~incseg_lib.data.common.SegmentationDataset.content_fingerprint`), cached per process."""
        split = train_split(self.dataset, self.voc_split)
        root = self.data_path.resolve()
        cache_key = (self.dataset, str(root), split, self.task != "offline")
        if cache_key not in _FINGERPRINTS:
            ds = load_dataset(self.dataset, split, root=root, incremental=self.task != "offline")
            _FINGERPRINTS[cache_key] = ds.content_fingerprint()
        return _FINGERPRINTS[cache_key]

    def key_task(self, step: int, method: str) -> str:
        """The task part of the key and folder of ``method``'s step ``step``: the task after step 0;
        at step 0 its base signature (``0-15of21``, shared by the tasks with the same first
        classes), unless that step 0 builds every step's heads at once (DFT*'s pre-allocation,
        :func:`~incseg_lib.methods.preallocates`): then the task itself."""
        if step > 0 or preallocates(step0_name(method)):
            return self.task
        return base_signature(self.dataset, self.task)

    def training_key(self, *, step: int, method: str, base: str = "", replayed: bool = False) -> dict[str, Any]:
        """What determines the weights of ``step``: the checkpoint's identity.

        Step 0 does not depend on the incremental method, so its key uses method ``step0``
        and every method of a task and setting shares the same step-0 model. It does not depend
        on how the later classes are split into steps either: tasks with the same step-0 classes
        (VOC 15-5 and 15-1, CamVid 8-3 and 8-1) share it (``task`` = the base signature).
        A later step starts from step - 1 of the same method, so its key holds that step's key
        (``previous``, as a digest): changing step 0's epochs changes every later checkpoint too.
        The data enters by content (:meth:`data_fingerprint`), not by path: the same data at
        another path, a moved checkout or checkpoints handed to students are reused.

        Args:
            method: the run: a method (``mib``, ``step0``, ``offline``) or a variant run of one
                (``mib+mem-5pc-class-balanced``), whose name :mod:`incseg_lib.experiment.keys`
                builds and reads, passing ``base`` and ``replayed``.
            base: the method a variant run is of (``mib``); ``""``: ``method`` itself.
            replayed: the run replays stored or synthetic images (their background is read
                differently, so the key says so).
        """
        base = base or method
        key = {
            "architecture": ARCHITECTURE_VERSION,
            "dataset": self.dataset,
            "data": self.data_fingerprint(),
            "voc_split": self.voc_split if self.dataset == "voc" else "",
            "task": self.key_task(step, base),
            "setting": self.setting if self.task != "offline" else "",
            "method": method if step > 0 else step0_name(base),
            "step": step,
            "backbone": self.backbone,
            "pretrained": self.pretrained,
            "crop_size": self.crop_size,
            "batch_size": self.batch_size,
            "epochs": self.epochs_at(step),
            "lr": self.lr_at(step, base),
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "optimizer": self.optimizer,
            "aux_weight": self.aux_weight,
            "void_label": self.void_label,
            "max_train_images": self.max_train_images,
            "seed": self.seed,
        }
        if self.model != "bisenet":  # BiSeNet's keys stay as they were before DeepLabV3 was offered
            key["model"] = self.model
        if self.sync_bn:  # changes the batch statistics only with several processes, but then the weights
            key["sync_bn"] = True
        if step > 0:
            key["previous"] = key_digest(self.training_key(step=step - 1, method=method, base=base, replayed=replayed))
            key.update(aux_next=self.aux_next, distill_pixels=self.distill_pixels)
            for option in method_spec(base).key_options if is_method(base) else ():
                key[option] = getattr(self, option)
            # entered only when not the shared setting, so its checkpoints keep their keys
            if self.protocol != "shared":
                key["protocol"] = self.protocol
            if self.ce_normalisation_at(base) != "labelled":
                key["ce_normalisation"] = self.ce_normalisation_at(base)
            if replayed:  # replayed images: how their background is read
                key["memory_background"] = "merged-with-classes-since-storage-and-new"
        return key


_FINGERPRINTS: dict[tuple, str] = {}


def task_methods(plan: dict, task: str) -> list[str]:
    """The methods a study ``plan`` runs on ``task``: its ``task_methods`` entry for that task if it
    has one (the demo runs FT, MiB, PLOP and SDR on 10-1), else its ``methods``."""
    return list((plan.get("task_methods") or {}).get(task) or plan["methods"])


def step0_name(method: str) -> str:
    """The step-0 run ``method`` starts from: ``step0`` (softmax), ``step0-bce`` (LwF-MC's BCE);
    step-0 runs (``step0``, ``step0-bce``) map to themselves, anything else (``offline``, a recorded variant such as
    ``smib``) to ``step0``. A variant run's name is read by :mod:`incseg_lib.experiment.keys`."""
    if method in step0_names():
        return method
    return method_spec(method).step0 if is_method(method) else "step0"


def coerce_option(name: str, value: Any) -> Any:
    """``value`` as the type of :class:`RunConfig` field ``name``: ``"30"`` -> 30 for an int field,
    ``"0.01"`` -> 0.01 for a float, ``"true"`` -> True for a bool (what a command line gives).

    Raises:
        ValueError: the value does not fit, naming the option, the value and the type expected.
    """
    import typing

    kind = typing.get_type_hints(RunConfig)[name]
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    else:  # amp (bool or a mode name), the plan dicts: validated where they are used
        return value
    want = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}[kind]
    raise ValueError(f"option {name}={value!r} is not {want}")
