"""Per-lumisection histograms of event quantities: the book, per-event bins, the counts.

Owns *what* is histogrammed per lumisection and *how an event enters*:

- ``HistBook``: the histograms' axes. Per object type (electrons, muons, jets, photons:
  every object of the collection, not only the feature spec's leading ones) the
  multiplicity and each object's (pT, eta, phi) bins; per event MET, MET phi, HT (jets
  above ``HT_MIN_PT`` within ``HT_MAX_ETA``) and, per anomaly-score rule, each object
  type's fraction of the score. Axes follow boost-histogram's convention (code 0 the
  underflow, 1..n the bins, n + 1 the overflow). Detector regions are a coarse eta x phi
  grid over each type's fine eta / phi bins (``ObjectAxes.region``).
- ``EventBins``: per event its bin codes (uint8; ``NO_CODE`` where the event was not
  filled: quarantined, or the collection absent from its batch), filled vectorised from
  a batch (``fill_event_bins``). Keeping codes per event, not counts, is what keeps the
  histograms exact under replays and restarts: the summary's ``EventTally`` carries them,
  a union of tallies keeps each event once, and the histograms are recomputed from the
  distinct events (``EventBins.counts``). Cost: ~1 byte per scalar and 3 bytes per
  object per event.
- ``LumiHists``: the counts of one lumisection (``+`` merges; ``to_wire`` is a compact,
  self-describing JSON form; ``to_boost`` gives a ``boost_histogram.Histogram`` with the
  book's axes, for plots and users' tools).

Histogram names: ``<type>/n``, ``<type>/pt``, ``<type>/eta``, ``<type>/phi``,
``<type>/etaphi`` (fine eta x phi), ``<type>/pt_region`` (region x pT), ``met/pt``,
``met/phi``, ``ht``, ``score/<rule>/<type>`` (the type's fraction of the AE score).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hotline.detectors.columns import flat, scalar
from hotline.errors import StreamError
from hotline.wire import array_of_b64, b64_of

__all__ = ["DEFAULT_BOOK", "NO_CODE", "Axis", "EventBins", "HistBook", "HistLayout",
           "LumiHists", "ObjectAxes", "book_for", "fill_event_bins"]

#: code of an event (or a count) that was not filled
NO_CODE = 255
#: objects kept per event and type (more are not binned; the multiplicity overflows anyway)
MAX_OBJECTS = 254
HT_MIN_PT, HT_MAX_ETA = 30.0, 2.5
MET_PREFIXES = ("MET", "PuppiMET", "PFMET")


@functools.lru_cache(maxsize=256)
def _uniform(edges: tuple[float, ...], log: bool) -> tuple[np.ndarray, float, float] | None:
    """(edges, lower edge, 1 / bin width) of an axis whose bins are equal in x (in log x for
    ``log``), else None."""
    e = np.asarray(edges, dtype=np.float64)
    if e.size < 2 or not np.all(np.diff(e) > 0) or (log and e[0] <= 0):
        return None
    t = np.log(e) if log else e
    w = np.diff(t)
    if not np.allclose(w, w.mean(), rtol=1e-9, atol=0):
        return None
    return e, float(t[0]), float(1.0 / w.mean())


@dataclass(frozen=True)
class Axis:
    """Bin edges (increasing); ``index`` gives boost-histogram codes (0 under, n + 1 over)."""

    name: str
    edges: tuple[float, ...]
    log: bool = False

    @property
    def n(self) -> int:
        return len(self.edges) - 1

    @property
    def size(self) -> int:
        """Codes including the under- and overflow."""
        return self.n + 2

    def index(self, x: Any) -> np.ndarray:
        """Codes of ``x`` (NaN: overflow), uint8: ``searchsorted(edges, x, "right")``.

        Axes with equal bins (in x, or in log x for ``log`` axes) compute the code
        arithmetically; values within a relative 1e-6 of a bin edge (and NaN, inf, flows)
        take the binary search, so the codes are exactly the binary search's."""
        v = np.asarray(x, dtype=np.float64)
        uniform = _uniform(self.edges, self.log)
        if uniform is None or v.size < 256:
            return np.searchsorted(np.asarray(self.edges), v, side="right").astype(np.uint8)
        edges, lo, inv = uniform
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            q = np.log(v) if self.log else v.copy()
            q -= lo
            q *= inv
            f = np.floor(q)
            r = q - f
            ok = (q >= 0) & (q < len(edges) - 1) & (r > 1e-6) & (r < 1 - 1e-6)
        c = np.where(ok, f + 1, 0).astype(np.uint8)
        rest = np.flatnonzero(~ok)
        if rest.size:
            c[rest] = np.searchsorted(edges, v[rest], side="right")
        return c

    def bin_label(self, code: int) -> str:
        if code <= 0:
            return f"< {self.edges[0]:g}"
        if code > self.n:
            return f">= {self.edges[-1]:g}"
        return f"[{self.edges[code - 1]:.3g}, {self.edges[code]:.3g})"

    def boost(self) -> Any:
        import boost_histogram as bh

        return bh.axis.Variable(list(self.edges), metadata=self.name)

    @classmethod
    def regular(cls, name: str, n: int, lo: float, hi: float) -> Axis:
        return cls(name, tuple(float(x) for x in np.linspace(lo, hi, n + 1)))

    @classmethod
    def geometric(cls, name: str, n: int, lo: float, hi: float) -> Axis:
        return cls(name, tuple(float(x) for x in np.geomspace(lo, hi, n + 1)), log=True)

    @classmethod
    def integer(cls, name: str, n: int) -> Axis:
        """Counts 0..n - 1 (code k + 1 for count k; n and more overflow)."""
        return cls(name, tuple(float(x) for x in np.arange(n + 1) - 0.5))


