"""The one list of methods: each method module registers a :class:`MethodSpec` (its identity beside
its hooks), and every other module (config, the step, results, findings, figures, notebooks) reads
names, display labels, order, step-0 families and protocols from here, never from a list of its own.

Adding a method is one loss module (if it has new losses), one module in this package that calls
:func:`register`, and one test; a method registered from outside the package (a test, a student's
notebook) trains and shows in the tables the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .base import MIB_TRAINER_PROTOCOL, PROTOCOLS, Method, StepProtocol

#: The role a method plays in the course's lessons, read by the expected findings (notebook 02):
#: ``fine-tuning`` (the lower bound), ``output distillation`` (LwF, LwF-MC, ILT: keep more than FT,
#: less than MiB), ``parameter regularisation`` (EWC, PI, RW), ``unbiased distillation`` (MiB, the
#: course's reference), ``feature space`` (PLOP, SDR: compared with MiB where MiB forgets) and
#: ``frozen features`` (DFT*: the backbone frozen after step 0, only new classifiers learn).
FAMILIES = (
    "fine-tuning",
    "output distillation",
    "parameter regularisation",
    "unbiased distillation",
    "feature space",
    "frozen features",
)
#: Step-0 runs and their display labels: softmax cross-entropy (``step0``, shared by every softmax
#: method) and the families a method declares with :attr:`MethodSpec.step0`.
STEP0_LABELS = {"step0": "step 0"}


@dataclass(frozen=True)
class MethodSpec:
    """A method's identity: what the rest of the library reads about it.

    Attributes:
        name: the registry name (lower case, no ``|`` or ``/``): ``mib``.
        label: the field's display name: ``MiB``.
        order: position in tables and figures (smaller first; the shipped methods use 10-110).
        build: ``(name, weights) -> Method``: the method's hooks with its loss weights.
        defaults: loss weights in the course's shared setting (``protocol="shared"``), in the order
            the key records them; the official protocol's :attr:`StepProtocol.weights` replace those
            of the same name.
        protocol: what the official scripts do after step 0 (learning-rate factor, loss
            normalisation, weights of its own), with its source.
        main_weight: the weight ``get_method(..., kd_weight=)`` overrides (its distillation or
            penalty weight); None: the method has none to override.
        family: one of :data:`FAMILIES`.
        step0: the step-0 run the method starts from: ``step0`` or a family of its own
            (``step0-bce``), trained with :attr:`step0_loss`.
        step0_label: that step 0's display label (for a family of its own).
        step0_loss: ``aux_weight -> loss_fn(model, images, target, outputs)`` for a step 0 of its own.
        source: the paper and the official code the method follows.
        ablation_of: the method this one ablates (``sdr-only``: ``sdr`` without MiB's losses), or
            ``""``; an ablation trains and shows like any method, and lessons that list the field's
            methods leave it out.
        preallocate: the method's step 0 (a family of its own) builds the classifier heads of every
            step of the task at once, and later steps add none (DFT*'s ``--pre_allocate``): the
            future heads train as negatives until their step, and are left out at inference until
            then (:attr:`~incseg_lib.models.IncrementalClassifier.seen_steps`). Such a step 0
            depends on the whole task, not only on its first classes.
        key_options: :class:`~incseg_lib.config.RunConfig` fields that change what this method
            trains after step 0 and so enter its checkpoint key (PI: ``pi_estimator``).
    """

    name: str
    label: str
    order: int
    build: Callable[[str, dict], Method]
    defaults: dict = field(default_factory=dict)
    protocol: StepProtocol = MIB_TRAINER_PROTOCOL
    main_weight: str | None = None
    family: str = "fine-tuning"
    step0: str = "step0"
    step0_label: str = ""
    step0_loss: Callable | None = None
    source: str = ""
    ablation_of: str = ""
    preallocate: bool = False
    key_options: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.name or any(c in self.name for c in "|/ ") or self.name != self.name.lower():
            raise ValueError(f"method name {self.name!r}: lower case, without '|', '/' or spaces")
        if self.family not in FAMILIES:
            raise ValueError(f"method {self.name}: family {self.family!r}; choose one of {FAMILIES}")
        if self.main_weight is not None and self.main_weight not in self.defaults:
            raise ValueError(f"method {self.name}: main_weight {self.main_weight!r} is not one of its defaults")
        if self.step0 != "step0" and self.step0_loss is None:
            raise ValueError(f"method {self.name}: a step 0 of its own ({self.step0}) needs step0_loss")
        if self.preallocate and self.step0 == "step0":
            raise ValueError(f"method {self.name}: pre-allocated heads need a step 0 of its own, not the shared step0")

    def weights(self, protocol: str = "official", kd_weight: float | None = None) -> dict:
        """The loss weights under ``protocol``, with ``kd_weight`` replacing :attr:`main_weight`."""
        out = dict(self.defaults)
        if protocol == "official":  # only the weights this method has (sdr-only shares SDR's protocol, not its KD)
            out.update({k: v for k, v in self.protocol.weights.items() if k in out})
        if kd_weight is not None and self.main_weight is not None:
            out[self.main_weight] = float(kd_weight)
        return out


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add ``spec`` to the registry and return it.

    Raises:
        ValueError: the name is taken (pass ``replace=True`` to swap it, e.g. in a test), or it is a
            step-0 or run name (``step0``, ``joint``, ``offline``).
    """
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"method {spec.name!r} is registered already (by {_REGISTRY[spec.name].source or 'a module'})")
    if spec.name in STEP0_LABELS or spec.name in ("joint", "offline") or spec.name.startswith("step0"):
        raise ValueError(f"method name {spec.name!r} is a run name of the course; choose another")
    _REGISTRY[spec.name] = spec
    _DERIVED.clear()  # a variant is rebuilt from the spec now registered
    if spec.step0 != "step0":
        STEP0_LABELS[spec.step0] = spec.step0_label or f"step 0 ({spec.step0})"
    return spec


def unregister(name: str) -> None:
    """Remove a method registered with :func:`register` (a test's toy method)."""
    spec = _REGISTRY.pop(name, None)
    _DERIVED.clear()
    if spec is not None and spec.step0 != "step0" and not any(s.step0 == spec.step0 for s in _REGISTRY.values()):
        STEP0_LABELS.pop(spec.step0, None)


def method_names(*, ablations: bool = True) -> tuple[str, ...]:
    """Every registered method's name, in table order (without ``ablations``: those that are not an
    ablation of another, :attr:`MethodSpec.ablation_of`)."""
    specs = sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))
    return tuple(s.name for s in specs if ablations or not s.ablation_of)


