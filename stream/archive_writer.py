"""Writing archived runs: columnar events -> NanoAOD-style ROOT files in ``run_<n>/``.

Used by ``hotline archive import`` (re-packing existing NanoAOD files into an
archive run) and by the sample generator. Jagged collections are written as
NanoAOD does (``nElectron`` counter + ``Electron_pt`` ...); events are split
into files of at most ``events_per_file`` and carry run / luminosityBlock /
event ids.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hotline.errors import SourceError
from hotline.stream.archive import run_dir_name


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
    import uproot

    for b in ("run", "luminosityBlock", "event"):
        if b not in arrays.fields:
            raise SourceError(f"cannot write run {run}: events lack the '{b}' branch")
    folder = Path(archive) / run_dir_name(run)
    folder.mkdir(parents=True, exist_ok=True)
    n = len(arrays)
    for k, start in enumerate(range(0, max(n, 1), events_per_file)):
        part = arrays[start : start + events_per_file]
        with uproot.recreate(folder / f"{prefix}_{k:04d}.root") as f:
            write_tree(f, tree, to_tree_dict(part))
    if card is not None:
        (folder / "run.json").write_text(json.dumps(dict(card), indent=2, sort_keys=True) + "\n")
    return folder


def relabel(arrays: ak.Array, run: int, events_per_lumi: int, first_event: int = 1) -> ak.Array:
    """Give events new ids: one run, consecutive lumisections of ``events_per_lumi`` events."""
    n = len(arrays)
    idx = np.arange(n, dtype=np.int64)
    arrays = ak.with_field(arrays, np.full(n, run, dtype=np.uint32), "run")
    lumi = (idx // events_per_lumi + 1).astype(np.uint32)
    arrays = ak.with_field(arrays, lumi, "luminosityBlock")
    return ak.with_field(arrays, (idx + first_event).astype(np.uint64), "event")
