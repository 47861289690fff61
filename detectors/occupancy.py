"""Occupancy maps per (run, lumisection, subsystem): from events, or from a generative model.

``OccupancyMap`` holds the raw hit counts of one subsystem in one lumisection and
the number of events they came from (``normalised`` = counts per event); maps of
the same key merge with ``+`` (partial maps from several batches or workers).

``accumulate(batch, geometries, model)`` turns an ``EventBatch`` into maps: each
object of the geometry's collections (muons, jets, electrons, photons) becomes
hits in the cells it crosses (muons: one hit per station, bent in phi by
charge/pT, with a per-station efficiency; calorimeter objects: one deposit in
their region); pileup/background and electronic noise are added as Poisson
counts per cell with mean ``n_events * (mu * pileup_hits_per_vertex * shape +
noise_per_channel)`` (the sum of independent uniformly placed hits *is* Poisson
per cell, so this is exact and vectorised). ``mu`` comes from
``Pileup_nTrueInt`` / ``PV_npvs`` when the batch has them, else ``HitModel.pileup``.
Random choices are reproducible and independent of how events are split into
batches: station efficiencies come from a hash of (event, object), and pileup +
noise are drawn once per (run, lumisection, subsystem) by ``add_background``.

``synthesize_lumis(geometry, n, seed, ...)`` makes good lumisections for training
and evaluation: a hard-scatter hit template (objects sampled like
``tests.conftest.make_events`` and pushed through the same hit model) plus
pileup and noise, with luminosity (events per lumisection) and pileup varying
per lumisection; counts are drawn per cell from Poisson distributions, except
that muon tracks are drawn per (wheel, phi column) and then give hits in each
station (binomial), so the hits of one muon are correlated across stations as in
real events (a sector sum fluctuates more than a Poisson sum of its cells).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from hotline.detectors.geometry import Geometry
from hotline.errors import MissingBranchError

PILEUP_BRANCHES = ("Pileup_nTrueInt", "PV_npvs")


@dataclass
class OccupancyMap:
    """Hit counts of one subsystem in one (source, run, lumisection); merge with ``+``."""

    subsystem: str
    run: int
    lumi: int
    counts: np.ndarray  #: float64 [rows, cols] raw hit counts
    n_events: int
    source: str = "hotline"
    pileup: float = 0.0  #: mean pileup of the events (0: unknown)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int, int, str]:
        return (self.source, self.run, self.lumi, self.subsystem)

    @property
    def normalised(self) -> np.ndarray:
        """Hits per event in each cell."""
        return self.counts / max(self.n_events, 1)

    def __add__(self, other: OccupancyMap) -> OccupancyMap:
        if self.key != other.key:
            raise ValueError(f"cannot merge occupancy maps {self.key} and {other.key}")
        n = self.n_events + other.n_events
        pu = (self.pileup * self.n_events + other.pileup * other.n_events) / max(n, 1)
        return OccupancyMap(self.subsystem, self.run, self.lumi, self.counts + other.counts, n,
                            self.source, pu, {**self.meta, **other.meta})

    def to_dict(self) -> dict[str, Any]:
        return {"subsystem": self.subsystem, "run": self.run, "lumi": self.lumi,
                "counts": self.counts.tolist(), "n_events": self.n_events,
                "source": self.source, "pileup": self.pileup, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OccupancyMap:
        return cls(str(d["subsystem"]), int(d["run"]), int(d["lumi"]),
                   np.asarray(d["counts"], np.float64), int(d["n_events"]),
                   str(d.get("source", "hotline")), float(d.get("pileup", 0.0)),
                   dict(d.get("meta", {})))


@dataclass(frozen=True)
class HitModel:
    """How events become hits: default pileup, noise scale and the random seed."""

    pileup: float = 40.0  #: mean pileup when the batch carries no pileup branch
    noise_scale: float = 1.0  #: multiplies every geometry's noise_per_channel
    seed: int = 0


# --------------------------------------------------------------------------- hits

def hash_uniform(keys: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic uniform numbers in [0, 1) from uint64 keys (splitmix64)."""
    z = keys.astype(np.uint64) + np.uint64((0x9E3779B97F4A7C15 * (salt + 1)) % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def object_hits(geo: Geometry, objs: dict[str, tuple[np.ndarray, ...]],
                rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Hard-scatter hits of flat objects ``{collection: (eta, phi, pt, charge, event, key)}``.

    Returns (cell, event) of every hit inside the geometry (vectorised). Random
    choices (station efficiency) come from ``hash_uniform`` of each object's key, so
    the same events give the same hits however they are split into batches (or from
    ``rng`` when given: the synthetic template).
    """
    cells, events = [], []
    stations = geo.built.stations
    for coll in geo.collections:
        if coll not in objs:
            continue
        eta, phi, pt, q, ev, key = objs[coll]
        if stations:  # a muon crosses every station, bent in phi by q / pT
            bend = np.asarray(geo.layout_params.get("bending", [0.0] * stations))
            eff = np.asarray(geo.layout_params.get("station_efficiency", [1.0] * stations))
            for s in range(stations):
                c = geo.locate(eta, phi + q * bend[s] / np.maximum(pt, 1.0),
                               np.full(eta.shape, s))
                u = rng.random(c.shape) if rng is not None else hash_uniform(key, 17 + s)
                ok = (c >= 0) & (u < eff[s])
                cells.append(c[ok])
                events.append(ev[ok])
        else:
            c = geo.locate(eta, phi)
            ok = c >= 0
            cells.append(c[ok])
            events.append(ev[ok])
    if not cells:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(cells).astype(np.int64), np.concatenate(events).astype(np.int64)


def background_mean(geo: Geometry, n_events: float | np.ndarray, pileup: float | np.ndarray,
                    noise_scale: float = 1.0) -> np.ndarray:
    """Expected pileup + noise hits per cell, [..., n_cells] for scalar or array inputs."""
    n = np.asarray(n_events, np.float64)[..., None]
    mu = np.asarray(pileup, np.float64)[..., None]
    per_vertex = float(geo.hits.get("pileup_hits_per_vertex", 0.0))
    noise = float(geo.hits.get("noise_per_channel", 0.0)) * noise_scale
    return n * (mu * per_vertex * geo.built.pileup_shape + noise)


def _flat_objects(arrays: ak.Array, coll: str, event: np.ndarray,
                  where: str) -> tuple[np.ndarray, ...]:
    need = [f"{coll}_{f}" for f in ("eta", "phi", "pt")]
    missing = [b for b in need if b not in arrays.fields]
    if missing:
        raise MissingBranchError(
            f"{where}: branch '{missing[0]}' is missing; occupancy maps need it for "
            f"the {coll} hits"
        )
    counts = ak.to_numpy(ak.num(arrays[need[0]], axis=1))
    ev = np.repeat(np.arange(len(arrays)), counts)
    eta, phi, pt = (ak.to_numpy(ak.flatten(arrays[b])).astype(np.float64) for b in need)
    # a key per object: (event number, index in the event, collection)
    first = np.cumsum(counts) - counts
    idx = np.arange(eta.size) - np.repeat(first, counts)
    key = ((event[ev].astype(np.uint64) << np.uint64(12)) + (idx.astype(np.uint64) << np.uint64(4))
           + np.uint64(sum(coll.encode()) % 16))
    if f"{coll}_charge" in arrays.fields:
        q = ak.to_numpy(ak.flatten(arrays[f"{coll}_charge"])).astype(np.float64)
    else:
        q = np.where(hash_uniform(key, 5) < 0.5, -1.0, 1.0)
    return eta, phi, pt, q, ev, key


def add_background(m: OccupancyMap, geo: Geometry, model: HitModel = HitModel()
                   ) -> OccupancyMap:
    """The map plus pileup and noise hits for its events and pileup (seeded by run, LS)."""
    rng = np.random.default_rng([model.seed, m.run, m.lumi, sum(geo.name.encode())])
    bkg = background_mean(geo, m.n_events, m.pileup, model.noise_scale).reshape(-1)
    counts = m.counts + rng.poisson(bkg).reshape(geo.shape)
    return OccupancyMap(m.subsystem, m.run, m.lumi, counts, m.n_events, m.source, m.pileup,
                        {**m.meta, "background": True})


def accumulate(batch: Any, geometries: list[Geometry] | tuple[Geometry, ...],
               model: HitModel = HitModel(), background: bool = True
               ) -> dict[tuple[str, int, int, str], OccupancyMap]:
    """Occupancy maps of an ``EventBatch`` for each geometry, one per (run, lumisection).

    ``background=False`` gives the object hits only: merge the partial maps of a
    lumisection split over batches, then ``add_background`` once (what
    ``stream.dqm_pipeline.DQMMonitor`` does), so the map does not depend on batching.
    """
    arrays = batch.arrays
    n = len(batch)
    out: dict[tuple[str, int, int, str], OccupancyMap] = {}
    if n == 0:
        return out
    run, lumi, event = batch.run, batch.lumi, batch.event
    key = (run << 32) | lumi
    uniq, first, group = np.unique(key, return_index=True, return_inverse=True)
    n_per = np.bincount(group, minlength=uniq.size)
    pu_ev = None
    for b in PILEUP_BRANCHES:
        if b in arrays.fields:
            pu_ev = ak.to_numpy(arrays[b]).astype(np.float64)
            break
    pu_group = (np.bincount(group, pu_ev, minlength=uniq.size) / n_per
                if pu_ev is not None else np.full(uniq.size, model.pileup))
    for geo in geometries:
        objs = {c: _flat_objects(arrays, c, event, batch.origin) for c in geo.collections}
        cell, ev = object_hits(geo, objs)
        counts = np.bincount(group[ev] * geo.n_cells + cell,
                             minlength=uniq.size * geo.n_cells).reshape(uniq.size, geo.n_cells)
        for g, k in enumerate(uniq):
            m = OccupancyMap(geo.name, int(k >> 32), int(k & 0xFFFFFFFF),
                             counts[g].reshape(geo.shape).astype(np.float64), int(n_per[g]),
                             batch.source, float(pu_group[g]))
            if background:
                m = add_background(m, geo, model)
            out[m.key] = m
    return out


# --------------------------------------------------------------------------- synthetic

#: object populations like tests.conftest.make_events: (mean multiplicity, pT scale, |eta| max)
OBJECT_POPULATIONS = {"Electron": (0.6, 25.0, 2.5), "Muon": (0.8, 25.0, 2.4),
                      "Jet": (3.0, 40.0, 4.7), "Photon": (0.3, 20.0, 2.5)}


def sample_objects(n_events: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, ...]]:
    """Flat object kinematics of ``n_events`` events, drawn like ``make_events``."""
    out = {}
    for ci, (coll, (m, s, e)) in enumerate(OBJECT_POPULATIONS.items()):
        counts = rng.poisson(m, n_events)
        tot = int(counts.sum())
        out[coll] = (rng.uniform(-e, e, tot), rng.uniform(-np.pi, np.pi, tot),
                     rng.exponential(s, tot) + 5, rng.choice([-1.0, 1.0], tot),
                     np.repeat(np.arange(n_events), counts),
                     np.arange(tot, dtype=np.uint64) + np.uint64(ci << 40))
    return out


_TEMPLATES: dict[str, np.ndarray] = {}


def _template_cached(geo: Geometry) -> np.ndarray:
    key = repr(geo.to_dict())
    if key not in _TEMPLATES:
        _TEMPLATES[key] = hard_scatter_template(geo)
    return _TEMPLATES[key]


def hard_scatter_template(geo: Geometry, n_events: int = 400_000, seed: int = 12345) -> np.ndarray:
    """Expected hard-scatter hits per event per cell (Monte Carlo over sampled events)."""
    rng = np.random.default_rng(seed)
    objs = sample_objects(n_events, rng)
    cell, _ = object_hits(geo, objs, rng)
    return np.bincount(cell, minlength=geo.n_cells) / n_events


@dataclass
class LumiSet:
    """Many lumisections of one subsystem: counts [n, rows, cols], events and pileup per LS."""

    geometry: Geometry
    counts: np.ndarray
    n_events: np.ndarray
    pileup: np.ndarray
    run: int = 1
    first_lumi: int = 1

    def __len__(self) -> int:
        return len(self.counts)

    def maps(self, source: str = "hotline") -> list[OccupancyMap]:
        return [OccupancyMap(self.geometry.name, self.run, self.first_lumi + i,
                             self.counts[i].astype(np.float64), int(self.n_events[i]), source,
                             float(self.pileup[i])) for i in range(len(self))]

    def subset(self, idx: np.ndarray | slice) -> LumiSet:
        return LumiSet(self.geometry, self.counts[idx], self.n_events[idx], self.pileup[idx],
                       self.run, self.first_lumi)


def synthesize_lumis(
    geo: Geometry,
    n: int,
    seed: int = 0,
    events_per_lumi: int = 20_000,
    lumi_spread: float = 0.3,
    pileup: tuple[float, float] = (20.0, 60.0),
    noise_scale: float = 1.0,
    run: int = 1,
) -> LumiSet:
    """``n`` good lumisections: events ~ U(1 +- lumi_spread) * events_per_lumi, mu ~ U(pileup)."""
    rng = np.random.default_rng([seed, run, sum(geo.name.encode())])
    tmpl = _template_cached(geo)
    n_ev = np.round(events_per_lumi * rng.uniform(1 - lumi_spread, 1 + lumi_spread, n))
    mu = rng.uniform(pileup[0], pileup[1], n)
    bkg = rng.poisson(background_mean(geo, n_ev, mu, noise_scale))
    st = geo.built.stations
    if st and geo.built.phi_axis == 1 and geo.shape[0] % st == 0:
        # a muon crosses every station of its wheel: draw tracks per (wheel, column), then
        # hits per station ~ Binomial(tracks, p_station) -> the per-cell means are the
        # template's, and hits of one track are correlated across stations (as in events)
        t = tmpl.reshape(geo.shape[0] // st, st, geo.shape[1])
        lam_t = np.maximum(t.max(axis=1) / 0.97, 1e-12)
        p = np.clip(t / lam_t[:, None, :], 0.0, 1.0)
        tracks = rng.poisson(n_ev[:, None, None] * lam_t[None])
        hard = rng.binomial(tracks[:, :, None, :], p[None]).reshape(n, -1)
    else:  # one deposit per object: independent Poisson counts per cell
        hard = rng.poisson(n_ev[:, None] * tmpl[None, :])
    counts = (hard + bkg).astype(np.float32).reshape(n, *geo.shape)
    return LumiSet(geo, counts, n_ev.astype(np.int64), mu, run)
