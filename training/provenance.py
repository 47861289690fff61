"""Code version of a training: package version, git commit and a hash of the source tree.

``code_version()`` is what model cards record (``training.code``) next to the recipe entries
they were trained on: the installed ``hotline`` version, the git commit of the checkout (and
whether the relevant files had uncommitted changes) when the package runs from one, and a
sha256 over the source files of the packages that change samples or models
(``SOURCE_PARTS``: fast simulation, features, processes, generation, training, models,
sample access; Python and TOML files, not the model registry). Two trainings with the same
``source_hash`` ran the same code whether or not git was available.
"""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

#: hotline sub-packages whose source decides the samples and the trained models
SOURCE_PARTS = ("detectors", "models", "training", "stream")
_CORE_FILES = ("config.py", "errors.py", "registry.py")
_SKIP_DIRS = {"__pycache__", "registry", "builds"}


def _package_root() -> Path:
    import hotline

    return Path(hotline.__file__).resolve().parent


def source_files(root: Path | None = None) -> list[tuple[str, Path]]:
    """(relative name, path) of every hashed file, sorted by name."""
    root = root or _package_root()
    out: list[tuple[str, Path]] = []
    for f in _CORE_FILES:
        p = root / f
        if p.is_file():
            out.append((f, p))
    for part in SOURCE_PARTS:
        base = root / part
        for p in base.rglob("*"):
            rel = p.relative_to(base)
            if any(s in _SKIP_DIRS for s in rel.parts[:-1]) or not p.is_file():
                continue
            if p.suffix in (".py", ".toml"):
                out.append((f"{part}/{rel.as_posix()}", p))
    return sorted(out)


@lru_cache(maxsize=1)
def source_hash() -> str:
    """16 hex characters of sha256 over the names and bytes of ``source_files()``."""
    h = hashlib.sha256()
    for name, path in source_files():
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """``{"git_commit": sha or None, "git_dirty": bool or None}`` of the checkout the package
    runs from (None when it is not a git checkout or git is absent)."""
    checkout = _package_root().parent
    top = _git(["rev-parse", "--show-toplevel"], checkout)
    if top is None or Path(top).resolve() != checkout.resolve():
        return {"git_commit": None, "git_dirty": None}
    commit = _git(["rev-parse", "HEAD"], checkout)
    status = _git(["status", "--porcelain", "--", *SOURCE_PARTS,
                   *(f"hotline/{f}" for f in _CORE_FILES)], checkout)
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hotline")
    except PackageNotFoundError:
        return "unknown"


def code_version() -> dict[str, Any]:
    """What a model card records as the code it was trained and calibrated with."""
    return {"package": package_version(), **git_state(), "source_hash": source_hash(),
            "source_parts": [*SOURCE_PARTS, *(f"hotline/{f}" for f in _CORE_FILES)]}


__all__ = ["SOURCE_PARTS", "code_version", "git_state", "package_version", "source_files",
           "source_hash"]