@dataclass(frozen=True)
class ObjectAxes:
    """Axes of one object type and its coarse region grid (``eta_groups`` fine eta bins x
    ``phi_groups`` fine phi bins per region)."""

    type: str  #: object type label (electrons, muons, jets, photons)
    collection: str
    fallbacks: tuple[str, ...]
    n: Axis
    pt: Axis
    eta: Axis
    phi: Axis
    eta_groups: int
    phi_groups: int

    @property
    def bands(self) -> int:
        return self.eta.n // self.eta_groups

    @property
    def sectors(self) -> int:
        return self.phi.n // self.phi_groups

    @property
    def n_regions(self) -> int:
        return self.bands * self.sectors

    def region(self, eta_code: np.ndarray, phi_code: np.ndarray) -> np.ndarray:
        """Region of each object's (eta, phi) codes (flows join the edge regions)."""
        band = np.clip((eta_code.astype(np.int64) - 1) // self.eta_groups, 0, self.bands - 1)
        sector = np.clip((phi_code.astype(np.int64) - 1) // self.phi_groups, 0,
                         self.sectors - 1)
        return band * self.sectors + sector

    def region_label(self, r: int) -> str:
        band, sector = divmod(int(r), self.sectors)
        e = self.eta.edges
        p = self.phi.edges
        e0, e1 = e[band * self.eta_groups], e[(band + 1) * self.eta_groups]
        p0, p1 = p[sector * self.phi_groups], p[(sector + 1) * self.phi_groups]
        return f"eta [{e0:.2g}, {e1:.2g}], phi [{p0:.2g}, {p1:.2g}]"

    def prefix(self, fields: set[str]) -> str | None:
        for p in (self.collection, *self.fallbacks):
            if all(f"{p}_{v}" in fields for v in ("pt", "eta", "phi")):
                return p
        return None


def _object_axes(type_: str, collection: str, eta_max: float, max_n: int,
                 fallbacks: tuple[str, ...] = ()) -> ObjectAxes:
    return ObjectAxes(type_, collection, fallbacks, Axis.integer("multiplicity", max_n + 1),
                      Axis.geometric("pt", 32, 3.0, 1000.0),
                      Axis.regular("eta", 20, -eta_max, eta_max),
                      Axis.regular("phi", 32, -np.pi, np.pi), eta_groups=5, phi_groups=8)


@dataclass(frozen=True)
class HistLayout:
    """How a histogram's flat bins are laid out: rows of ``row_len`` bins (bins merge only
    within a row), the region of each bin (-1: none) with region labels, the object type
    (``""`` for event quantities) and the variable, for findings in plain words."""

    name: str
    size: int
    row_len: int
    type: str
    variable: str
    region_of_bin: np.ndarray | None = None
    region_labels: tuple[str, ...] = ()
    bin_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class HistBook:
    """The histograms of every lumisection (see module docstring)."""

    name: str
    objects: tuple[ObjectAxes, ...]
    met: Axis
    met_phi: Axis
    ht: Axis
    fraction: Axis

    @functools.cached_property
    def id(self) -> str:
        """``<name>-<8 hex>``: a digest of the axes, so different books never merge
        (computed once per book)."""
        return f"{self.name}-{_digest(self)}"

    def object_axes(self, type_: str) -> ObjectAxes | None:
        for o in self.objects:
            if o.type == type_:
                return o
        return None

    def scalar_axis(self, name: str) -> Axis:
        if name == "met/pt":
            return self.met
        if name == "met/phi":
            return self.met_phi
        if name == "ht":
            return self.ht
        if name.startswith("score/"):
            return self.fraction
        raise StreamError(f"histogram book {self.id} has no event quantity '{name}'")

    def branches(self) -> list[str]:
        """Branches the book reads when a file has them (every prefix of every type)."""
        out = []
        for o in self.objects:
            for p in (o.collection, *o.fallbacks):
                out += [f"{p}_{v}" for v in ("pt", "eta", "phi")]
        for p in MET_PREFIXES:
            out += [f"{p}_pt", f"{p}_phi"]
        return out

    def layout(self, name: str, size: int) -> HistLayout:
        """The layout of histogram ``name`` (of ``size`` bins) of this book."""
        t, _, var = name.partition("/")
        o = self.object_axes(t)
        if o is None:
            if name.startswith("score/"):
                _, rule, typ = name.split("/", 2)
                return HistLayout(name, size, size, typ, f"share of the {rule} score")
            typ, variable = {"met/pt": ("MET", ""), "met/phi": ("MET", "phi"),
                             "ht": ("", "HT")}.get(name, ("", name))
            return HistLayout(name, size, size, typ, variable)
        if var == "pt_region":
            row = o.pt.size
            region = np.repeat(np.arange(o.n_regions), row)[:size]
            return HistLayout(name, size, row, o.type, "pT by region", region,
                              tuple(o.region_label(r) for r in range(o.n_regions)))
        if var == "etaphi":
            row = o.phi.size
            eta_c = np.repeat(np.arange(o.eta.size), row)[:size]
            phi_c = np.tile(np.arange(row), o.eta.size)[:size]
            return HistLayout(name, size, row, o.type, "eta-phi occupancy",
                              o.region(eta_c, phi_c),
                              tuple(o.region_label(r) for r in range(o.n_regions)))
        if var == "eta":
            return HistLayout(name, size, size, o.type, "eta")
        if var == "phi":
            return HistLayout(name, size, size, o.type, "phi")
        if var == "pt":
            return HistLayout(name, size, size, o.type, "pT")
        return HistLayout(name, size, size, o.type, "multiplicity")

    def boost_axes(self, name: str) -> list[Any]:
        """The boost-histogram axes of histogram ``name``."""
        import boost_histogram as bh

        t, _, var = name.partition("/")
        o = self.object_axes(t)
        if o is None:
            return [self.scalar_axis(name).boost()]
        if var == "pt_region":
            return [bh.axis.Integer(0, o.n_regions, underflow=False, overflow=False,
                                    metadata="region"), o.pt.boost()]
        if var == "etaphi":
            return [o.eta.boost(), o.phi.boost()]
        return [getattr(o, var).boost()]


def _digest(book: HistBook) -> str:
    def enc(x: Any) -> Any:
        if isinstance(x, (ObjectAxes, Axis, HistBook)):
            return {k: enc(getattr(x, k)) for k in x.__dataclass_fields__ if k != "name"
                    or isinstance(x, Axis)}
        if isinstance(x, tuple):
            return [enc(v) for v in x]
        return x

    text = json.dumps(enc(book), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


DEFAULT_BOOK = HistBook(
    "lsh1",
    (_object_axes("electrons", "Electron", 2.5, 7),
     _object_axes("muons", "Muon", 2.4, 7),
     _object_axes("jets", "Jet", 4.7, 15),
     _object_axes("photons", "Photon", 2.5, 7)),
    met=Axis.geometric("met", 32, 1.0, 1000.0),
    met_phi=Axis.regular("met_phi", 32, -np.pi, np.pi),
    ht=Axis.geometric("ht", 32, 10.0, 5000.0),
    fraction=Axis.regular("fraction", 20, 0.0, 1.0),
)

_BOOKS: dict[str, HistBook] = {DEFAULT_BOOK.id: DEFAULT_BOOK}


def book_for(book_id: str) -> HistBook:
    """The book of id ``book_id`` (``StreamError`` naming it if unknown)."""
    try:
        return _BOOKS[book_id]
    except KeyError:
        raise StreamError(f"histogram book {book_id!r} is unknown (this Hotline knows "
                          f"{', '.join(sorted(_BOOKS))})") from None


# ------------------------------------------------------------------ per-event bins


def _unb64(text: Any, n: int, what: str, width: int = 1) -> np.ndarray:
    a = array_of_b64(text, np.uint8, n * width, f"event histogram bins {what}", per="bytes")
    return a.reshape(n, width) if width > 1 else a


def _valid_counts(counts: np.ndarray) -> np.ndarray:
    return np.where(counts == NO_CODE, 0, counts).astype(np.int64)


@dataclass(frozen=True, eq=False)
class EventBins:
    """Per event of a tally (same order): bin codes (see module docstring).

    ``scalars[name]``: uint8 code per event; ``counts[type]``: objects of the type per
    event (``NO_CODE``: not filled); ``objects[type]``: uint8 [objects, 3] (pT, eta, phi
    codes) of the events' objects, event after event.
    """

    book: HistBook
    n: int
    scalars: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    objects: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.n

    @classmethod
    def empty(cls, book: HistBook, n: int) -> EventBins:
        """``n`` events that were not filled (an older writer's, or no book)."""
        return cls(book, n)

    def with_scalars(self, scalars: Mapping[str, np.ndarray]) -> EventBins:
        return EventBins(self.book, self.n, {**self.scalars, **scalars}, self.counts,
                         self.objects)

    @functools.cached_property
    def _object_starts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per type: (objects per event, position of each event's first object); computed
        once, as a batch is taken apart lumisection by lumisection."""
        out = {}
        for t, c in self.counts.items():
            cv = _valid_counts(c)
            out[t] = cv, np.cumsum(cv) - cv
        return out

    def take(self, idx: Any) -> EventBins:
        """The bins of the events at positions ``idx`` (any order)."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        counts, objects = {}, {}
        for t, c in self.counts.items():
            cv, starts = self._object_starts[t]
            sel = cv[idx]
            out_starts = np.cumsum(sel) - sel
            pos = np.arange(int(sel.sum()), dtype=np.int64) + np.repeat(starts[idx] - out_starts,
                                                                        sel)
            counts[t] = c[idx]
            objects[t] = self.objects[t][pos]
        return EventBins(self.book, int(idx.size), {k: v[idx] for k, v in self.scalars.items()},
                         counts, objects)

    def concat(self, other: EventBins) -> EventBins:
        """These events then ``other``'s (a quantity one side lacks is not filled there)."""
        if other.book.id != self.book.id:
            other = EventBins.empty(self.book, other.n)
        n = self.n + other.n

        def cat(a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                na: int, nb: int) -> dict[str, np.ndarray]:
            return {k: np.concatenate([a.get(k, np.full(na, NO_CODE, np.uint8)),
                                       b.get(k, np.full(nb, NO_CODE, np.uint8))])
                    for k in dict.fromkeys([*a, *b])}

        none = np.zeros((0, 3), np.uint8)
        objects = {t: np.concatenate([self.objects.get(t, none), other.objects.get(t, none)])
                   for t in dict.fromkeys([*self.counts, *other.counts])}
        return EventBins(self.book, n, cat(self.scalars, other.scalars, self.n, other.n),
                         cat(self.counts, other.counts, self.n, other.n), objects)

    def hists(self) -> LumiHists:
        """The histograms of these events (``NO_CODE`` entries left out)."""
        out: dict[str, np.ndarray] = {}
        for name, codes in self.scalars.items():
            ax = self.book.scalar_axis(name)
            out[name] = np.bincount(codes[codes != NO_CODE], minlength=ax.size)[: ax.size]
        for t, c in self.counts.items():
            o = self.book.object_axes(t)
            if o is None:
                continue
            filled = c != NO_CODE
            if not filled.any():
                continue
            obj = self.objects[t]
            pt, eta, phi = obj[:, 0].astype(np.int64), obj[:, 1].astype(np.int64), \
                obj[:, 2].astype(np.int64)
            out[f"{t}/n"] = np.bincount(o.n.index(c[filled]), minlength=o.n.size)
            out[f"{t}/pt"] = np.bincount(pt, minlength=o.pt.size)
            out[f"{t}/eta"] = np.bincount(eta, minlength=o.eta.size)
            out[f"{t}/phi"] = np.bincount(phi, minlength=o.phi.size)
            out[f"{t}/etaphi"] = np.bincount(eta * o.phi.size + phi,
                                             minlength=o.eta.size * o.phi.size)
            out[f"{t}/pt_region"] = np.bincount(o.region(eta, phi) * o.pt.size + pt,
                                                minlength=o.n_regions * o.pt.size)
        return LumiHists(self.book.id, {k: v.astype(np.int64) for k, v in out.items()})

    def to_wire(self) -> dict[str, Any]:
        """JSON-able: base64 of the uint8 codes (objects as (pT, eta, phi) byte triples)."""
        return {"book": self.book.id, "n": self.n,
                "scalars": {k: b64_of(v) for k, v in self.scalars.items()},
                "counts": {k: b64_of(v) for k, v in self.counts.items()},
                "objects": {k: b64_of(v) for k, v in self.objects.items()}}

    @classmethod
    def from_wire(cls, d: Any, n: int) -> EventBins:
        """Inverse of ``to_wire`` for ``n`` events; ``StreamError`` naming what is wrong."""
        if not isinstance(d, dict):
            raise StreamError("event histogram bins are not a JSON object")
        book = book_for(str(d.get("book")))
        if d.get("n") != n:
            raise StreamError(f"event histogram bins are for {d.get('n')!r} events, "
                              f"the tally has {n}")
        scalars, counts, objects = (d.get(k, {}) for k in ("scalars", "counts", "objects"))
        if not all(isinstance(x, dict) for x in (scalars, counts, objects)):
            raise StreamError("event histogram bins scalars / counts / objects are not "
                              "JSON objects")
        out_s = {}
        for k, text in scalars.items():
            a = _unb64(text, n, f"of {k!r}").copy()
            size = book.scalar_axis(str(k)).size
            if np.any((a >= size) & (a != NO_CODE)):
                raise StreamError(f"event histogram bins of {k!r} exceed its {size} bins")
            out_s[str(k)] = a
        out_c, out_o = {}, {}
        for t, text in counts.items():
            o = book.object_axes(str(t))
            if o is None:
                raise StreamError(f"event histogram bins name an unknown object type {t!r}")
            c = _unb64(text, n, f"counts of {t!r}").copy()
            if np.any((c > MAX_OBJECTS) & (c != NO_CODE)):
                raise StreamError(f"event histogram bins counts of {t!r} exceed {MAX_OBJECTS}")
            m = int(_valid_counts(c).sum())
            obj = _unb64(objects.get(t), m, f"objects of {t!r}", 3).copy()
            limits = np.asarray([o.pt.size, o.eta.size, o.phi.size], np.uint8)
            if np.any(obj >= limits):
                raise StreamError(f"event histogram bins objects of {t!r} exceed their axes")
            out_c[str(t)], out_o[str(t)] = c, obj
        return cls(book, n, out_s, out_c, out_o)


def _prefix_scalar(fields: set[str]) -> str | None:
    for p in MET_PREFIXES:
        if f"{p}_pt" in fields and f"{p}_phi" in fields:
            return p
    return None


def _flat(arrays: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    values, counts = flat(arrays, name)
    return np.asarray(values, dtype=np.float64), counts


def fill_event_bins(arrays: Any, book: HistBook, bad: np.ndarray | None = None) -> EventBins:
    """The bin codes of every event of ``arrays`` (an awkward record array of NanoAOD
    branches), vectorised; events flagged ``bad`` (quarantined) and collections the batch
    lacks are not filled (``NO_CODE``)."""
    fields = set(arrays.fields)
    n = len(arrays)
    skip = np.zeros(n, bool) if bad is None else np.asarray(bad, bool)
    scalars: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    objects: dict[str, np.ndarray] = {}
    met = _prefix_scalar(fields)
    if met is not None:
        pt = np.asarray(scalar(arrays, f"{met}_pt"), np.float64)
        phi = np.clip(np.asarray(scalar(arrays, f"{met}_phi"), np.float64), -np.pi,
                      np.nextafter(np.pi, 0))
        scalars["met/pt"] = np.where(skip, NO_CODE, book.met.index(pt)).astype(np.uint8)
        scalars["met/phi"] = np.where(skip, NO_CODE, book.met_phi.index(phi)).astype(np.uint8)
    for o in book.objects:
        prefix = o.prefix(fields)
        if prefix is None:
            continue
        pt, cnt = _flat(arrays, f"{prefix}_pt")
        eta, _ = _flat(arrays, f"{prefix}_eta")
        phi, _ = _flat(arrays, f"{prefix}_phi")
        ev = np.repeat(np.arange(n, dtype=np.int64), cnt)
        rank = np.arange(ev.size, dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        keep = ~skip[ev] & (rank < MAX_OBJECTS)
        phi = np.clip(phi, -np.pi, np.nextafter(np.pi, 0))
        objects[o.type] = np.stack([o.pt.index(pt[keep]), o.eta.index(eta[keep]),
                                    o.phi.index(phi[keep])], axis=1).astype(np.uint8)
        counts[o.type] = np.where(skip, NO_CODE, np.minimum(cnt, MAX_OBJECTS)).astype(np.uint8)
        if o.type == "jets":
            central = (pt > HT_MIN_PT) & (np.abs(eta) < HT_MAX_ETA)
            ht = np.bincount(ev[central], weights=pt[central], minlength=n)
            scalars["ht"] = np.where(skip, NO_CODE, book.ht.index(ht)).astype(np.uint8)
    return EventBins(book, n, scalars, counts, objects)


# ------------------------------------------------------------------ per-lumisection counts


@dataclass(frozen=True, eq=False)
class LumiHists:
    """The histograms of one lumisection: ``counts[name]`` int64 over the book's codes."""

    book: str
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LumiHists):
            return NotImplemented
        return (self.book == other.book and self.counts.keys() == other.counts.keys()
                and all(np.array_equal(v, other.counts[k]) for k, v in self.counts.items()))

    def __add__(self, other: LumiHists) -> LumiHists:
        if other.book != self.book:
            raise ValueError(f"cannot add histograms of book {self.book} and {other.book}")
        out = dict(self.counts)
        for k, v in other.counts.items():
            if k in out:
                if out[k].size != v.size:
                    raise ValueError(f"histogram {k!r} has {out[k].size} and {v.size} bins")
                out[k] = out[k] + v
            else:
                out[k] = v
        return LumiHists(self.book, out)

    def to_wire(self) -> dict[str, Any]:
        """``{"book", "names", "sizes", "data"}``: ``data`` is base64 of the zlib-compressed
        little-endian int64 counts, histogram after histogram (mostly zeros: compact)."""
        names = sorted(self.counts)
        raw = b"".join(np.ascontiguousarray(self.counts[k], "<i8").tobytes() for k in names)
        return {"book": self.book, "names": names,
                "sizes": [int(self.counts[k].size) for k in names],
                "data": base64.b64encode(zlib.compress(raw, 6)).decode()}

    @classmethod
    def from_wire(cls, d: Any) -> LumiHists:
        if not isinstance(d, dict):
            raise StreamError("summary histograms are not a JSON object")
        names, sizes = d.get("names"), d.get("sizes")
        if (not isinstance(names, list) or not isinstance(sizes, list)
                or len(names) != len(sizes)
                or not all(isinstance(x, str) for x in names)
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                           for x in sizes)):
            raise StreamError("summary histograms: names and sizes are not two lists of "
                              "equal length (strings, non-negative integers)")
        try:
            raw = zlib.decompress(base64.b64decode(str(d.get("data")), validate=True))
        except (ValueError, zlib.error):
            raise StreamError("summary histograms data is not base64 of zlib data") from None
        a = np.frombuffer(raw, "<i8")
        if a.size != sum(sizes):
            raise StreamError(f"summary histograms data holds {a.size} counts, the sizes "
                              f"say {sum(sizes)}")
        if np.any(a < 0):
            raise StreamError("summary histograms hold negative counts")
        bounds = np.cumsum([0, *sizes])
        return cls(str(d.get("book")),
                   {k: a[bounds[i]:bounds[i + 1]].astype(np.int64)
                    for i, k in enumerate(names)})

    def total(self, name: str) -> int:
        return int(self.counts[name].sum()) if name in self.counts else 0

    def to_boost(self, name: str) -> Any:
        """Histogram ``name`` as a ``boost_histogram.Histogram`` (Int64 storage, flows)."""
        import boost_histogram as bh

        book = book_for(self.book)
        axes = book.boost_axes(name)
        h = bh.Histogram(*axes, storage=bh.storage.Int64())
        shape = h.view(flow=True).shape
        h.view(flow=True)[...] = self.counts[name].reshape(shape)
        return h
