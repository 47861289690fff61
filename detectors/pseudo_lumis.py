"""Pseudo-lumisections: occupancy maps of any size drawn from a pool of real events.

``EventHits.from_arrays(arrays, geometry)`` turns events (NanoAOD-style jagged arrays,
as read from an archived run) into a sparse per-event hit matrix of one subsystem
(rows = events, columns = cells) with the same hit model as ``detectors.occupancy``
(``object_hits``: hashed station efficiencies, so an event gives the same hits
wherever it is used), plus the events' physical weights (``models``-free: the caller
passes them) and an optional row selection.

``draw_lumis(hits, n_events, n_maps, seed, ...)`` makes ``n_maps`` maps of exactly
``n_events`` events each: events drawn without replacement within a map (uniformly, or
for weighted pools with probability proportional to the weight), or with replacement
(``replace=True``: the bootstrap of the event population, whose per-map sums have the
right variance even when ``n_events`` approaches the pool size), then the pileup and
noise hits of ``detectors.occupancy.background_mean`` drawn per map as Poisson counts
(pileup ``mu`` fixed or uniform in a range). This is how the DQM conv-AEs are
calibrated per events-per-lumisection (``training.dqm.calibrate_statistics``) and how
their false-alarm rate is measured at a run's real statistics
(``benchmarks/bench_dqm_calibration.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from hotline.detectors.geometry import Geometry
from hotline.detectors.occupancy import LumiSet, _flat_objects, background_mean, object_hits
from hotline.errors import ConfigError


@dataclass
class EventHits:
    """Per-event hard-scatter hits of one subsystem: a sparse [events, cells] matrix."""

    geometry: Geometry
    matrix: Any  #: scipy.sparse.csr_matrix [n events, n cells] of hit counts
    weights: np.ndarray | None = None  #: physical event weights (None: all equal)

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    @classmethod
    def from_arrays(cls, arrays: ak.Array, geo: Geometry, event: np.ndarray | None = None,
                    weights: np.ndarray | None = None, where: str = "events") -> EventHits:
        """Hits of every event of ``arrays`` (``event``: event numbers, for the hashed
        station efficiencies; default the ``event`` field)."""
        from scipy.sparse import csr_matrix

        n = len(arrays)
        if event is None:
            event = (np.asarray(arrays["event"], np.int64) if "event" in arrays.fields
                     else np.arange(n, dtype=np.int64))
        objs = {c: _flat_objects(arrays, c, np.asarray(event), where) for c in geo.collections}
        cell, ev = object_hits(geo, objs)
        m = csr_matrix((np.ones(cell.size, np.float64), (ev, cell)), shape=(n, geo.n_cells))
        m.sum_duplicates()
        return cls(geo, m, None if weights is None else np.asarray(weights, np.float64))

    def select(self, rows: np.ndarray) -> EventHits:
        """The pool restricted to ``rows`` (indices or a boolean mask)."""
        w = None if self.weights is None else self.weights[rows]
        return EventHits(self.geometry, self.matrix[rows], w)

    @staticmethod
    def concatenate(parts: list[EventHits]) -> EventHits:
        from scipy.sparse import vstack

        if not parts:
            raise ConfigError("no event pools to concatenate")
        ws = [p.weights for p in parts]
        w = (None if all(x is None for x in ws) else np.concatenate(
            [x if x is not None else np.ones(len(p)) for x, p in zip(ws, parts)]))
        return EventHits(parts[0].geometry, vstack([p.matrix for p in parts]).tocsr(), w)

    def kish(self) -> float:
        """Effective number of events of the pool (Kish; the event count when unweighted)."""
        if self.weights is None:
            return float(len(self))
        w = self.weights
        return float(w.sum() ** 2 / max(float((w * w).sum()), 1e-300))


def _draw(rng: np.random.Generator, n_pool: int, n: int, replace: bool,
          p: np.ndarray | None) -> np.ndarray:
    """Indices of ``n`` events: uniform or weighted, with or without replacement. Weighted
    without replacement is successive sampling (each next event with probability
    proportional to its weight among those not yet drawn), done in one pass with the
    Efraimidis-Spirakis keys ``log(u) / w`` (the ``n`` largest)."""
    if replace or p is None:
        return rng.choice(n_pool, n, replace=replace, p=p)
    with np.errstate(divide="ignore"):
        keys = np.log(rng.random(n_pool)) / p
    return np.argpartition(-keys, n - 1)[:n]


def draw_lumis(hits: EventHits, n_events: int, n_maps: int, seed: int = 0,
               replace: bool = False, pileup: float | tuple[float, float] = 40.0,
               noise_scale: float = 1.0, run: int = 1, chunk: int = 256) -> LumiSet:
    """``n_maps`` pseudo-lumisections of ``n_events`` events each (see module docstring)."""
    n_pool = len(hits)
    if n_events < 1 or n_maps < 1:
        raise ConfigError(f"pseudo-lumisections need >= 1 event and >= 1 map, got "
                          f"{n_events} events x {n_maps} maps")
    if not replace and n_events > n_pool:
        raise ConfigError(f"cannot draw {n_events:,} distinct events from a pool of "
                          f"{n_pool:,}; use a larger pool or replace=True")
    from scipy.sparse import coo_matrix

    geo = hits.geometry
    rng = np.random.default_rng([seed, run, n_events, sum(geo.name.encode())])
    p = None
    if hits.weights is not None:
        p = hits.weights / hits.weights.sum()
    counts = np.empty((n_maps, geo.n_cells), np.float64)
    mt = hits.matrix.T.tocsr()  # [cells, events]: counts = mt @ multiplicities
    for start in range(0, n_maps, chunk):
        stop = min(n_maps, start + chunk)
        rows = [_draw(rng, n_pool, n_events, replace, p) for _ in range(stop - start)]
        cols = np.repeat(np.arange(stop - start), n_events)
        k = coo_matrix((np.ones(cols.size), (np.concatenate(rows), cols)),
                       shape=(n_pool, stop - start)).tocsc()  # duplicates add up
        counts[start:stop] = (mt @ k).T.toarray()
    if isinstance(pileup, tuple):
        mu = rng.uniform(pileup[0], pileup[1], n_maps)
    else:
        mu = np.full(n_maps, float(pileup))
    ne = np.full(n_maps, n_events, np.int64)
    counts += rng.poisson(background_mean(geo, ne, mu, noise_scale))
    return LumiSet(geo, counts.reshape(n_maps, *geo.shape), ne, mu, run)
