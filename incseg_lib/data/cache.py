"""Caches of what datasets compute once: where a cache may live (the run's folder, then the
writable cache folders), reading one defensively, writing one without ever stopping a run, and the
digests of data files by content."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from ..env import cache_folders
from ..store import CorruptFile, atomic_write_text, read_side_file


def cache_paths(cache_dir: Path | str | None, name: str) -> list[Path]:
    """Where a cache named ``name`` may live: ``cache_dir/name`` first (if given), then each of
    :func:`~incseg_lib.env.cache_folders`."""
    first = [Path(cache_dir) / name] if cache_dir is not None else []
    return first + [folder / name for folder in cache_folders()]


def read_cache(paths: list[Path], read: Callable[[Path], object], what: str):
    """``read(path)`` of the first of ``paths`` that exists, or None; a file ``read`` cannot read is
    named in a warning and moved aside (``.corrupt-...``), so the caller rebuilds it."""
    for path in paths:
        if not path.is_file():
            continue
        try:
            return read_side_file(path, read)
        except CorruptFile as e:  # left in a read-only folder: the next (writable) path is used instead
            warnings.warn(f"{what} cache {e}", stacklevel=2)
    return None


def write_cache(paths: list[Path], write: Callable[[Path], object], what: str) -> Path | None:
    """``write(path)`` to the first of ``paths`` that can be written; None (with a warning naming the
    folders) when none can: a cache only saves time, so it never stops a run."""
    errors = []
    for path in paths:
        try:
            write(path)
            return path
        except OSError as e:
            errors.append(f"{path.parent} ({e.strerror or e})")
    warnings.warn(
        f"the {what} cache could not be written in {'; '.join(errors)}: it is recomputed next time", stacklevel=2
    )
    return None


_DIGESTS: dict[str, tuple[int, int, str]] = {}


def file_digests(paths: Sequence[Path]) -> dict[str, str]:
    """BLAKE2b digest (32 hex digits) of each file's bytes, ``"missing"`` for a file that does not exist.

    Digests are cached by path, size and modification time, in this process and on disk
    (``file-digests.json`` in a writable cache folder, :func:`~incseg_lib.env.cache_folders`): a
    re-run reads only files that changed. What it costs: docs/results.md ("Data fingerprints").
    """
    if not _DIGESTS:
        loaded = read_cache(cache_paths(None, "file-digests.json"), lambda p: json.loads(p.read_text()), "file-digest")
        if isinstance(loaded, dict):
            _DIGESTS.update({k: tuple(v) for k, v in loaded.items() if isinstance(v, list) and len(v) == 3})
    out, changed = {}, False
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            out[str(path)] = "missing"
            continue
        known = _DIGESTS.get(str(path))
        if known is not None and known[0] == st.st_size and known[1] == st.st_mtime_ns:
            out[str(path)] = known[2]
            continue
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(chunk)
        _DIGESTS[str(path)] = (st.st_size, st.st_mtime_ns, h.hexdigest())
        out[str(path)] = h.hexdigest()
        changed = True
    if changed:
        text = json.dumps({k: list(v) for k, v in _DIGESTS.items()})
        write_cache(cache_paths(None, "file-digests.json"), lambda p: atomic_write_text(p, text), "file-digest")
    return out
