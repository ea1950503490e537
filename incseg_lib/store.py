"""Safe files: atomic writes that say which folder is full, checkpoints that cannot run code, locks.

A leaf of the library (it imports nothing of incseg). Everything incseg writes goes through
:func:`atomic_write_bytes` (or a helper built on it): the bytes go to a temporary file beside the
target (``.<name>.<pid>.tmp``), which is renamed over the target only once complete, so a reader
never sees half a file. When the disk or a quota is full the temporary file is removed and
:class:`DiskFull` names the folder, how much the write needed and how much was free; temporary
files left by processes that died (a killed kernel, a Colab disconnect) are removed by
:func:`remove_stale_temporaries`.

Everything incseg saves with torch is tensors, numbers, strings, lists and dicts, so it is read
back with ``torch.load(..., weights_only=True)`` (:func:`load_torch`): a file holding anything
else (a pickle that would run code when loaded) is refused, naming the file, and never executed.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .log import get_logger

log = get_logger(__name__)

FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", 122)}
_TMP = re.compile(r"^\..+\.(\d+)\.tmp(\.[A-Za-z0-9]+)?(-new)?$")
# A temporary file whose writer is alive is kept, unless nothing touched it for this long (its pid may
# belong to another machine sharing the folder, e.g. a Drive mount written by an earlier Colab session).
STALE_AFTER_S = 6 * 3600


class DiskFull(OSError):
    """The disk or quota holding ``folder`` is full; nothing was left behind by the failed write."""

    def __init__(self, folder: Path, what: str, needed: int, free: int | None):
        free_txt = "unknown" if free is None else f"{free / 1e6:.1f} MB"
        super().__init__(
            errno.ENOSPC,
            f"no space left in {folder} to write {what} ({needed / 1e6:.1f} MB needed, "
            f"{free_txt} free): free space there, or point INCSEG_HOME (or "
            "checkpoint_dir / --out) to a folder on a larger disk",
        )
        self.folder, self.needed, self.free = Path(folder), needed, free

    def __str__(self) -> str:
        return self.strerror


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file cannot be read (truncated copy, full disk, killed writer); names the file.

    Attributes:
        path: the file (None when not known).
    """

    def __init__(self, message: str, path: str | Path | None = None):
        super().__init__(message)
        self.path = Path(path) if path is not None else None


class UnsafeCheckpoint(CorruptCheckpoint):
    """A checkpoint holds Python objects beyond tensors, numbers, strings, lists and dicts: incseg never
    wrote it and never loads it (unpickling it could run code); names the file."""


def temporary_name(path: Path) -> Path:
    """``path``'s temporary sibling for this process: ``.<name>.<pid>.tmp`` (suffix kept for images)."""
    path = Path(path)
    suffix = path.suffix if path.suffix in (".png", ".jpg") else ""
    return path.with_name(f".{path.stem if suffix else path.name}.{os.getpid()}.tmp{suffix}")


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _write_chunks(fh, data: bytes, chunk: int = 1 << 24) -> None:
    for i in range(0, len(data), chunk):
        fh.write(data[i : i + chunk])


def atomic_write_bytes(path: str | Path, data: bytes, *, what: str = "") -> Path:
    """Write ``data`` to ``path`` atomically; the folder is created.

    Raises:
        DiskFull: the disk or quota is full (before or during the write); the partial file is removed.
        OSError: any other write error (the partial file is removed too).
    """
    path = Path(path)
    what = what or path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    free = _free_bytes(path.parent)
    if free is not None and free < len(data):
        raise DiskFull(path.parent, what, len(data), free)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as fh:
            _write_chunks(fh, data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # also Ctrl-C: never leave a partial file behind
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            raise DiskFull(path.parent, what, len(data), _free_bytes(path.parent)) from None
        raise
    return path


def create_new(path: str | Path, data: bytes, *, what: str = "") -> Path:
    """Like :func:`atomic_write_bytes`, but never replaces an existing ``path``.

    Raises:
        FileExistsError: ``path`` exists (nothing is written).
        DiskFull, OSError: as :func:`atomic_write_bytes`.
    """
    path = Path(path)
    tmp = atomic_write_bytes(
        temporary_name(path).with_name(temporary_name(path).name + "-new"), data, what=what or path.name
    )
    try:
        os.link(tmp, path)  # fails if ``path`` exists
    except FileExistsError:
        raise
    except OSError:  # no hard links (e.g. a Google Drive mount); the caller's unique names keep it new
        if path.exists():
            raise FileExistsError(f"{path} already exists") from None
        os.replace(tmp, path)
        return path
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str, *, what: str = "") -> Path:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), what=what)


def atomic_write_json(path: str | Path, obj: Any, *, what: str = "", **dump_kw) -> Path:
    """:func:`atomic_write_text` of ``json.dumps(obj, **dump_kw)``."""
    return atomic_write_text(path, json.dumps(obj, **dump_kw), what=what)


