"""Google Colab: what a notebook's setup cell does once the library is installed.

The setup cell (rendered into every notebook by :func:`incseg_lib.notebooks.setup_cell`) installs the
library from ``pyproject.toml``'s release, or from ``$INCSEG_SOURCE`` when a course points its
notebooks at a fork, then calls :func:`setup`: optionally mount Google Drive and put ``INCSEG_HOME``
there, so fetched data, checkpoints (written every epoch) and results survive a disconnect, and say
what was installed and where everything goes.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

from .env import default_home, runs_root

DRIVE_MOUNT = "/content/drive"
DRIVE_HOME = "/content/drive/MyDrive/incseg"


def installed() -> dict:
    """The installed ``incseg`` distribution: ``version``, and where pip took it from: ``url`` and
    ``commit`` (git) or ``path`` (wheel, folder), read from its PEP 610 ``direct_url.json``.

    Raises:
        PackageNotFoundError: incseg is not installed.
    """
    dist = metadata.distribution("incseg")
    info = {"version": dist.version}
    raw = dist.read_text("direct_url.json")
    if raw:
        d = json.loads(raw)
        url = d.get("url", "")
        if "vcs_info" in d:
            info.update(
                url=url, commit=d["vcs_info"].get("commit_id", ""), ref=d["vcs_info"].get("requested_revision", "")
            )
        else:
            info["path"] = url.removeprefix("file://")
    return info


def describe(info: dict) -> str:
    """One line for :func:`installed`'s dict, e.g. ``incseg 0.1.0 (git https://... @ v0.1.0, commit 1a2b3c4d)``."""
    where = ""
    if info.get("commit"):
        where = f" (git {info['url']} @ {info.get('ref') or 'default branch'}, commit {info['commit'][:8]})"
    elif info.get("path"):
        where = f" ({info['path']})"
    return f"incseg {info['version']}{where}"


def setup(source: str, drive: bool = False, home: str = DRIVE_HOME) -> dict:
    """After the install: mount Drive if asked, set ``INCSEG_HOME``, print what was installed.

    Args:
        source: what pip installed from (printed).
        drive: mount Google Drive at ``/content/drive`` and use ``home`` as ``INCSEG_HOME`` (unless
            ``INCSEG_HOME`` is already set).
        home: the Drive folder for data, checkpoints and runs.

    Returns:
        ``installed()`` plus ``home`` (the folder everything is written under) and ``source``.
    """
    if drive:
        from google.colab import drive as gdrive

        gdrive.mount(DRIVE_MOUNT)
        os.environ.setdefault("INCSEG_HOME", home)

    info = {**installed(), "home": str(default_home()), "source": source}
    Path(info["home"]).mkdir(parents=True, exist_ok=True)
    import incseg_lib

    info["library"] = str(Path(incseg_lib.__file__).resolve().parent)
    print(f"installed {describe(info)} from {source}; library at {info['library']}")
    print(
        f"data, checkpoints and results under {info['home']} (runs: {runs_root()})"
        + (
            ""
            if drive or os.environ.get("INCSEG_HOME")
            else "; they are lost when the runtime disconnects: set USE_DRIVE = True to keep them on Drive"
        )
    )
    return info
