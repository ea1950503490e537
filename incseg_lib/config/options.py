"""The option tables besides :class:`~incseg_lib.config.RunConfig`: DeepInversion's and SEAM's options
sized per profile, and the comma lists notebooks take as parameters."""

from __future__ import annotations

from ..inversion import InversionConfig
from ..profiles import INVERSION_PROFILES, SEAM_PROFILES
from ..seam import SeamConfig


def profile_options(cls, table: dict[str, dict], profile: str, overrides: dict, what: str):
    """``cls`` (an options dataclass) sized for ``profile`` from ``table``, with ``overrides`` on top
    (``None`` values skipped): what :func:`inversion_config` and :func:`seam_config` build.

    Raises:
        ValueError: unknown profile or option (naming ``what`` and the valid choices), or an
            invalid value (from ``cls``).
    """
    if profile not in table:
        raise ValueError(f"unknown profile {profile!r} for {what}; choose one of {sorted(table)}")
    names = set(cls.__dataclass_fields__)
    bad = sorted(set(overrides) - names)
    if bad:
        raise ValueError(f"unknown {what} option(s) {bad}; valid options: {sorted(names)}")
    return cls(**{**table[profile], **{k: v for k, v in overrides.items() if v is not None}})


def inversion_config(profile: str, **overrides) -> InversionConfig:
    """The :class:`~incseg_lib.inversion.InversionConfig` of ``profile`` with ``overrides`` (``None``
    values skipped), sized by :data:`INVERSION_PROFILES`.

    Raises:
        ValueError: unknown profile or option, or an invalid value (names it).
    """
    return profile_options(InversionConfig, INVERSION_PROFILES, profile, overrides, "DeepInversion")


def seam_config(profile: str, **overrides) -> SeamConfig:
    """The :class:`~incseg_lib.seam.SeamConfig` of ``profile`` with ``overrides`` (``None`` values
    skipped), sized by :data:`SEAM_PROFILES`.

    Raises:
        ValueError: unknown profile or option, or an invalid value (names it).
    """
    return profile_options(SeamConfig, SEAM_PROFILES, profile, overrides, "SEAM")


def parse_list(text: str | list, cast=str, name: str = "") -> list:
    """Parse a papermill-friendly comma list (``"0.01,0.025"``) into a typed list.

    Raises:
        ValueError: an item that is not of the type ``cast`` makes, naming the parameter ``name``
            and the item (``parameter sizes: 'abc' is not a whole number``).
    """
    items = list(text) if isinstance(text, (list, tuple)) else [t.strip() for t in str(text).split(",") if t.strip()]
    out = []
    for item in items:
        try:
            out.append(cast(item))
        except (TypeError, ValueError):
            want = {int: "a whole number", float: "a number"}.get(cast, f"a {getattr(cast, '__name__', cast)}")
            where = f"parameter {name}: " if name else ""
            raise ValueError(f"{where}{item!r} is not {want} (give a comma-separated list, e.g. 1,5)") from None
    return out