def atomic_save_npy(path: str | Path, array) -> Path:
    """A NumPy array as ``.npy``, atomically."""
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_png(path: str | Path, array) -> Path:
    """Write ``array`` (``(H, W)`` uint8 ids or ``(H, W, 3)`` uint8 RGB) as a PNG, atomically."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def save_torch(path: str | Path, obj: Any, *, what: str = "") -> Path:
    """``torch.save(obj)`` to ``path`` atomically (serialised in memory first, so the size is known and a
    full disk is reported as :class:`DiskFull`, not as torch's "unexpected pos")."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue(), what=what or f"checkpoint {Path(path).name}")


def load_torch(path: str | Path, map_location="cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings, lists, dicts and nothing else.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnsafeCheckpoint: the file holds other Python objects (loading them could run code): refused.
        CorruptCheckpoint: the file is not a readable torch file (truncated, empty, not torch's format).
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "Unsupported operand" in str(e):
            raise UnsafeCheckpoint(
                f"checkpoint {path} holds Python objects other than tensors, numbers and strings; incseg did not "
                "write it and will not load it (loading it could run code). Delete it, or replace it with a "
                "checkpoint written by incseg",
                path,
            ) from None
        raise CorruptCheckpoint(_unreadable(path, e), path) from None
    except Exception as e:  # noqa: BLE001  zip archive corrupted, EOF, ...: whatever torch raises, named
        raise CorruptCheckpoint(_unreadable(path, e), path) from None


def _unreadable(path: Path, e: Exception) -> str:
    return (
        f"checkpoint {path} is unreadable ({type(e).__name__}: {str(e)[:120]}); it was probably truncated "
        "(a copy or a write that did not finish)"
    )


class CorruptFile(ValueError):
    """A side file (a memory, a manifest, a cache) that cannot be read: it was moved aside
    (:func:`quarantine`), so the next run rebuilds it; the message names both paths."""

    def __init__(self, path: Path, moved: Path | None, why: str):
        where = f"moved aside to {moved.name}" if moved else "left in place (its folder is read-only)"
        super().__init__(f"{path} is unreadable ({why}); {where}, it is rebuilt")
        self.path, self.moved = Path(path), moved


def read_side_file(path: str | Path, read: Callable[[Path], Any], what: str = "") -> Any:
    """``read(path)`` of a side file a run can rebuild (a memory, a manifest, a cache), which may
    raise ``ValueError``, ``KeyError``, ``TypeError`` or ``EOFError`` for a file of the wrong shape.

    Raises:
        CorruptFile: the file is truncated, unreadable or of the wrong shape (moved aside first).
        FileNotFoundError: there is no file.
    """
    path = Path(path)
    try:
        return read(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError) as e:
        moved = None
        with suppress(OSError):
            moved = quarantine(path)
        why = f"{what + ': ' if what else ''}{type(e).__name__}: {str(e)[:120]}"
        raise CorruptFile(path, moved, why) from None


def read_json(path: str | Path, what: str = "", check: Callable[[Any], Any] | None = None) -> Any:
    """The JSON document at ``path``, ``check(doc)`` applied (:func:`read_side_file`).

    Raises:
        CorruptFile: the file is truncated, not JSON or of the wrong shape (moved aside first).
        FileNotFoundError: there is no file.
    """
    check = check or (lambda doc: doc)
    return read_side_file(path, lambda p: check(json.loads(p.read_text())), what)


def read_manifest(path: str | Path, what: str) -> dict | None:
    """The manifest (an object with a ``key``) of a folder a run builds, or None when it is missing
    or corrupt (then named in a warning and moved aside, so the folder is built again)."""
    import warnings

    def shape(doc):
        if not isinstance(doc, dict) or "key" not in doc:
            raise ValueError("not a manifest (an object with a 'key')")
        return doc

    if not Path(path).is_file():
        return None
    try:
        return read_json(path, what, shape)
    except CorruptFile as e:
        warnings.warn(str(e), stacklevel=3)
        return None


def quarantine(path: str | Path) -> Path:
    """Move a corrupt file aside (``<name>.corrupt-<date>-<time>``) so it is kept but never read again."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest, k = path.with_name(f"{path.name}.corrupt-{stamp}"), 1
    while dest.exists():
        dest, k = path.with_name(f"{path.name}.corrupt-{stamp}-{k}"), k + 1
    os.replace(path, dest)
    return dest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(root: str | Path) -> list[Path]:
    """Remove the temporary files (``.<name>.<pid>.tmp``) under ``root`` whose writer is dead (or which
    nothing touched for :data:`STALE_AFTER_S`): what a killed process or a full disk left behind.

    Returns:
        The removed paths (empty when ``root`` does not exist).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    removed, now = [], time.time()
    for p in root.rglob(".*.tmp*"):
        m = _TMP.match(p.name)
        if not m or not p.is_file():
            continue
        try:
            stale = not _alive(int(m.group(1))) or now - p.stat().st_mtime > STALE_AFTER_S
            if stale and int(m.group(1)) != os.getpid():
                p.unlink()
                removed.append(p)
        except OSError:
            continue
    return removed


_CLEANED: set[str] = set()


def clean_once(root: str | Path) -> None:
    """:func:`remove_stale_temporaries` of ``root`` once per process (saying what it freed)."""
    key = str(Path(root).resolve())
    if key in _CLEANED:
        return
    _CLEANED.add(key)
    removed = remove_stale_temporaries(root)
    if removed:
        log.info(f"removed {len(removed)} temporary file(s) left under {root} by processes that stopped")


def key_digest(key: dict[str, Any]) -> str:
    """A short stable hash of a JSON-able dict (used in checkpoint folder names)."""
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]


@contextmanager
def checkpoint_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` while ``path`` is made (POSIX ``flock``).

    Two processes that need the same checkpoint (two notebooks of a parallel suite, two students
    sharing a checkpoint folder) do not train it twice: the second waits, then finds it finished
    and reuses it. The lock is released when the holder exits, also when it is killed. ``None``
    (no checkpoint), a platform without ``fcntl`` or a read-only folder holding ``path`` already
    locks nothing.
    """
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    lock = Path(path).with_name(Path(path).name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fh = open(lock, "a")  # noqa: SIM115  closed by the with below
    except OSError as e:
        if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and Path(path).exists():
            # a read-only folder of finished checkpoints (a lab's shared copy): nothing will be
            # written there, so nothing needs a lock; a missing one fails where it is written
            yield
            return
        raise
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(f"waiting for another process making {Path(path).name} ({lock.parent})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