#: Method variants that apply on top of any registered method, by name suffix (``+ewf``): the suffix
#: and ``base spec -> variant spec``. A variant is not listed by :func:`method_names`; its name
#: (``mib+ewf``) is resolved on first use and kept.
_SUFFIXES: dict[str, Callable[[MethodSpec], MethodSpec]] = {}
_DERIVED: dict[str, MethodSpec] = {}


def register_suffix(suffix: str, make: Callable[[MethodSpec], MethodSpec]) -> None:
    """Declare a variant of every method: ``<method><suffix>`` is ``make(method's spec)``.

    Raises:
        ValueError: ``suffix`` does not start with ``+``, or is taken.
    """
    if not suffix.startswith("+") or suffix in _SUFFIXES:
        raise ValueError(f"method suffix {suffix!r}: it must start with '+' and be new")
    _SUFFIXES[suffix] = make


def _derived(name: str) -> MethodSpec | None:
    """The spec of a suffixed variant ``name`` (``mib+ewf``), or None when ``name`` is not one."""
    if name in _DERIVED:
        return _DERIVED[name]
    for suffix, make in _SUFFIXES.items():
        base = name[: -len(suffix)]
        if name.endswith(suffix) and base in _REGISTRY:
            _DERIVED[name] = make(_REGISTRY[base])
            return _DERIVED[name]
    return None


def is_method(name: str) -> bool:
    """Whether ``name`` is a registered step method or a variant of one (``mib+ewf``), not ``step0``,
    ``joint`` or a variant run."""
    return name in _REGISTRY or _derived(name) is not None


def method_spec(name: str) -> MethodSpec:
    """The registered :class:`MethodSpec` of ``name`` (or of a suffixed variant, ``mib+ewf``).

    Raises:
        ValueError: unknown name, listing the registered ones.
    """
    spec = _REGISTRY.get(name) or _derived(name)
    if spec is None:
        suffixes = f" (and any of them with {', '.join(_SUFFIXES)})" if _SUFFIXES else ""
        raise ValueError(f"unknown method {name!r}; choose one of {method_names()}{suffixes}")
    return spec


def methods_of(family: str) -> tuple[str, ...]:
    """The registered methods of one of :data:`FAMILIES`, in table order."""
    if family not in FAMILIES:
        raise ValueError(f"family {family!r}; choose one of {FAMILIES}")
    return tuple(n for n in method_names() if _REGISTRY[n].family == family)


def step0_names() -> tuple[str, ...]:
    """Every step-0 run: ``step0`` and the families methods declare (``step0-bce``)."""
    return tuple(STEP0_LABELS)


def step0_label(step0: str) -> str:
    """The display label of a step-0 run (``step0`` -> ``step 0``, ``step0-bce`` -> ``step 0 (BCE)``).

    Raises:
        ValueError: not a step-0 run.
    """
    if step0 not in STEP0_LABELS:
        raise ValueError(f"unknown step-0 run {step0!r}; choose one of {step0_names()}")
    return STEP0_LABELS[step0]


def preallocates(step0: str) -> bool:
    """Whether the step-0 run ``step0`` builds the heads of every step of its task at once
    (:attr:`MethodSpec.preallocate`); False for ``step0`` and for an unknown name."""
    return any(spec.step0 == step0 and spec.preallocate for spec in _REGISTRY.values())


def step0_loss_fn(step0: str, aux_weight: float = 1.0) -> Callable | None:
    """Step 0's loss for the step-0 run ``step0``: None (the engine's softmax cross-entropy) for
    ``step0``, else the declaring method's :attr:`MethodSpec.step0_loss`.

    Raises:
        ValueError: no registered method declares ``step0``.
    """
    if step0 == "step0":
        return None
    for spec in _REGISTRY.values():
        if spec.step0 == step0:
            return spec.step0_loss(aux_weight)
    raise ValueError(f"unknown step-0 run {step0!r}; choose one of {step0_names()}")


def get_method(name: str, *, kd_weight: float | None = None, protocol: str = "official") -> Method:
    """The :class:`Method` ``name`` with its documented weights (:attr:`MethodSpec.defaults`, the
    official protocol's own weights under ``protocol="official"``, e.g. SDR's KD 100), its
    protocol attached; ``kd_weight`` overrides its :attr:`MethodSpec.main_weight` (e.g. MiB's KD
    100 for a 15-1 ablation). Each method module's docstring gives its sources.

    Raises:
        ValueError: unknown name (lists the registered ones) or protocol.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}; choose one of {PROTOCOLS}")
    spec = method_spec(name)
    method = spec.build(spec.name, spec.weights(protocol, kd_weight))
    method.protocol, method.step0 = spec.protocol, spec.step0
    return method
