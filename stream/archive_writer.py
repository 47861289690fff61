"""Writing archived runs: columnar events -> NanoAOD-style ROOT files in ``run_<n>/``.

Used by ``hotline archive import`` (re-packing existing NanoAOD files into an
archive run: ``import_run``) and by the sample generator. Jagged collections are
written as NanoAOD does (``nElectron`` counter + ``Electron_pt`` ...); events are
split into files of at most ``events_per_file`` and carry run / luminosityBlock /
event ids.

``import_run`` checks every input before it writes anything (readable, has the tree,
the id branches, events and at least one known physics collection; no event given
twice; relabelling to the run number merges no distinct events), writes one output
file (or more) per input so each keeps exactly the branches it has (the union over
the inputs; nothing is invented for a file that lacks a collection), gives every
event the run number of the import (reported), and swaps the new run folder in only
when it is complete; an existing run is replaced only with ``force`` (its old files
removed).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hotline.errors import SourceError
from hotline.stream.archive import RUN_DIR, describe_open_error, run_dir_name
from hotline.stream.batch import ID_BRANCHES


def _collections(arrays: ak.Array) -> tuple[dict[str, list[str]], list[str]]:
    """Group jagged branches by collection prefix; return (collections, flat branches)."""
    coll: dict[str, list[str]] = {}
    flat: list[str] = []
    for name in arrays.fields:
        if name.startswith("n") and name[1:] in {f.split("_", 1)[0] for f in arrays.fields}:
            continue  # counters are rewritten from the collections
        if arrays[name].ndim > 1 and "_" in name:
            prefix, field = name.split("_", 1)
            coll.setdefault(prefix, []).append(field)
        else:
            flat.append(name)
    return coll, flat


def to_tree_dict(arrays: ak.Array) -> dict[str, Any]:
    """The ``{branch: array}`` dict uproot writes as a NanoAOD-style tree."""
    coll, flat = _collections(arrays)
    out: dict[str, Any] = {name: ak.to_numpy(arrays[name]) for name in flat}
    for prefix, fields in coll.items():
        out[prefix] = ak.zip({f: arrays[f"{prefix}_{f}"] for f in fields})
    return out


def write_tree(f: Any, name: str, data: dict[str, Any], basket_events: int = 20_000) -> None:
    """Write ``data`` as a NanoAOD-style tree (``nElectron`` counters, ``Electron_pt`` fields).

    Events go out in baskets of ``basket_events`` (as CMS files do), so readers decompress
    only what a chunk needs and memory stays bounded when replaying.
    """
    types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
    t = f.mktree(
        name,
        types,
        counter_name=lambda c: f"n{c}",
        field_name=lambda outer, inner: f"{outer}_{inner}",
    )
    n = len(next(iter(data.values()))) if data else 0
    for start in range(0, n, basket_events):
        t.extend({k: v[start : start + basket_events] for k, v in data.items()})


def write_files(
    folder: Path,
    parts: Sequence[ak.Array],
    events_per_file: int = 100_000,
    prefix: str = "nano",
    tree: str = "Events",
    first: int = 0,
) -> list[Path]:
    """Write each of ``parts`` to its own file(s) ``prefix_NNNN.root`` in ``folder``,
    numbered from ``first``."""
    import uproot

    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for arrays in parts:
        n = len(arrays)
        for start in range(0, max(n, 1), events_per_file):
            path = folder / f"{prefix}_{first + len(out):04d}.root"
            with uproot.recreate(path) as f:
                write_tree(f, tree, to_tree_dict(arrays[start : start + events_per_file]))
            out.append(path)
    return out


def write_run(
    archive: str | Path,
    run: int,
    arrays: ak.Array,
    events_per_file: int = 100_000,
    card: Mapping[str, Any] | None = None,
    prefix: str = "nano",
    tree: str = "Events",
) -> Path:
    """Write ``arrays`` (must hold run, luminosityBlock, event) as archive run ``run``."""
    _check_ids(arrays, run)
    folder = Path(archive) / run_dir_name(run)
    write_files(folder, [arrays], events_per_file, prefix, tree)
    if card is not None:
        _write_card(folder, card)
    return folder


def _check_ids(arrays: ak.Array, run: int) -> None:
    for b in ID_BRANCHES:
        if b not in arrays.fields:
            raise SourceError(f"cannot write run {run}: events lack the '{b}' branch")


def _write_card(folder: Path, card: Mapping[str, Any]) -> None:
    (folder / "run.json").write_text(json.dumps(dict(card), indent=2, sort_keys=True) + "\n")


def relabel(arrays: ak.Array, run: int, events_per_lumi: int, first_event: int = 1) -> ak.Array:
    """Give events new ids: one run, consecutive lumisections of ``events_per_lumi`` events.

    Event numbers start at ``first_event`` and lumisections count on from there (event
    ``k`` is in lumisection ``(k - 1) // events_per_lumi + 1``), so parts relabelled with
    consecutive ``first_event`` values continue each other.
    """
    n = len(arrays)
    idx = np.arange(n, dtype=np.int64) + (first_event - 1)
    arrays = ak.with_field(arrays, np.full(n, run, dtype=np.uint32), "run")
    lumi = (idx // events_per_lumi + 1).astype(np.uint32)
    arrays = ak.with_field(arrays, lumi, "luminosityBlock")
    return ak.with_field(arrays, (idx + 1).astype(np.uint64), "event")


# ------------------------------------------------------------------------- archive import

#: fields of a physics collection copied by an import (besides those the rules read)
IMPORT_FIELDS = ("pt", "eta", "phi")


@dataclass
class ImportedFile:
    """One input of an import: what it holds and what was written from it."""

    path: Path
    events: int
    runs: list[int]
    branches: list[str]
    collections: list[str]
    written: list[Path] = field(default_factory=list)


@dataclass
class ImportReport:
    """What ``import_run`` did (the CLI prints it)."""

    run: int
    folder: Path
    inputs: list[ImportedFile]
    relabelled: int = 0  #: events whose run number was changed to ``run``
    from_runs: list[int] = field(default_factory=list)  #: their original run numbers
    replaced: list[Path] = field(default_factory=list)  #: files of the old run, removed

    @property
    def events(self) -> int:
        return sum(f.events for f in self.inputs)

    @property
    def files(self) -> list[Path]:
        return [p for f in self.inputs for p in f.written]


def existing_run_folder(archive: str | Path, run: int) -> Path | None:
    """The folder of run ``run`` in ``archive`` (any ``run_<n>`` spelling), if there is one."""
    arch = Path(archive)
    if not arch.is_dir():
        return None
    for d in arch.iterdir():
        m = RUN_DIR.match(d.name)
        if m and int(m.group(1)) == run and d.is_dir():
            return d
    return None


def _collection_of(branch: str) -> str:
    return branch.split("_", 1)[0]


def _inspect_input(path: Path, tree: str, wanted: set[str],
                   known: Sequence[str]) -> tuple[ImportedFile, np.ndarray]:
    """Check one input (see ``import_run``); returns its description and its ids
    as an (n, 3) int64 array of (run, luminosityBlock, event)."""
    import uproot

    try:
        fh = uproot.open(path)
    except Exception as exc:  # noqa: BLE001 - every unreadable input is reported in one line
        raise SourceError(f"cannot import {path}: {describe_open_error(exc, tree)}",
                          str(path)) from None
    with fh:
        try:
            t = fh[tree]
            keys = list(t.keys())
        except Exception as exc:  # noqa: BLE001
            raise SourceError(f"cannot import {path}: {describe_open_error(exc, tree)}",
                              str(path)) from None
        missing = [b for b in ID_BRANCHES if b not in keys]
        if missing:
            raise SourceError(f"cannot import {path}: id branch '{missing[0]}' is missing in "
                              f"tree '{tree}'", str(path))
        if t.num_entries == 0:
            raise SourceError(f"cannot import {path}: tree '{tree}' has no events", str(path))
        branches = [k for k in keys if k in wanted and k not in ID_BRANCHES]
        if not branches:
            others = [k for k in keys if k not in ID_BRANCHES]
            has = (", ".join(others[:5]) + (f" and {len(others) - 5} more"
                                             if len(others) > 5 else "")) or "nothing else"
            raise SourceError(
                f"cannot import {path}: no known physics collections (looked for "
                f"{', '.join(known)}; besides the id branches it has {has}); another schema?",
                str(path))
        try:
            ids = t.arrays(list(ID_BRANCHES), library="np")
        except Exception as exc:  # noqa: BLE001 - damaged baskets
            raise SourceError(f"cannot import {path}: the id branches are unreadable "
                              f"({type(exc).__name__}: {str(exc)[:120]})", str(path)) from None
    id_arr = np.stack([np.asarray(ids[b]).astype(np.int64) for b in ID_BRANCHES], axis=1)
    runs = sorted(int(r) for r in np.unique(id_arr[:, 0]))
    colls = list(dict.fromkeys(_collection_of(b) for b in branches))
    return ImportedFile(path, int(t.num_entries), runs, branches, colls), id_arr


def _check_unique(inputs: list[ImportedFile], ids: list[np.ndarray], run: int,
                  relabelling: bool) -> None:
    """Refuse events given twice, and relabelling that would merge distinct events."""
    allids = np.concatenate(ids)
    owner = np.concatenate([np.full(len(a), i) for i, a in enumerate(ids)])

    def first_clash(keys: np.ndarray) -> tuple[int, int] | None:
        order = np.lexsort(keys.T[::-1])
        same = (keys[order][1:] == keys[order][:-1]).all(axis=1)
        if not same.any():
            return None
        k = int(np.flatnonzero(same)[0])
        return int(order[k]), int(order[k + 1])

    clash = first_clash(allids)
    if clash is not None:
        a, b = sorted(clash)
        r, ls, ev = (int(v) for v in allids[a])
        fa, fb = inputs[owner[a]].path, inputs[owner[b]].path
        if owner[a] == owner[b]:
            where = f"{fa} holds some events twice"
        elif fa.resolve() == fb.resolve():
            where = f"{fa} is given twice"
        else:
            where = f"{fb} repeats events of {fa}"
        raise SourceError(f"cannot import run {run}: {where} (e.g. run {r} lumisection {ls} "
                          f"event {ev}); each event must be imported once", str(fb))
    if relabelling:
        clash = first_clash(allids[:, 1:])
        if clash is not None:
            a, b = sorted(clash)
            ls, ev = (int(v) for v in allids[a, 1:])
            ra, rb = int(allids[a, 0]), int(allids[b, 0])
            raise SourceError(
                f"cannot import run {run}: relabelling would merge distinct events: run {ra} "
                f"({inputs[owner[a]].path}) and run {rb} ({inputs[owner[b]].path}) both have "
                f"lumisection {ls} event {ev}; import them as separate runs, or give new ids "
                "with --events-per-lumi", str(inputs[owner[b]].path))


def import_run(
    archive: str | Path,
    run: int,
    files: Sequence[str | Path],
    branches: Iterable[str],
    tree: str = "Events",
    events_per_lumi: int | None = None,
    force: bool = False,
    description: str = "",
    events_per_file: int = 100_000,
) -> ImportReport:
    """Import ``files`` as archive run ``run`` (see module docstring); ``SourceError`` (one
    line naming the input) on anything that would make a wrong run. ``branches``: the
    branches worth copying (what the rules, features and geometries read); every
    collection they name is copied with its ``IMPORT_FIELDS`` too."""
    import uproot

    if not 0 <= run < 2**32:
        raise SourceError(f"run number must be in 0 .. {2**32 - 1}, got {run}")
    if events_per_lumi is not None and events_per_lumi < 1:
        raise SourceError(f"--events-per-lumi must be >= 1, got {events_per_lumi}")
    if not files:
        raise SourceError("nothing to import: no input files were given")
    arch = Path(archive)
    old = existing_run_folder(arch, run)
    if old is not None and any(old.iterdir()) and not force:
        raise SourceError(f"run {run} already exists in the archive ({old}); "
                          "use --force to replace it (its files are removed)", str(old))
    branches = list(branches)
    known = list(dict.fromkeys(_collection_of(b) for b in branches if "_" in b))
    wanted = set(branches) | {f"{c}_{f}" for c in known for f in IMPORT_FIELDS}
    inputs: list[ImportedFile] = []
    ids: list[np.ndarray] = []
    for f in files:
        info, id_arr = _inspect_input(Path(f), tree, wanted, known)
        inputs.append(info)
        ids.append(id_arr)
    _check_unique(inputs, ids, run, relabelling=events_per_lumi is None)

    report = ImportReport(run, arch / (old.name if old is not None else run_dir_name(run)),
                          inputs)
    from_runs: set[int] = set()
    tmp = arch / f".{run_dir_name(run)}.importing-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        first_event = 1
        for info in inputs:
            try:
                with uproot.open(info.path) as fh:
                    arrays = fh[tree].arrays(list(ID_BRANCHES) + info.branches, library="ak")
            except Exception as exc:  # noqa: BLE001 - damaged baskets of a checked file
                raise SourceError(f"cannot import {info.path}: unreadable after the header "
                                  f"({type(exc).__name__}: {str(exc)[:120]})",
                                  str(info.path)) from None
            orig = np.asarray(arrays["run"]).astype(np.int64)
            changed = orig != run
            report.relabelled += int(changed.sum())
            from_runs.update(int(r) for r in np.unique(orig[changed]))
            if events_per_lumi is not None:
                arrays = relabel(arrays, run, events_per_lumi, first_event)
                first_event += len(arrays)
            else:
                arrays = ak.with_field(arrays, np.full(len(arrays), run, dtype=np.uint32), "run")
            try:
                info.written = write_files(tmp, [arrays], events_per_file, "nano", tree,
                                           first=len(report.files))
            except (ValueError, TypeError) as exc:
                raise SourceError(f"cannot import {info.path}: its collections are not "
                                  f"consistent ({str(exc).splitlines()[0][:160]})",
                                  str(info.path)) from None
        report.from_runs = sorted(from_runs)
        _write_card(tmp, {
            "description": description or f"imported from {len(inputs)} file(s)",
            "sources": [i.path.name for i in inputs],
            "events": report.events,
            "inputs": [{"source": str(i.path), "events": i.events, "runs": i.runs,
                        "collections": i.collections, "branches": i.branches,
                        "files": [p.name for p in i.written]} for i in inputs],
            "relabelled": {"events": report.relabelled, "from_runs": report.from_runs}
            if report.relabelled else None,
        })
        if old is not None:
            report.replaced = sorted(p for p in old.rglob("*") if p.is_file())
            shutil.rmtree(old)
        final = arch / run_dir_name(run)
        tmp.rename(final)
        report.folder = final
        for info in inputs:
            info.written = [final / p.name for p in info.written]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report
