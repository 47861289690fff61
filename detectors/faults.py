"""Fault injection into occupancy maps: fault kinds, their registry, and named scenarios.

A fault kind is a function that changes the hit counts of the cells of chosen
hardware units, with one size/strength parameter:

=================  =======================================  ======================
kind               what it does                             size means
=================  =======================================  ======================
dead_channel       channels read 0                          number of channels
dead_board         a readout board reads 0                  number of boards
hot_channel        a noisy channel fires too often          occupancy factor (10 = 10x)
hv_drop            HV sagging: lower hit efficiency         efficiency drop (0.2 = -20 %)
timing_shift       a board's clock is off: hits leave the   fraction of hits out of time
                   readout window, out-of-time hits smear
misrouted          cables of two units swapped              number of swapped pairs
=================  =======================================  ======================

Each kind acts on a unit level given by a *role* of the geometry (``channel``,
``board``, ``hv``, ``sector``, ``misroute``); ``Fault.level`` overrides it and
``Fault.unit`` picks a named unit (else units are drawn at random). Everything is
reproducible from ``Fault.seed``. ``inject(counts, geometry, faults)`` returns the
new counts and an ``Injected`` record per fault (level, unit numbers, names): the
truth that localisation is judged against.

Registries (:class:`hotline.registry.Registry`, built-ins loaded on first use):
``register_fault_kind/get_fault_kind/available_fault_kinds`` and
``register_scenario/get_scenario/available_scenarios`` (a scenario = a named list
of faults); ``register_builtins()`` loads the built-ins explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hotline.detectors.geometry import Geometry
from hotline.errors import ConfigError
from hotline.registry import Registry


@dataclass(frozen=True)
class Fault:
    """One fault to inject: kind, size, optional level / named unit, seed."""

    kind: str
    size: float | None = None  #: None: the kind's default size
    level: str | None = None  #: unit level or role; None: the kind's role
    unit: str | None = None  #: unit name; None: random
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Injected:
    """What a fault did: the truth for localisation."""

    kind: str
    size: float
    level: str
    units: tuple[int, ...]
    names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: apply(counts_flat float64 [n_cells], geometry, level name, units, size, rng) -> new counts
Apply = Callable[[np.ndarray, Geometry, str, list[int], float, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class FaultKind:
    name: str
    description: str
    role: str  #: default unit level role
    default_size: float
    size_help: str
    sizes: tuple[float, ...]  #: sizes the evaluation scans
    apply: Apply
    n_units: Callable[[float], int] = lambda size: 1  #: units drawn for a given size
    #: level at which localisation is judged (None: the fault's level)
    judge_role: str | None = None


_KINDS: Registry[FaultKind] = Registry(
    "fault kind", lambda: [(k.name, k) for k in _builtin_kinds()], sort=False)
#: scenario name -> (description, faults)
_SCENARIOS: Registry[tuple[str, list[Fault]]] = Registry(
    "fault scenario", lambda: _builtin_scenarios(), sort=False)


def register_fault_kind(kind: FaultKind) -> None:
    """Register a fault kind; a duplicate name is refused."""
    _KINDS.register(kind.name, kind)


def get_fault_kind(name: str) -> FaultKind:
    return _KINDS.get(name)


def available_fault_kinds() -> list[str]:
    return _KINDS.available()


def register_scenario(name: str, description: str, faults: Sequence[Fault]) -> None:
    """Register a named fault scenario; a duplicate name is refused."""
    _SCENARIOS.register(name, (description, list(faults)))


def get_scenario(name: str) -> list[Fault]:
    return list(_SCENARIOS.get(name)[1])


def available_scenarios() -> dict[str, str]:
    """Scenario name -> description."""
    return {k: _SCENARIOS.get(k)[0] for k in _SCENARIOS.available()}


# --------------------------------------------------------------------------- kinds

def _cells(geo: Geometry, level: str, units: list[int]) -> np.ndarray:
    idx = geo.level(level).index
    return np.flatnonzero(np.isin(idx, units))


def _dead(c: np.ndarray, geo: Geometry, level: str, units: list[int], size: float,
          rng: np.random.Generator) -> np.ndarray:
    c = c.copy()
    c[_cells(geo, level, units)] = 0.0
    return c


def _hot(c: np.ndarray, geo: Geometry, level: str, units: list[int], size: float,
         rng: np.random.Generator) -> np.ndarray:
    c = c.copy()
    cells = _cells(geo, level, units)
    # extra noise hits: (size - 1) x the channel's own occupancy (at least one hit per LS)
    c[cells] += rng.poisson(max(size - 1.0, 0.0) * np.maximum(c[cells], 1.0))
    return c


def _thin(c: np.ndarray, geo: Geometry, level: str, units: list[int], size: float,
          rng: np.random.Generator) -> np.ndarray:
    c = c.copy()
    cells = _cells(geo, level, units)
    keep = float(np.clip(1.0 - size, 0.0, 1.0))
    c[cells] = rng.binomial(c[cells].astype(np.int64), keep)
    return c


def _timing(c: np.ndarray, geo: Geometry, level: str, units: list[int], size: float,
            rng: np.random.Generator) -> np.ndarray:
    cells = _cells(geo, level, units)
    out = _thin(c, geo, level, units, size, rng)
    lost = c[cells].sum() - out[cells].sum()
    # half of the lost hits come back from the neighbouring bunch crossing, spread
    # uniformly over the board's channels (the occupancy shape is smeared)
    out[cells] += rng.multinomial(int(lost * 0.5), np.full(cells.size, 1.0 / cells.size))
    return out


def _misroute(c: np.ndarray, geo: Geometry, level: str, units: list[int], size: float,
              rng: np.random.Generator) -> np.ndarray:
    c = c.copy()
    lv = geo.level(level)
    for a, b in zip(units[0::2], units[1::2]):
        ca, cb = lv.cells(a), lv.cells(b)
        c[ca], c[cb] = c[cb].copy(), c[ca].copy()
    return c


def _pick_units(geo: Geometry, kind: FaultKind, level: str, n: int,
                rng: np.random.Generator, first: int | None = None) -> list[int]:
    lv = geo.level(level)
    if kind.name != "misrouted":
        if first is not None:
            return [first]
        return sorted(rng.choice(lv.n_units, size=min(n, lv.n_units), replace=False).tolist())
    # swap partners: two units of the same sector with the same number of cells and a
    # different expected occupancy (else the swap is invisible to occupancy monitoring)
    sector = geo.level("sector").index
    shape = geo.built.pileup_shape
    units: list[int] = []
    for i in range(n):
        for _attempt in range(100):
            a = first if (first is not None and i == 0) else int(rng.integers(lv.n_units))
            ca = lv.cells(a)
            mean_a = shape[ca].mean()
            cand = [int(u) for u in np.unique(lv.index[sector == sector[ca[0]]])
                    if u != a and u not in units and len(lv.cells(u)) == len(ca)
                    and abs(shape[lv.cells(u)].mean() - mean_a) > 1e-3 * mean_a]
            if a not in units and cand:
                units += [a, int(rng.choice(cand))]
                break
    return units


def register_builtins() -> None:
    """Register the built-in fault kinds and scenarios (idempotent; lookups do it by themselves)."""
    _KINDS.available()
    _SCENARIOS.available()


def _builtin_kinds() -> list[FaultKind]:
    return [
        FaultKind("dead_channel", "channels read zero", "channel", 1, "number of dead channels",
                  (1, 4), _dead, n_units=lambda s: max(int(s), 1)),
        FaultKind("dead_board", "a readout board reads zero", "board", 1,
                  "number of dead boards", (1,), _dead, n_units=lambda s: max(int(s), 1)),
        FaultKind("hot_channel", "a noisy channel fires too often", "channel", 10.0,
                  "occupancy factor (10 = 10x)", (2.0, 3.0, 10.0), _hot),
        FaultKind("hv_drop", "lower hit efficiency after an HV drop", "sector", 0.2,
                  "efficiency drop (0.2 = -20 %)", (0.1, 0.2, 0.4), _thin),
        FaultKind("timing_shift", "a board's timing is off; hits leave the readout window",
                  "board", 0.3, "fraction of hits out of time", (0.15, 0.3), _timing),
        FaultKind("misrouted", "cables of two units swapped", "misroute", 1,
                  "number of swapped pairs", (1,), _misroute, n_units=lambda s: max(int(s), 1)),
    ]


def _builtin_scenarios() -> list[tuple[str, tuple[str, list[Fault]]]]:
    return [(name, (desc, faults)) for name, desc, faults in (
        ("dead-board", "one readout board dead", [Fault("dead_board")]),
        ("dead-channel", "one dead channel", [Fault("dead_channel")]),
        ("hot-channel-10x", "one channel at 10x its occupancy", [Fault("hot_channel", 10)]),
        ("hot-channel-3x", "one channel at 3x its occupancy", [Fault("hot_channel", 3)]),
        ("hv-drop-20", "20 % efficiency drop in one sector", [Fault("hv_drop", 0.2)]),
        ("hv-drop-chamber", "40 % efficiency drop in one HV channel",
         [Fault("hv_drop", 0.4, level="hv")]),
        ("timing-shift", "30 % of one board's hits out of time", [Fault("timing_shift", 0.3)]),
        ("misrouted", "two units' cables swapped", [Fault("misrouted")]),
        ("bad-night", "a dead board, a hot channel and a sagging sector together",
         [Fault("dead_board", seed=1), Fault("hot_channel", 5, seed=2),
          Fault("hv_drop", 0.3, seed=3)]),
    )]


def inject(
    counts: np.ndarray, geo: Geometry, faults: Sequence[Fault], seed: int = 0
) -> tuple[np.ndarray, list[Injected]]:
    """Apply ``faults`` to one map's counts ([rows, cols]); returns new counts and the truth."""
    if counts.shape != geo.shape:
        raise ConfigError(
            f"occupancy map of shape {counts.shape} does not fit geometry '{geo.name}' "
            f"{geo.shape}"
        )
    flat = counts.astype(np.float64).ravel()
    truth: list[Injected] = []
    for f in faults:
        kind = get_fault_kind(f.kind)
        size = kind.default_size if f.size is None else float(f.size)
        rng = np.random.default_rng([f.seed, seed, sum(f.kind.encode())])
        level = geo.level(f.level or kind.role).name
        first = None if f.unit is None else geo.unit_number(level, f.unit)
        units = _pick_units(geo, kind, level, kind.n_units(size), rng, first)
        if kind.name == "misrouted" and len(units) < 2:
            raise ConfigError(f"misrouted: no swap partner found in geometry '{geo.name}'")
        flat = kind.apply(flat, geo, level, units, size, rng)
        names = tuple(geo.unit_name(level, u) for u in units)
        truth.append(Injected(kind.name, size, level, tuple(units), names))
    return flat.reshape(geo.shape), truth
