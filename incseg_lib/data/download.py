"""Resumable, checksum-verified downloads and archive extraction (standard library only).

Used by ``incseg data voc`` and ``incseg data camvid``. Tests run these against a local HTTP
server; nothing in the test suite touches the network.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from ..env import show_progress

CHUNK = 1 << 20
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


class DownloadError(RuntimeError):
    """A download failed or its checksum did not match (the message names the URL and file)."""


def file_digest(path: Path, algorithm: str = "md5") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


# Longer than the house limit: the resume, the request, the streaming write and the checksum each
# handle their own failures, and keeping them in order in one place keeps the .part file's life easy
# to check (it is renamed only after the checksum, kept on a network error, removed on a bad sum).
def download(
    url: str,
    dest: Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part`` with an HTTP Range request.

    A finished file whose checksum matches is not downloaded again. The data is written to
    ``dest.part`` and renamed to ``dest`` only once complete and verified (atomic).

    Args:
        url: http(s) or file URL.
        dest: final file path.
        md5, sha256: expected hex digest (either or neither).

    Raises:
        DownloadError: network failure (the partial file is kept for the next try) or checksum
            mismatch (the bad file is removed).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and _verify(dest, md5, sha256):
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "incseg"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    total = None
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = getattr(resp, "status", 200)
            if have and status != 206:  # server ignored the range: start over
                have = 0
            total = resp.headers.get("Content-Length")
            total = int(total) + have if total is not None else None
            mode, got = ("ab" if have else "wb"), 0
            with (
                open(part, mode) as out,
                tqdm(
                    total=total,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    disable=not show_progress(progress),
                ) as bar,
            ):
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    bar.update(len(chunk))
                    got += len(chunk)
        if total is not None and have + got < total:
            raise DownloadError(
                f"downloading {url} stopped after {have + got} of {total} bytes; re-run the "
                f"same command to resume from {part}"
            )
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # range not satisfiable: the part file is already complete
            pass
        else:
            raise DownloadError(
                f"downloading {url} failed: HTTP {e.code}; re-run to resume ({part} keeps {have} bytes)"
            ) from e
    except OSError as e:
        from ..store import FULL_ERRNOS, _free_bytes

        if e.errno in FULL_ERRNOS:  # the part file is kept: freeing space and re-running resumes it
            free = _free_bytes(part.parent)
            need = f"{total / 1e6:.0f} MB in all" if total else "size unknown"
            raise DownloadError(
                f"no space left in {part.parent} for {dest.name} ({need}, "
                f"{'?' if free is None else f'{free / 1e6:.0f} MB'} free); {part} keeps "
                f"{part.stat().st_size / 1e6:.0f} MB: free space there (or choose another --root) "
                "and re-run the same command to resume"
            ) from None
        raise DownloadError(f"downloading {url} failed: {e}; re-run the same command to resume from {part}") from e
    except (urllib.error.URLError, http.client.HTTPException) as e:
        raise DownloadError(f"downloading {url} failed: {e}; re-run the same command to resume from {part}") from e
    if not _verify(part, md5, sha256):
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"checksum of {url} does not match the expected "
            f"{'md5 ' + md5 if md5 else 'sha256 ' + str(sha256)}; the file was removed, "
            "re-run to download it again"
        )
    os.replace(part, dest)
    return dest


def _verify(path: Path, md5: str | None, sha256: str | None) -> bool:
    if md5 and file_digest(path, "md5") != md5.lower():
        return False
    return not (sha256 and file_digest(path, "sha256") != sha256.lower())


def extract(archive: Path, dest: Path, *, members_prefix: str = "", progress: bool = True) -> None:
    """Extract a ``.tar``/``.tar.gz``/``.zip`` into ``dest`` (only members under ``members_prefix``).

    Member paths that would leave ``dest`` (absolute or with ``..``) are refused.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()

    def safe(name: str) -> bool:
        target = (root / name).resolve()
        return target == root or root in target.parents

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.startswith(members_prefix) and safe(n)]
            for n in tqdm(names, desc=f"extracting {Path(archive).name}", disable=not show_progress(progress)):
                zf.extract(n, dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = [
                m
                for m in tf.getmembers()
                if m.name.startswith(members_prefix) and safe(m.name) and (m.isfile() or m.isdir())
            ]
            for m in tqdm(members, desc=f"extracting {Path(archive).name}", disable=not show_progress(progress)):
                tf.extract(m, dest, **_TAR_FILTER)
    else:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive")


def move_tree(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` (merging into an existing folder)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        shutil.move(str(src), str(dst))
        return
    for child in Path(src).iterdir():
        move_tree(child, dst / child.name)
    shutil.rmtree(src, ignore_errors=True)
