"""Small real ROOT files for tests: NanoAOD-style trees written with uproot, plus helpers to
spoil one branch of a chunk of events (NaN, negative pT, out-of-range angles, a renamed
schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np


def write_events(path: Path, arrays: ak.Array, tree: str = "Events",
                 basket_events: int = 20_000) -> Path:
    """``arrays`` as a NanoAOD-style tree (``nMuon`` counters) in a new ROOT file ``path``."""
    import uproot

    from hotline.stream.archive_writer import to_tree_dict, write_tree

    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path) as f:
        write_tree(f, tree, to_tree_dict(arrays), basket_events=basket_events)
    return path


def damage_basket(path: Path, branch: str, basket: int, tree: str = "Events") -> None:
    """Overwrite the compressed payload of one basket of ``branch`` in place: reading the
    events of that basket fails (a corrupt file), everything before it reads fine."""
    import uproot

    with uproot.open(path) as f:
        b = f[tree][branch]
        seek = int(b.member("fBasketSeek")[basket])
        size = int(b.member("fBasketBytes")[basket])
    with path.open("r+b") as fh:
        fh.seek(seek + 90)  # past the basket key, into the zlib stream
        fh.write(b"\xff" * (size - 100))


def set_values(arrays: ak.Array, branch: str, events: list[int], value: float,
               which: int = 0) -> ak.Array:
    """``branch`` with its ``which``-th object (or the scalar) of ``events`` set to ``value``;
    events without such an object get one (pT 50, eta 0, phi 0 in the sibling branches)."""
    col = arrays[branch]
    if col.ndim == 1:
        vals = ak.to_numpy(col).copy()
        vals[events] = value
        return ak.with_field(arrays, vals, branch)
    prefix = branch.rsplit("_", 1)[0]
    cols: dict[str, Any] = {b: ak.to_list(arrays[b]) for b in arrays.fields
                            if b.startswith(f"{prefix}_")}
    for i in events:
        while len(cols[branch][i]) <= which:
            for b, lists in cols.items():
                lists[i].append(50.0 if b.endswith("_pt") else 0.0)
        cols[branch][i][which] = value
    for b, lists in cols.items():
        arrays = ak.with_field(arrays, ak.values_astype(ak.Array(lists), np.float32), b)
    return arrays


def rename(arrays: ak.Array, prefixes: dict[str, str]) -> ak.Array:
    """The same events with collection prefixes renamed (``{"Muon": "ScoutingMuonNoVtx"}``)."""
    out = {}
    for b in arrays.fields:
        head, _, tail = b.partition("_")
        out[f"{prefixes[head]}_{tail}" if tail and head in prefixes else b] = arrays[b]
    return ak.zip(out, depth_limit=1)


def write_weighted_run(src_archive: Path, dst_archive: Path, run: int = 1,
                       max_events: int | None = None) -> Path:
    """A weighted copy of ``run`` of ``src_archive`` (the bundled data-like demo run) in
    ``dst_archive``: the QCD events (``sample`` 2) get ``genWeight = min(1, (20 GeV /
    leading-jet pT)^3)``, the shape of the pTHat bias of the weighted training runs, the rest
    keep 1. For tests of the weight plumbing (loading, weighted calibration), which need a
    weighted run now that the bundled one is data-like; the weights describe no physics."""
    import json

    import uproot

    from hotline.stream.archive import find_run, run_dir_name

    info = find_run(src_archive, run)
    folder = Path(dst_archive) / run_dir_name(run)
    folder.mkdir(parents=True, exist_ok=True)
    left = max_events
    for k, f in enumerate(info.files):
        with uproot.open(f) as fh:
            arrays = fh["Events"].arrays(entry_stop=left)
        lead = ak.to_numpy(ak.fill_none(ak.max(arrays.Jet_pt, axis=1), 20.0))
        bias = np.minimum(1.0, (20.0 / np.maximum(lead, 1.0)) ** 3)
        w = np.where(ak.to_numpy(arrays.sample) == 2, bias, 1.0).astype(np.float32)
        arrays = ak.with_field(arrays, w, "genWeight")
        write_events(folder / f"nano_{k:04d}.root", arrays)
        if left is not None:
            left -= len(arrays)
            if left <= 0:
                break
    card = json.loads((info.path / "run.json").read_text())
    card["sample"] = "weighted"
    card["caveats"] = "test copy: QCD genWeight = min(1, (20/leading jet pT)^3), not physics"
    (folder / "run.json").write_text(json.dumps(card, indent=2))
    return folder
