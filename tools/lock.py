"""The dependency lock: `requirements.lock`, every direct and transitive package pinned with hashes.

    python tools/lock.py compile   # regenerate it from pyproject.toml (needs the network and uv)
    python tools/lock.py check     # offline: is it stale (pyproject.toml's requirements changed since)?
    python tools/lock.py outdated  # online: what a fresh resolve would pin differently today

The lock is universal (uv's ``--universal``): one file whose environment markers cover Linux
(x86_64, aarch64), macOS and Windows on every Python that pyproject.toml allows. Its header holds
a digest of the requirements it was compiled from, so ``check`` needs no network: ``make`` runs it
before installing and refuses a stale lock instead of installing something that no longer matches
pyproject.toml.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / "tools" / "lock-constraints.txt"
DIGEST_PREFIX = "# inputs-digest: "
# The lock covers the oldest Python that pyproject.toml allows and every newer one (markers fork
# where a package's versions differ by Python).
UV_OPTIONS = [
    "--quiet",
    "--universal",
    "--generate-hashes",
    "--extra",
    "dev",
    "--no-header",
    "--annotation-style",
    "line",
]


def _inputs() -> dict:
    """What the lock is compiled from: the project's requirements and the build backend it needs."""
    import tomllib

    project = tomllib.loads(PYPROJECT.read_text())
    return {
        "requires-python": project["project"].get("requires-python", ""),
        "dependencies": sorted(project["project"].get("dependencies", [])),
        "optional": {k: sorted(v) for k, v in sorted(project["project"].get("optional-dependencies", {}).items())},
        "build": sorted(project.get("build-system", {}).get("requires", [])),
        "constraints": sorted(
            line.strip() for line in CONSTRAINTS.read_text().splitlines() if line.strip() and not line.startswith("#")
        ),
    }


def inputs_digest() -> str:
    return hashlib.sha256(json.dumps(_inputs(), sort_keys=True).encode()).hexdigest()[:16]


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        sys.exit("uv is not installed: `python -m pip install uv` (or pipx install uv), then run this again")
    return uv


def _compile(out: Path) -> None:
    """``uv pip compile`` of pyproject.toml (with [dev]) plus the build backend, into ``out``."""
    inputs = _inputs()
    with tempfile.TemporaryDirectory() as tmp:
        build_in = Path(tmp) / "build.in"  # setuptools: `pip install -e .` builds without isolation from the lock
        build_in.write_text("\n".join(inputs["build"]) + "\n")
        python = inputs["requires-python"].lstrip(">=~ ").split(",")[0] or "3.11"
        subprocess.run(
            [
                _uv(),
                "pip",
                "compile",
                str(PYPROJECT),
                str(build_in),
                *UV_OPTIONS,
                "-c",
                str(CONSTRAINTS),
                "--python-version",
                python,
                "-o",
                str(out),
            ],
            check=True,
            cwd=ROOT,
        )
    body = out.read_text().replace(str(build_in), "build-system.requires")
    header = (
        "# Every package incseg installs, pinned with hashes (generated: do not edit by hand).\n"
        "# Regenerate deliberately with `make lock` (tools/lock.py compile) after changing pyproject.toml;\n"
        "# `make lock-check` says when it is stale. Install the newest versions instead: `make install-latest`.\n"
        f"{DIGEST_PREFIX}{inputs_digest()}\n"
    )
    out.write_text(header + body)


def recorded_digest(lock: Path = LOCK) -> str | None:
    for line in lock.read_text().splitlines()[:10]:
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX) :].strip()
    return None


def check() -> int:
    """0 when the lock matches pyproject.toml's requirements; 1 (with what to do) when stale or missing."""
    if not LOCK.is_file():
        print(f"{LOCK.name} is missing: run `make lock` (needs the network) to create it", file=sys.stderr)
        return 1
    if recorded_digest() != inputs_digest():
        print(
            f"{LOCK.name} is stale: pyproject.toml's requirements changed since it was compiled. Run `make lock` "
            "(regenerates it; review the diff and commit both), or `make install-latest` for an unlocked "
            "install",
            file=sys.stderr,
        )
        return 1
    print(f"{LOCK.name} matches pyproject.toml (inputs digest {inputs_digest()})")
    return 0


def outdated() -> int:
    """Resolve afresh and list the pins that differ from the lock (newer releases since it was made)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "fresh.lock"
        _compile(fresh)
        old, new = _pins(LOCK), _pins(fresh)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    for k in changed:
        print(f"{k}: locked {old.get(k, '-')}, today {new.get(k, '-')}")
    print(f"{len(changed)} pin(s) differ from a fresh resolve" if changed else "the lock is what a fresh resolve gives")
    return 0


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        if line and not line.startswith((" ", "#")) and "==" in line:
            spec = line.split(" \\")[0].strip()
            name, _, rest = spec.partition("==")
            version, _, marker = rest.partition(";")
            pins[f"{name.strip()}{' ;' + marker if marker else ''}"] = version.strip()
    return pins


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "check"
    if cmd == "compile":
        _compile(LOCK)
        print(f"wrote {LOCK.relative_to(ROOT)} (inputs digest {inputs_digest()}); review `git diff` and commit it")
        return 0
    if cmd == "check":
        return check()
    if cmd == "outdated":
        return outdated()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
