"""Parameterised event faults: the transforms a TOML fault definition names, and its reader.

A user defines a detector fault without code as a ``[[fault]]`` table of a process
definition file (``training.process_files``); ``fault_from_table`` turns it into an
``EventFault`` of ``detectors.event_faults``. The fault hits one NanoAOD collection
(``Electron``, ``Muon``, ``Photon`` or ``Jet``) inside an (eta, phi) region and keeps MET
consistent with the changed objects, like the built-in faults. Its ``kind`` says what
``size`` does:

============  ===========================================  =======================
kind          size means                                   identity / allowed
============  ===========================================  =======================
scale_pt      pT factor of the objects in the region       1 / 0 < size <= 100
lose          probability that an object in the region     0 / 0 <= size <= 1
              is lost (1: a dead region, < 1: inefficient)
rotate_phi    rotation of the objects' phi in the region   0 / -pi <= size <= pi
fake_object   mean of the exponential part of the pT of a  none / 0 <= size <= 1e4
              fake object at ``at`` in a fraction ``rate``
              of events (pT = ``min_pt`` + Exp(size))
============  ===========================================  =======================

Keys of a ``[[fault]]`` table (``FAULT_KEYS``): ``name``, ``code`` (the ``fault`` branch
value, unique), ``description``, ``kind``, ``collection``, optional ``faulty_type``
(default: the collection's type, e.g. ``muons``), ``eta`` and ``phi`` ranges of the region
(default: everywhere; a phi range may cross +-pi, e.g. ``[2.8, 3.6]``), ``default_size``,
``sizes`` (a scan; default ``[default_size]``), ``size_help``; ``fake_object`` also takes
``at = [eta, phi]``, ``rate`` and ``min_pt``.

Code builds the same faults with ``region_fault(kind, collection, eta=..., phi=...)``
(the table's path, so a fault in a study is exactly the fault a TOML file defines): the
calibration faults of the lumisection-distribution studies (a muon pT scale, a jet
response change in one quadrant, an electron phi mis-calibration in one region, a gradual
efficiency loss) are kinds ``scale_pt``, ``rotate_phi`` and ``lose`` with a region.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import awkward as ak
import numpy as np

from hotline.config import TomlTable
from hotline.detectors.event_faults import (
    EventFault,
    FaultFn,
    _met_shift,
    _reorder,
    _sum_xy,
)
from hotline.detectors.fastsim import wrap_phi
from hotline.errors import ConfigError

__all__ = ["COLLECTION_TYPES", "FAULT_KEYS", "FAULT_KINDS", "OBJECT_TYPES", "check_fault_code",
           "fault_from_table", "in_region", "region_fault"]

#: collections a TOML fault can hit -> the model object type they feed
COLLECTION_TYPES = {"Electron": "electrons", "Muon": "muons", "Photon": "photons",
                    "Jet": "jets"}

#: object types an anomaly or a fault can be attributed to (``detectors.spec`` type labels)
OBJECT_TYPES = ("MET", "electrons", "muons", "jets", "photons", "taus")

Box = tuple[float, float, float, float]


def in_region(eta: Any, phi: Any, box: Box) -> Any:
    """``eta_lo < eta < eta_hi`` and ``phi_lo < phi < phi_hi`` for ``box`` = (eta_lo, eta_hi,
    phi_lo, phi_hi); a phi range reaching beyond +-pi wraps around (``[2.8, 3.6]`` holds
    phi near +pi and just above -pi)."""
    e0, e1, p0, p1 = box
    in_phi = (phi > p0) & (phi < p1)
    if p1 > np.pi:
        in_phi = in_phi | (phi + 2 * np.pi < p1)
    if p0 < -np.pi:
        in_phi = in_phi | (phi - 2 * np.pi > p0)
    return (eta > e0) & (eta < e1) & in_phi


def _scale_pt(coll: str, box: Box) -> FaultFn:
    def apply(reco: ak.Array, rng: np.random.Generator, size: float) -> ak.Array:
        if size == 1.0:
            return reco
        pt, phi = reco[f"{coll}_pt"], reco[f"{coll}_phi"]
        new = ak.where(in_region(reco[f"{coll}_eta"], phi, box), pt * size, pt)
        dpx, dpy = _sum_xy(new - pt, phi)
        reco = ak.with_field(reco, ak.values_astype(new, np.float32), f"{coll}_pt")
        return _reorder(_met_shift(reco, dpx, dpy), coll)
    return apply


def _lose(coll: str, box: Box) -> FaultFn:
    def apply(reco: ak.Array, rng: np.random.Generator, size: float) -> ak.Array:
        if size == 0.0:
            return reco
        pt, eta, phi = reco[f"{coll}_pt"], reco[f"{coll}_eta"], reco[f"{coll}_phi"]
        counts = ak.to_numpy(ak.num(pt, axis=1))
        u = ak.unflatten(rng.random(int(counts.sum())), counts)
        lost = in_region(eta, phi, box) & (u < size)
        dpx, dpy = _sum_xy(pt[lost], phi[lost])
        for name in [f for f in reco.fields if f.startswith(coll + "_")]:
            reco = ak.with_field(reco, reco[name][~lost], name)
        return _met_shift(reco, -dpx, -dpy)
    return apply


def _rotate_phi(coll: str, box: Box) -> FaultFn:
    def apply(reco: ak.Array, rng: np.random.Generator, size: float) -> ak.Array:
        if size == 0.0:
            return reco
        pt, phi = reco[f"{coll}_pt"], reco[f"{coll}_phi"]
        inside = in_region(reco[f"{coll}_eta"], phi, box)
        new = ak.values_astype(ak.where(inside, wrap_phi(phi + size), phi), np.float32)
        ox, oy = _sum_xy(pt, phi)
        nx, ny = _sum_xy(pt, new)
        return _met_shift(ak.with_field(reco, new, f"{coll}_phi"), nx - ox, ny - oy)
    return apply


def _fake_object(coll: str, at: tuple[float, float], rate: float, min_pt: float) -> FaultFn:
    eta0, phi0 = at

    def apply(reco: ak.Array, rng: np.random.Generator, size: float) -> ak.Array:
        n = len(reco)
        hot = rng.random(n) < rate
        pt = np.where(hot, min_pt + rng.exponential(size, n), 0.0).astype(np.float32)
        counts = hot.astype(np.int64)
        k = int(hot.sum())
        values = {"pt": pt[hot], "eta": np.full(k, eta0, np.float32),
                  "phi": np.full(k, phi0, np.float32)}
        for name in [f for f in reco.fields if f.startswith(coll + "_")]:
            dtype = ak.to_numpy(ak.flatten(reco[name][:0])).dtype
            extra = values.get(name[len(coll) + 1:], np.zeros(k)).astype(dtype)
            reco = ak.with_field(reco, ak.concatenate(
                [reco[name], ak.unflatten(extra, counts)], axis=1), name)
        reco = _met_shift(reco, pt * np.cos(phi0), pt * np.sin(phi0))
        return _reorder(reco, coll)
    return apply


#: kind -> (default size, size help, allowed rule in words, allowed test)
FAULT_KINDS: dict[str, tuple[float, str, str, Callable[[float], bool]]] = {
    "scale_pt": (1.3, "pT factor of the objects in the region (1 = no fault)",
                 "0 < size <= 100", lambda s: 0 < s <= 100),
    "lose": (1.0, "probability that an object in the region is lost (0 = no fault, 1 = dead)",
             "0 <= size <= 1", lambda s: 0 <= s <= 1),
    "rotate_phi": (0.5, "rotation of the phi of the objects in the region in rad (0 = no fault)",
                   "-pi <= size <= pi", lambda s: abs(s) <= math.pi),
    "fake_object": (60.0, "mean of the exponential part of the fake object's pT in GeV",
                    "0 <= size <= 10000 GeV", lambda s: 0 <= s <= 10_000),
}

FAULT_KEYS = ("name", "code", "description", "kind", "collection", "faulty_type", "eta", "phi",
              "default_size", "sizes", "size_help", "at", "rate", "min_pt")


def _range(t: TomlTable, key: str, default: tuple[float, float]) -> tuple[float, float]:
    lo, hi = t.numbers(key, default, length=2)
    if not lo < hi:
        raise t.error(key, f"must be [low, high] with low < high, got [{lo:g}, {hi:g}]")
    return lo, hi


def fault_from_table(data: Mapping[str, Any], where: str,
                     object_types: tuple[str, ...] | None = None) -> EventFault:
    """The ``EventFault`` a ``[[fault]]`` table defines (see the module docstring).

    ``where`` names the file (errors read ``"<where>: fault '<name>': key '<key>' ..."``);
    ``object_types``: the allowed ``faulty_type`` values (default: ``OBJECT_TYPES``).
    """
    name = data.get("name") if isinstance(data, Mapping) else None
    t = TomlTable(data, f"{where}: fault '{name}'" if isinstance(name, str) else
                  f"{where}: [[fault]]")
    name = t.text("name")
    if not name.isidentifier() or name != name.lower():
        raise t.error("name", f"must be a lower-case identifier (a-z, 0-9, _), got {name!r}")
    code = t.integer("code", least=1)
    description = t.text("description")
    kind = t.choice("kind", tuple(FAULT_KINDS))
    coll = t.choice("collection", tuple(COLLECTION_TYPES))
    types = object_types or OBJECT_TYPES
    faulty_type = t.choice("faulty_type", types, COLLECTION_TYPES[coll])
    box = (*_range(t, "eta", (-10.0, 10.0)), *_range(t, "phi", (-4.0, 4.0)))
    kind_default, kind_help, rule, ok = FAULT_KINDS[kind]
    if kind == "fake_object":
        at = t.numbers("at", length=2)
        rate = t.number("rate")
        if not 0 < rate <= 1:
            raise t.error("rate", f"must be in (0, 1], got {rate:g}")
        min_pt = t.number("min_pt", 20.0)
        if min_pt < 0:
            raise t.error("min_pt", f"must be >= 0, got {min_pt:g}")
        fn = _fake_object(coll, (at[0], at[1]), rate, min_pt)
        definition: tuple[str, ...] = (f"at={at!r}", f"rate={rate!r}", f"min_pt={min_pt!r}")
    else:
        for key in ("at", "rate", "min_pt"):
            if t.has(key):
                raise t.error(key, "is only for kind = \"fake_object\"")
        fn = {"scale_pt": _scale_pt, "lose": _lose, "rotate_phi": _rotate_phi}[kind](coll, box)
        definition = ()
    default_size = t.number("default_size", kind_default)
    sizes = t.numbers("sizes", (default_size,))
    size_help = t.text("size_help", kind_help)
    t.done()
    for key, values in (("default_size", (default_size,)), ("sizes", sizes)):
        bad = [s for s in values if not ok(s)]
        if bad:
            raise t.error(key, f"{bad[0]:g} is outside the allowed sizes of kind '{kind}': "
                               f"{rule}")
    return EventFault(
        name, code, description, fn, faulty_type=faulty_type, default_size=default_size,
        size_help=size_help, sizes=sizes, size_ok=ok, size_rule=rule,
        prefilter_scale=(lambda s: max(s, 1.0)) if kind == "scale_pt" else _unit,
        definition=(f"kind={kind}", f"collection={coll}", f"region={box!r}", *definition))


def region_fault(kind: str, collection: str, eta: tuple[float, float] | None = None,
                 phi: tuple[float, float] | None = None, name: str | None = None,
                 code: int = 900, **keys: Any) -> EventFault:
    """The fault a ``[[fault]]`` table of ``kind`` on ``collection`` in the region ``eta`` x
    ``phi`` (None: everywhere) defines (``keys``: its other keys, e.g. ``default_size``,
    ``at``, ``rate``); built through ``fault_from_table``, not registered."""
    table: dict[str, Any] = {"name": name or f"{kind}_{collection.lower()}", "code": code,
                             "description": f"{kind} of {collection}", "kind": kind,
                             "collection": collection, **keys}
    if eta is not None:
        table["eta"] = list(eta)
    if phi is not None:
        table["phi"] = list(phi)
    return fault_from_table(table, "region_fault")


def _unit(size: float) -> float:
    return 1.0


def check_fault_code(fault: EventFault, known: Mapping[str, EventFault], where: str) -> None:
    """``ConfigError`` when ``fault``'s code is already used by a registered fault."""
    clash = [f.name for f in known.values() if f.code == fault.code and f.name != fault.name]
    if clash:
        raise ConfigError(f"{where}: fault '{fault.name}': key 'code' {fault.code} is used by "
                          f"fault '{clash[0]}'")
