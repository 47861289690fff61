"""Monitored detector subsystems as data: grids of cells mapped to named hardware units.

A ``Geometry`` is a 2-D image of readout cells (what the conv-AE sees) plus, for
each *unit level* (channel, chamber, readout board, HV channel, sector, ...), the
unit each cell belongs to and the unit names a shifter recognises, so an alert
can say *which* component broke. It also maps physics positions (eta, phi) to
cells. Geometries are described by TOML files in ``detectors/geometry/``; the
cell layout is built by a *layout kind* (``muon_barrel``, ``eta_phi_grid``)
from the file's ``[layout_params]``. ``[roles]`` says which level a fault of a
kind acts on (``board``, ``hv``, ``sector``, ``channel``, ``misroute``).

Registries (:class:`hotline.registry.Registry`, built-ins loaded on first use):
``register_layout/get_layout/available_layouts`` (cell layouts) and
``register_geometry/get_geometry/available_geometries`` (named geometries; the
built-ins are the bundled TOML files, ``register_builtins()`` loads them explicitly).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hotline.config import package_path, read_toml
from hotline.errors import ConfigError
from hotline.registry import Registry

GEOMETRY_DIR = package_path("hotline.detectors", "geometry")


@dataclass(frozen=True)
class Level:
    """One unit level: ``index[cell]`` = unit number; ``names[unit]`` = unit name."""

    name: str
    names: tuple[str, ...]
    index: np.ndarray  #: int64 [n_cells]

    @property
    def n_units(self) -> int:
        return len(self.names)

    def cells(self, unit: int) -> np.ndarray:
        """Flat cell indices of ``unit``."""
        return np.flatnonzero(self.index == unit)


@dataclass(frozen=True)
class Layout:
    """What a layout kind builds: image shape, axis labels, unit levels, position lookup."""

    shape: tuple[int, int]
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]
    levels: dict[str, Level]
    #: (eta, phi, station or None) -> flat cell index, -1 outside; vectorised
    locate: Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]
    #: relative pileup/background density per cell (sums to 1)
    pileup_shape: np.ndarray
    stations: int = 0  #: >0: each object crosses this many layers (muon stations)
    phi_axis: int = 1  #: image axis running along phi (0: rows, 1: columns)


@dataclass(frozen=True)
class Geometry:
    """A monitored subsystem (see module docstring)."""

    name: str
    title: str
    layout: str
    collections: tuple[str, ...]
    layout_params: dict[str, Any]
    hits: dict[str, Any]
    roles: dict[str, str]
    source: str = ""
    #: the layout built from layout_params/hits (``from_dict`` always passes it)
    built: Layout = field(repr=False, kw_only=True)

    @property
    def shape(self) -> tuple[int, int]:
        return self.built.shape

    @property
    def n_cells(self) -> int:
        return self.built.shape[0] * self.built.shape[1]

    @property
    def levels(self) -> dict[str, Level]:
        return self.built.levels

    def level(self, name_or_role: str) -> Level:
        """A unit level by name, or by role (``board``, ``hv``, ``sector``, ...)."""
        name = self.roles.get(name_or_role, name_or_role)
        try:
            return self.built.levels[name]
        except KeyError:
            raise ConfigError(
                f"geometry '{self.name}' has no unit level or role '{name_or_role}'; "
                f"levels: {', '.join(self.built.levels)}; roles: {', '.join(self.roles)}"
            ) from None

    def unit_name(self, level: str, unit: int) -> str:
        return self.level(level).names[unit]

    def unit_number(self, level: str, name: str) -> int:
        names = self.level(level).names
        try:
            return names.index(name)
        except ValueError:
            raise ConfigError(
                f"geometry '{self.name}': no {level} unit named '{name}' "
                f"(e.g. {', '.join(names[:3])})"
            ) from None

    def locate(
        self, eta: np.ndarray, phi: np.ndarray, station: np.ndarray | None = None
    ) -> np.ndarray:
        """Flat cell index of each (eta, phi[, station]) position; -1 when outside."""
        return self.built.locate(np.asarray(eta), np.asarray(phi), station)

    @cached_property
    def membership(self) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int]]]:
        """Dense [n_cells, n_units_all] 0/1 matrix over all levels, unit counts, and labels."""
        cols = []
        labels: list[tuple[str, int]] = []
        for lv in self.levels.values():
            m = np.zeros((self.n_cells, lv.n_units), np.float32)
            m[np.arange(self.n_cells), lv.index] = 1.0
            cols.append(m)
            labels += [(lv.name, u) for u in range(lv.n_units)]
        mat = np.concatenate(cols, axis=1)
        return mat, mat.sum(axis=0), labels

    @cached_property
    def contains(self) -> np.ndarray:
        """[units_all, units_all] bool: ``contains[P, u]`` = unit u lies inside larger unit P."""
        mat, ncell, _ = self.membership
        overlap = mat.T @ mat
        return (overlap == ncell[None, :]) & (ncell[:, None] > ncell[None, :])

    def level_slices(self) -> dict[str, slice]:
        """Column range of each level in ``membership``."""
        out, start = {}, 0
        for lv in self.levels.values():
            out[lv.name] = slice(start, start + lv.n_units)
            start += lv.n_units
        return out

    def to_dict(self) -> dict[str, Any]:
        """The geometry as data (stored in model cards)."""
        return {
            "name": self.name,
            "title": self.title,
            "layout": self.layout,
            "collections": list(self.collections),
            "layout_params": self.layout_params,
            "hits": self.hits,
            "roles": self.roles,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> Geometry:
        where = source or data.get("name", "geometry")
        for key in ("name", "layout"):
            if key not in data:
                raise ConfigError(f"{where}: geometry needs a '{key}'")
        builder = get_layout(data["layout"])
        params = dict(data.get("layout_params", {}))
        hits = dict(data.get("hits", {}))
        try:
            built = builder(params, hits)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: bad [layout_params]/[hits]: {exc}") from None
        roles = {lv: lv for lv in built.levels}
        roles.update(data.get("roles", {}))
        geo = cls(
            name=str(data["name"]),
            title=str(data.get("title", data["name"])),
            layout=str(data["layout"]),
            collections=tuple(data.get("collections", ())),
            layout_params=params,
            hits=hits,
            roles=roles,
            source=source,
            built=built,
        )
        for role, lv in roles.items():
            if lv not in built.levels:
                raise ConfigError(f"{where}: role '{role}' names unknown level '{lv}'")
        return geo

    @classmethod
    def from_toml(cls, path: str | Path) -> Geometry:
        return cls.from_dict(read_toml(path, "geometry file"), source=str(path))


# --------------------------------------------------------------------------- layouts

LayoutBuilder = Callable[[dict[str, Any], dict[str, Any]], Layout]
_LAYOUTS: Registry[LayoutBuilder] = Registry(
    "geometry layout",
    lambda: [("muon_barrel", muon_barrel_layout), ("eta_phi_grid", eta_phi_grid_layout)],
)


def register_layout(name: str, builder: LayoutBuilder) -> None:
    """Register a cell-layout kind; a duplicate name is refused."""
    _LAYOUTS.register(name, builder)


def get_layout(name: str) -> LayoutBuilder:
    return _LAYOUTS.get(name)


def available_layouts() -> list[str]:
    return _LAYOUTS.available()


def _wrap_phi(phi: np.ndarray) -> np.ndarray:
    return np.mod(phi + np.pi, 2 * np.pi)  # in [0, 2 pi)


def _level(name: str, index: np.ndarray, names: list[str]) -> Level:
    return Level(name, tuple(names), index.astype(np.int64).ravel())


def muon_barrel_layout(p: dict[str, Any], hits: dict[str, Any]) -> Layout:
    """Rows = (wheel, station), columns = (sector, channel); units chamber/sector/wheel."""
    nw, ns, nst, nch = (int(p[k]) for k in ("wheels", "sectors", "stations",
                                             "channels_per_chamber"))
    edges = np.asarray(p["wheel_eta_edges"], np.float64)
    if edges.size != nw + 1:
        raise ValueError(f"wheel_eta_edges needs {nw + 1} values")
    wheel_lab = [f"W{w - nw // 2:+d}" if w != nw // 2 else "W0" for w in range(nw)]
    sec_lab = [f"S{s + 1:02d}" for s in range(ns)]
    st_lab = [f"MB{s + 1}" for s in range(nst)]
    H, W = nw * nst, ns * nch
    r, c = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    wheel, station = r // nst, r % nst
    sector = c // nch
    chamber = (wheel * ns + sector) * nst + station
    ws = wheel * ns + sector
    levels = {
        "channel": _level("channel", r * W + c, [
            f"{wheel_lab[w]} {sec_lab[s]} {st_lab[t]} ch{k + 1}"
            for w in range(nw) for t in range(nst) for s in range(ns) for k in range(nch)
        ]),
        "chamber": _level("chamber", chamber, [
            f"{wheel_lab[w]} {sec_lab[s]} {st_lab[t]}"
            for w in range(nw) for s in range(ns) for t in range(nst)
        ]),
        "sector": _level("sector", ws, [
            f"{wheel_lab[w]} {sec_lab[s]}" for w in range(nw) for s in range(ns)
        ]),
        "wheel": _level("wheel", wheel, wheel_lab),
    }
    # the channel names above were generated in (wheel, station, sector, channel) order,
    # which is the flat row-major order of the image: check it
    assert levels["channel"].names[W] == f"{wheel_lab[0]} {sec_lab[0]} {st_lab[1]} ch1"

    def locate(eta: np.ndarray, phi: np.ndarray, station: np.ndarray | None) -> np.ndarray:
        st = np.zeros(eta.shape, np.int64) if station is None else np.asarray(station)
        w = np.searchsorted(edges, eta, side="right") - 1
        frac = _wrap_phi(phi) / (2 * np.pi) * ns
        s = np.minimum(frac.astype(np.int64), ns - 1)
        k = np.minimum(((frac - s) * nch).astype(np.int64), nch - 1)
        ok = (w >= 0) & (w < nw) & (st >= 0) & (st < nst)
        cell = ((w * nst + st) * W) + s * nch + k
        return np.where(ok, cell, -1)

    eta_c = 0.5 * (edges[:-1] + edges[1:])
    st_w = np.asarray(hits.get("pileup_station_weights", [1.0] * nst), np.float64)
    slope = float(hits.get("pileup_abs_eta_slope", 0.0))
    shape = (1 + slope * np.abs(eta_c[wheel])) * st_w[station]
    shape = shape / shape.sum()
    return Layout((H, W), tuple(f"{wheel_lab[w]} {st_lab[t]}" for w in range(nw)
                                for t in range(nst)),
                  tuple(f"{sec_lab[s]}/{k + 1}" for s in range(ns) for k in range(nch)),
                  levels, locate, shape.ravel(), stations=nst, phi_axis=1)


def eta_phi_grid_layout(p: dict[str, Any], hits: dict[str, Any]) -> Layout:
    """Rows = phi bins, columns = eta bins; blocks of cells form boards, HV, crates."""
    nphi, neta = int(p["phi_bins"]), int(p["eta_bins"])
    lo, hi = float(p["eta_min"]), float(p["eta_max"])
    edges = np.linspace(lo, hi, neta + 1)
    r, c = np.meshgrid(np.arange(nphi), np.arange(neta), indexing="ij")
    cell_names = [f"phi{i:02d} eta{j:02d}" for i in range(nphi) for j in range(neta)]
    levels = {"region": _level("region", r * neta + c, cell_names)}
    for key, default in (("board", "card"), ("hv", "hv"), ("crate", "crate")):
        bp, be = (int(v) for v in p.get(f"{key}_block", [nphi, neta]))
        if nphi % bp or neta % be:
            raise ValueError(f"{key}_block {bp}x{be} does not tile {nphi}x{neta}")
        name = str(p.get(f"{key}_name", default))
        nbe = neta // be
        idx = (r // bp) * nbe + (c // be)
        names = [f"{name} {i + 1:02d}{'ab'[j] if nbe == 2 else f'.{j + 1}'}"
                 for i in range(nphi // bp) for j in range(nbe)]
        levels[name] = _level(name, idx, names)

    def locate(eta: np.ndarray, phi: np.ndarray, station: np.ndarray | None) -> np.ndarray:
        j = np.searchsorted(edges, eta, side="right") - 1
        i = np.minimum((_wrap_phi(phi) / (2 * np.pi) * nphi).astype(np.int64), nphi - 1)
        ok = (j >= 0) & (j < neta)
        return np.where(ok, i * neta + j, -1)

    eta_c = 0.5 * (edges[:-1] + edges[1:])
    shape = np.broadcast_to(1 + float(hits.get("pileup_eta2", 0.0)) * eta_c**2, (nphi, neta))
    shape = shape / shape.sum()
    return Layout((nphi, neta), tuple(f"phi{i:02d}" for i in range(nphi)),
                  tuple(f"{e:+.2f}" for e in eta_c), levels, locate, shape.ravel(), phi_axis=0)


# --------------------------------------------------------------------------- geometries

def _builtin_geometries() -> list[tuple[str, Geometry]]:
    geos = [Geometry.from_toml(path) for path in sorted(GEOMETRY_DIR.glob("*.toml"))]
    return [(geo.name, geo) for geo in geos]


_GEOMETRIES: Registry[Geometry] = Registry("detector geometry", _builtin_geometries)


def register_geometry(geo: Geometry) -> None:
    """Register a named geometry; a duplicate name is refused."""
    _GEOMETRIES.register(geo.name, geo)


def register_builtins() -> None:
    """Register the bundled geometries (``detectors/geometry/*.toml``); idempotent."""
    _GEOMETRIES.available()


def get_geometry(name: str) -> Geometry:
    """A registered geometry by name, or a geometry TOML file by path."""
    if name.endswith(".toml"):
        return Geometry.from_toml(name)
    if name not in _GEOMETRIES:
        raise ConfigError(
            f"unknown {_GEOMETRIES.what} '{name}'; available: "
            f"{', '.join(_GEOMETRIES.available())} (or give a .toml file)"
        )
    return _GEOMETRIES.get(name)


def available_geometries() -> list[str]:
    return _GEOMETRIES.available()
