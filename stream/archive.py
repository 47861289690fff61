"""Archives of runs: a folder of ``run_<number>/`` folders of ROOT files.

An archive is the on-disk form of recorded (or generated) data::

    ARCHIVE/
      run_315267/
        nano_0000.root  nano_0001.root ...   (tree "Events", NanoAOD-style)
        run.json                              (optional card: how it was made)

``list_runs`` describes every run (files, events, lumisection range) without
reading event data; ``find_run`` resolves a run number to its files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hotline.errors import SourceError

RUN_DIR = re.compile(r"^run_(\d+)$")


@dataclass
class RunInfo:
    """What ``hotline runs`` shows for one archived run."""

    run: int
    path: Path
    files: list[Path]
    events: int | None = None
    first_lumi: int | None = None
    last_lumi: int | None = None
    size_bytes: int = 0
    card: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def run_dir_name(run: int) -> str:
    return f"run_{run:06d}"


def _root_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".root" and p.is_file())


def find_run(archive: str | Path, run: int) -> RunInfo:
    """The files of run ``run`` in ``archive``; ``SourceError`` if absent or empty."""
    arch = Path(archive)
    if not arch.is_dir():
        raise SourceError(f"archive {arch} does not exist or is not a folder", str(arch))
    for d in arch.iterdir():
        m = RUN_DIR.match(d.name)
        if m and int(m.group(1)) == run and d.is_dir():
            files = _root_files(d)
            if not files:
                raise SourceError(f"run {run} in archive {arch} has no .root files ({d})", str(d))
            return RunInfo(run=run, path=d, files=files, card=_read_card(d))
    known = ", ".join(str(r.run) for r in list_runs(arch, scan=False)) or "none"
    raise SourceError(f"run {run} is not in archive {arch} (runs there: {known})", str(arch))


def _read_card(d: Path) -> dict[str, Any]:
    p = d / "run.json"
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        return {"error": f"run.json is not valid JSON: {exc}"}


def list_runs(archive: str | Path, scan: bool = True, tree: str = "Events") -> list[RunInfo]:
    """All runs in ``archive``, sorted by number; with ``scan`` read event counts and lumis."""
    arch = Path(archive)
    if not arch.is_dir():
        raise SourceError(f"archive {arch} does not exist or is not a folder", str(arch))
    runs = []
    for d in sorted(arch.iterdir()):
        m = RUN_DIR.match(d.name)
        if not (m and d.is_dir()):
            continue
        info = RunInfo(run=int(m.group(1)), path=d, files=_root_files(d), card=_read_card(d))
        info.size_bytes = sum(f.stat().st_size for f in info.files)
        if scan:
            _scan(info, tree)
        runs.append(info)
    return sorted(runs, key=lambda r: r.run)


def _scan(info: RunInfo, tree: str) -> None:
    import uproot

    events = 0
    lumis: list[int] = []
    for f in info.files:
        try:
            with uproot.open(f) as fh:
                t = fh[tree]
                events += t.num_entries
                if "luminosityBlock" in t.keys() and t.num_entries:
                    ls = t["luminosityBlock"].array(library="np")
                    lumis += [int(np.min(ls)), int(np.max(ls))]
        except Exception as exc:  # noqa: BLE001 - any unreadable file is a problem to list
            info.problems.append(f"{f.name}: {describe_open_error(exc, tree, f)}")
    info.events = events
    if lumis:
        info.first_lumi, info.last_lumi = min(lumis), max(lumis)


#: a ROOT file starts with these four bytes; its header alone is about 100 bytes, and the
#: smallest file holding a tree is several hundred
ROOT_MAGIC = b"root"


def describe_file(path: str | Path) -> str | None:
    """Why ``path`` cannot be a ROOT file, from its size and first bytes (None: it may be one)."""
    p = Path(path)
    if p.is_dir():
        return "is a folder, not a ROOT file"
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            head = fh.read(len(ROOT_MAGIC))
    except FileNotFoundError:
        return "file does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or type(exc).__name__})"
    if size == 0:
        return "empty file (0 bytes)"
    if head != ROOT_MAGIC:
        return f"not a ROOT file ({size} bytes, no ROOT header)"
    return None


def describe_open_error(exc: BaseException, tree: str, path: str | Path | None = None) -> str:
    """A one-line reason for a file that uproot cannot open or read (``path``: look at the
    file itself first, so an empty or tiny file is called that, not an uproot message)."""
    if path is not None:
        found = describe_file(path)
        if found is not None:
            return found
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return "file does not exist"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a ROOT file"
    if "not a ROOT file" in text or "magic" in text.lower():
        return "not a ROOT file (bad magic bytes)"
    if "expected Chunk of length" in text:
        return "truncated ROOT file (shorter than its own header says)"
    if isinstance(exc, KeyError) or "not found" in text:
        return f"has no tree '{tree}'"
    return f"unreadable ({type(exc).__name__}: {text[:160]})"
