"""ADC2021-format HDF5 input: ``Particles`` (N, 19, 4) -> NanoAOD-like ``EventBatch``.

The 2021 LHC anomaly-detection challenge published its samples as HDF5 files with a
``Particles`` dataset of shape (N, 19, 4): slot 0 MET, 1-4 electrons, 5-8 muons,
9-18 jets, each (pT, eta, phi, class) with class 0 = absent, 1 = MET, 2 = electron,
3 = muon, 4 = jet. ``H5Source`` reads it in chunks and rebuilds jagged collections
(absent slots dropped), with synthetic run / lumisection / event ids, so the same
pipeline and feature spec apply unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import awkward as ak
import numpy as np

from hotline.errors import SourceError
from hotline.stream.batch import EventBatch

#: (collection, first slot, number of slots, class code)
ADC_LAYOUT = (("Electron", 1, 4, 2), ("Muon", 5, 4, 3), ("Jet", 9, 10, 4))


def particles_to_arrays(
    particles: np.ndarray, run: int, first_event: int, events_per_lumi: int
) -> ak.Array:
    """Convert one (n, 19, 4) block to NanoAOD-like fields (vectorised)."""
    if particles.ndim != 3 or particles.shape[1:] != (19, 4):
        raise SourceError(f"'Particles' must have shape (N, 19, 4), got {particles.shape}")
    n = particles.shape[0]
    ev = np.arange(first_event, first_event + n, dtype=np.int64)
    fields: dict[str, object] = {
        "run": np.full(n, run, np.uint32),
        "luminosityBlock": ((ev - 1) // events_per_lumi + 1).astype(np.uint32),
        "event": ev.astype(np.uint64),
        "MET_pt": particles[:, 0, 0].astype(np.float32),
        "MET_phi": particles[:, 0, 2].astype(np.float32),
    }
    for name, first, count, code in ADC_LAYOUT:
        block = particles[:, first : first + count, :]
        present = (block[:, :, 3] == code) & (block[:, :, 0] > 0)
        counts = present.sum(axis=1)
        for k, f in enumerate(("pt", "eta", "phi")):
            fields[f"{name}_{f}"] = ak.unflatten(block[:, :, k][present].astype(np.float32), counts)
    return ak.Array(fields)


@dataclass
class H5Source:
    """Iterate ``EventBatch`` chunks over ADC2021 HDF5 files; bad files reported in ``errors``."""

    files: Sequence[str | Path]
    run: int = 1
    events_per_lumi: int = 10_000
    step_size: int = 100_000
    source: str = "hotline"
    errors: list[SourceError] = field(default_factory=list)

    def __iter__(self) -> Iterator[EventBatch]:
        import h5py

        first = 1
        for f in self.files:
            path = Path(f)
            try:
                fh = h5py.File(path, "r")
            except (OSError, ValueError) as exc:
                reason = "file does not exist" if not path.exists() else f"not HDF5 ({exc})"
                self.errors.append(SourceError(f"skipping {path}: {reason}", str(path)))
                continue
            with fh:
                if "Particles" not in fh:
                    self.errors.append(SourceError(
                        f"skipping {path}: no 'Particles' dataset (has: {', '.join(fh.keys())})",
                        str(path)))
                    continue
                ds = fh["Particles"]
                try:
                    for start in range(0, ds.shape[0], self.step_size):
                        block = ds[start : start + self.step_size]
                        arrays = particles_to_arrays(block, self.run, first, self.events_per_lumi)
                        first += len(block)
                        yield EventBatch(arrays, source=self.source, origin=str(path))
                except SourceError as exc:
                    self.errors.append(SourceError(f"skipping {path}: {exc}", str(path)))
