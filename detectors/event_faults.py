"""Event faults: detector faults applied to reconstructed events, and their registry.

Detector faults for DQM and attribution studies, as reco-level transforms
registered with :func:`register_event_fault` (``muon_scale``, ``dead_calo``,
``hot_cell``, ``electron_phi``); each keeps MET consistent with the changed
objects, as a particle-flow MET would. Like the DQM fault kinds of
``detectors.occupancy_faults``, each has one strength parameter ``size``:

============  ==========  =====================================  ==================
fault         type hit    size means                             default / identity
============  ==========  =====================================  ==================
muon_scale    muons       pT factor in the faulty region         1.3 / 1.0
dead_calo     jets        phi width of the dead region [rad]     1.5 / 0.0
hot_cell      jets        mean of the fake-jet pT tail [GeV]     60 / none
electron_phi  electrons   rotation of the electrons' phi [rad]   0.6 / 0.0
============  ==========  =====================================  ==================

(hot_cell has no identity: at size 0 it still adds 20 GeV fake jets.)

A fault is an ``EventFault`` (name, the object type it hits, ``apply(reco, rng, size)``,
its size range); ``register_event_fault`` adds one, ``apply_fault`` applies one by name.
Faults defined without code (TOML ``[[fault]]`` tables) are built by
``detectors.fault_kinds`` from parameterised transforms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from hotline.detectors.fastsim import wrap_phi
from hotline.errors import ConfigError
from hotline.registry import Registry

__all__ = [
    "EventFault", "apply_fault", "available_event_faults", "get_event_fault",
    "register_event_fault",
]


# ----------------------------------------------------------------------------- faults
#: apply(reco, rng, size) -> faulty reco
FaultFn = Callable[[ak.Array, np.random.Generator, float], ak.Array]


def _unscaled(size: float) -> float:
    return 1.0


@dataclass(frozen=True)
class EventFault:
    """A reco-level detector fault: a transform of simulated events (MET kept consistent).

    Like the DQM fault kinds of ``detectors.faults`` it has one strength parameter
    ``size`` (meaning in ``size_help``; ``default_size`` is what ``hotline generate``
    uses unless told otherwise, ``sizes`` is what a scan such as the paired
    attribution study uses). ``faulty_type`` is the model object type
    (``detectors.spec`` type label) the fault corrupts: what an attribution of an
    alert it caused should name.
    """

    name: str
    code: int  #: written to the ``fault`` branch (0 = no fault)
    description: str
    apply: FaultFn
    faulty_type: str  #: object type label the fault corrupts (MET, electrons, muons, jets)
    default_size: float
    size_help: str  #: what ``size`` means, with its unit and its identity value if any
    sizes: tuple[float, ...]  #: sizes a scan uses
    size_ok: Callable[[float], bool] = lambda size: True
    size_rule: str = "any finite number"  #: the valid range in words (for error messages)
    #: generator pre-filter lowered by this factor at a given size (faults raising pT)
    prefilter_scale: Callable[[float], float] = _unscaled
    #: what makes a fault defined by data (``detectors.fault_kinds``): its kind and
    #: parameters, part of the settings hash of generated runs; empty for the built-ins
    definition: tuple[str, ...] = ()
    source: str = ""  #: the TOML file that defines it ("" for the built-ins)

    def __post_init__(self) -> None:
        for s in (self.default_size, *self.sizes):
            self.check_size(s)

    def check_size(self, size: float | None) -> float:
        """``size`` as a float (None: ``default_size``); ``ConfigError`` if it is not valid."""
        if size is None:
            return float(self.default_size)
        try:
            s = float(size)
        except (TypeError, ValueError):
            raise ConfigError(f"detector fault '{self.name}': size {size!r} is not a number "
                              f"(size = {self.size_help})") from None
        if not np.isfinite(s) or not self.size_ok(s):
            raise ConfigError(f"detector fault '{self.name}': size {size!r} is not valid; "
                              f"size = {self.size_help}, allowed: {self.size_rule}")
        return s


_FAULTS: Registry[EventFault] = Registry(
    "detector fault", lambda: [(f.name, f) for f in _builtin_faults()])


def register_event_fault(fault: EventFault) -> EventFault:
    """Make ``fault`` usable by name; a duplicate name is refused."""
    return _FAULTS.register(fault.name, fault)


def get_event_fault(name: str) -> EventFault:
    return _FAULTS.get(name)


def available_event_faults() -> list[str]:
    return _FAULTS.available()


def apply_fault(reco: ak.Array, name: str | None, rng: np.random.Generator,
                size: float | None = None) -> ak.Array:
    """Apply fault ``name`` (None: unchanged) with strength ``size`` (None: its default).

    An invalid size is a ``ConfigError`` naming the fault and the size.
    """
    if not name:
        return reco
    fault = get_event_fault(name)
    return fault.apply(reco, rng, fault.check_size(size))


def _in_box(eta: Any, phi: Any, box: tuple[float, float, float, float]) -> Any:
    e0, e1, p0, p1 = box
    return (eta > e0) & (eta < e1) & (phi > p0) & (phi < p1)


def _met_shift(reco: ak.Array, dpx: Any, dpy: Any) -> ak.Array:
    """MET after visible momentum changed by (dpx, dpy) per event."""
    met, mphi = ak.to_numpy(reco.MET_pt).astype(np.float64), ak.to_numpy(reco.MET_phi)
    mx = met * np.cos(mphi) - dpx
    my = met * np.sin(mphi) - dpy
    reco = ak.with_field(reco, np.hypot(mx, my).astype(np.float32), "MET_pt")
    return ak.with_field(reco, np.arctan2(my, mx).astype(np.float32), "MET_phi")


def _sum_xy(pt: ak.Array, phi: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    return (ak.to_numpy(ak.sum(pt * np.cos(phi), axis=1)),
            ak.to_numpy(ak.sum(pt * np.sin(phi), axis=1)))


def _reorder(reco: ak.Array, prefix: str) -> ak.Array:
    order = ak.argsort(reco[f"{prefix}_pt"], axis=1, ascending=False)
    for name in [f for f in reco.fields if f.startswith(prefix + "_")]:
        reco = ak.with_field(reco, reco[name][order], name)
    return reco


#: muon-scale fault region: eta in (0.3, 1.2), phi in (0.5, 1.7) (part of one barrel wheel)
MUON_SCALE_BOX = (0.3, 1.2, 0.5, 1.7)
MUON_SCALE = 1.3  #: default size of muon_scale: the pT factor
#: dead calorimeter region (default size): eta in (-1.5, 0.0), phi in (-2.5, -1.0); the size
#: of dead_calo is the phi width, starting at phi = -2.5 (1.5 rad = this box)
DEAD_CALO_BOX = (-1.5, 0.0, -2.5, -1.0)
#: hot calorimeter cell: position, the fraction of events with a fake jet, and the default size
#: (mean of the exponential part of the fake-jet pT, 20 GeV + Exp(mean))
HOT_CELL_ETA, HOT_CELL_PHI, HOT_CELL_RATE, HOT_CELL_MEAN_PT = 1.8, 2.6, 0.4, 60.0
HOT_CELL_MIN_PT = 20.0  #: fixed part of the fake-jet pT [GeV]
ELECTRON_PHI_SHIFT = 0.6  #: wrong-phi fault (default size): electron phi rotated by this [rad]


def _muon_scale(reco: ak.Array, rng: np.random.Generator, size: float = MUON_SCALE) -> ak.Array:
    if size == 1.0:  # identity: leave the events bit for bit untouched
        return reco
    inside = _in_box(reco.Muon_eta, reco.Muon_phi, MUON_SCALE_BOX)
    new = ak.where(inside, reco.Muon_pt * size, reco.Muon_pt)
    dpx, dpy = _sum_xy(new - reco.Muon_pt, reco.Muon_phi)
    reco = _met_shift(ak.with_field(reco, ak.values_astype(new, np.float32), "Muon_pt"), dpx, dpy)
    return _reorder(reco, "Muon")


def _dead_region(eta: Any, phi: Any, width: float) -> Any:
    """Inside the dead calorimeter region of phi width ``width`` (wraps around at +-pi)."""
    e0, e1, p0, _ = DEAD_CALO_BOX
    p1 = p0 + width
    in_phi = ((phi > p0) & (phi < p1)) | (phi < p1 - 2 * np.pi)
    return (eta > e0) & (eta < e1) & in_phi


def _dead_calo(reco: ak.Array, rng: np.random.Generator,
               size: float = DEAD_CALO_BOX[3] - DEAD_CALO_BOX[2]) -> ak.Array:
    if size == 0.0:  # no dead region
        return reco
    dead = _dead_region(reco.Jet_eta, reco.Jet_phi, size)
    dpx, dpy = _sum_xy(reco.Jet_pt[dead], reco.Jet_phi[dead])
    for name in [f for f in reco.fields if f.startswith("Jet_")]:
        reco = ak.with_field(reco, reco[name][~dead], name)
    edead = _dead_region(reco.Electron_eta, reco.Electron_phi, size)
    epx, epy = _sum_xy(reco.Electron_pt[edead], reco.Electron_phi[edead])
    for name in [f for f in reco.fields if f.startswith("Electron_")]:
        reco = ak.with_field(reco, reco[name][~edead], name)
    return _met_shift(reco, -(dpx + epx), -(dpy + epy))


def _hot_cell(reco: ak.Array, rng: np.random.Generator,
              size: float = HOT_CELL_MEAN_PT) -> ak.Array:
    n = len(reco)
    hot = rng.random(n) < HOT_CELL_RATE
    pt = np.where(hot, HOT_CELL_MIN_PT + rng.exponential(size, n), 0.0).astype(np.float32)
    counts = hot.astype(np.int64)
    add = {
        "pt": ak.unflatten(pt[hot], counts),
        "eta": ak.unflatten(np.full(int(hot.sum()), HOT_CELL_ETA, np.float32), counts),
        "phi": ak.unflatten(np.full(int(hot.sum()), HOT_CELL_PHI, np.float32), counts),
        "mass": ak.unflatten(np.zeros(int(hot.sum()), np.float32), counts),
    }
    for f, extra in add.items():
        name = f"Jet_{f}"
        reco = ak.with_field(reco, ak.concatenate([reco[name], extra], axis=1), name)
    reco = _met_shift(reco, pt * np.cos(HOT_CELL_PHI), pt * np.sin(HOT_CELL_PHI))
    return _reorder(reco, "Jet")


def _electron_phi(reco: ak.Array, rng: np.random.Generator,
                  size: float = ELECTRON_PHI_SHIFT) -> ak.Array:
    if size == 0.0:  # identity: leave the events bit for bit untouched
        return reco
    old = reco.Electron_phi
    new = ak.values_astype(wrap_phi(old + size), np.float32)
    ox, oy = _sum_xy(reco.Electron_pt, old)
    nx, ny = _sum_xy(reco.Electron_pt, new)
    reco = ak.with_field(reco, new, "Electron_phi")
    return _met_shift(reco, nx - ox, ny - oy)


def _builtin_faults() -> list[EventFault]:
    dead_width = DEAD_CALO_BOX[3] - DEAD_CALO_BOX[2]
    return [
        EventFault(
            "muon_scale", 1,
            f"muon pT scale x{MUON_SCALE} for muons in eta {MUON_SCALE_BOX[:2]}, "
            f"phi {MUON_SCALE_BOX[2:]} (mis-aligned muon chamber / wrong B-field map)",
            _muon_scale, faulty_type="muons", default_size=MUON_SCALE,
            size_help="pT factor of the muons in the faulty region (1 = no fault)",
            sizes=(1.3, 2.0, 3.0, 5.0, 10.0, 30.0), size_ok=lambda s: 0 < s <= 100,
            size_rule="0 < size <= 100", prefilter_scale=lambda s: max(s, 1.0)),
        EventFault(
            "dead_calo", 2,
            f"dead calorimeter region eta {DEAD_CALO_BOX[:2]}, phi {DEAD_CALO_BOX[2:]}: jets and "
            "electrons there are lost (their momentum reappears as MET)", _dead_calo,
            faulty_type="jets", default_size=dead_width,
            size_help=f"phi width of the dead region in rad, eta {DEAD_CALO_BOX[:2]}, from phi "
                      f"{DEAD_CALO_BOX[2]} (0 = no fault, 2 pi = the whole ring)",
            sizes=(0.5, 1.0, 1.5, 3.0, 6.0), size_ok=lambda s: 0 <= s <= 2 * np.pi,
            size_rule="0 <= size <= 2 pi"),
        EventFault(
            "hot_cell", 3,
            f"hot calorimeter cell at eta={HOT_CELL_ETA}, phi={HOT_CELL_PHI}: in "
            f"{HOT_CELL_RATE:.0%} of events a fake jet of {HOT_CELL_MIN_PT:g} + "
            f"Exp({HOT_CELL_MEAN_PT}) GeV (with matching fake MET)", _hot_cell,
            faulty_type="jets", default_size=HOT_CELL_MEAN_PT,
            size_help=f"mean of the exponential part of the fake-jet pT in GeV (fake jet = "
                      f"{HOT_CELL_MIN_PT:g} + Exp(size) GeV in {HOT_CELL_RATE:.0%} of events; "
                      f"no identity: size 0 still adds {HOT_CELL_MIN_PT:g} GeV fake jets)",
            sizes=(20.0, 60.0, 120.0, 300.0), size_ok=lambda s: 0 <= s <= 10_000,
            size_rule="0 <= size <= 10000 GeV"),
        EventFault(
            "electron_phi", 4,
            f"electron phi rotated by {ELECTRON_PHI_SHIFT} rad (wrong tracker-ECAL alignment "
            "constant); MET recomputed from the wrong direction", _electron_phi,
            faulty_type="electrons", default_size=ELECTRON_PHI_SHIFT,
            size_help="rotation of every electron's phi in rad (0 = no fault)",
            sizes=(0.1, 0.3, 0.6, 1.5, 3.0), size_ok=lambda s: abs(s) <= np.pi,
            size_rule="-pi <= size <= pi"),
    ]


def register_builtins() -> None:
    """Register the built-in detector faults (idempotent; lookups do it by themselves)."""
    _FAULTS.available()
