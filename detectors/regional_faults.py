"""Regional calibration faults: an object type's pT response or phi changed in one region.

Owns the reco-level faults of the lumisection-distribution studies that have no
per-event footprint (issue: "must be caught where they are visible: in distributions
accumulated per lumisection"): ``scale_pt`` (a response change, e.g. jets x0.85 in one
eta-phi quadrant, muons x1.3) and ``rotate_phi`` (a phi mis-calibration, e.g. electrons
rotated by 0.2 rad in one region). Both act on the objects of one collection inside an
eta-phi ``Box`` (phi ranges may wrap around +-pi), keep the collection pT-ordered and
MET consistent with the changed objects, as a particle-flow MET would. The named
detector faults of ``detectors.event_faults`` are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from hotline.detectors.fastsim import wrap_phi

__all__ = ["EVERYWHERE", "Box", "rotate_phi", "scale_pt"]


@dataclass(frozen=True)
class Box:
    """``eta_lo < eta < eta_hi`` and phi in (``phi_lo``, ``phi_hi``) (wrapped to +-pi)."""

    eta_lo: float = -np.inf
    eta_hi: float = np.inf
    phi_lo: float = -np.pi
    phi_hi: float = np.pi

    def contains(self, eta: Any, phi: Any) -> Any:
        d = wrap_phi(phi - self.phi_lo)
        width = self.phi_hi - self.phi_lo
        in_phi = (d >= 0) & (d < width) if width < 2 * np.pi else (phi == phi)
        return (eta > self.eta_lo) & (eta < self.eta_hi) & in_phi


EVERYWHERE = Box()


def _xy(pt: ak.Array, phi: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    return (ak.to_numpy(ak.sum(pt * np.cos(phi), axis=1)),
            ak.to_numpy(ak.sum(pt * np.sin(phi), axis=1)))


def _met_after(reco: ak.Array, dpx: np.ndarray, dpy: np.ndarray) -> ak.Array:
    """MET after the visible momentum changed by (dpx, dpy) per event."""
    if "MET_pt" not in reco.fields or "MET_phi" not in reco.fields:
        return reco
    met = ak.to_numpy(reco.MET_pt).astype(np.float64)
    mphi = ak.to_numpy(reco.MET_phi).astype(np.float64)
    mx, my = met * np.cos(mphi) - dpx, met * np.sin(mphi) - dpy
    reco = ak.with_field(reco, np.hypot(mx, my).astype(np.float32), "MET_pt")
    return ak.with_field(reco, np.arctan2(my, mx).astype(np.float32), "MET_phi")


def scale_pt(reco: ak.Array, collection: str, factor: float,
             box: Box = EVERYWHERE) -> ak.Array:
    """``collection``'s objects inside ``box`` with their pT times ``factor``."""
    pt, eta, phi = (reco[f"{collection}_{v}"] for v in ("pt", "eta", "phi"))
    new = ak.where(box.contains(eta, phi), pt * factor, pt)
    dpx, dpy = _xy(new - pt, phi)
    reco = ak.with_field(reco, ak.values_astype(new, np.float32), f"{collection}_pt")
    order = ak.argsort(reco[f"{collection}_pt"], axis=1, ascending=False)
    for name in [f for f in reco.fields if f.startswith(collection + "_")]:
        reco = ak.with_field(reco, reco[name][order], name)
    return _met_after(reco, dpx, dpy)


def rotate_phi(reco: ak.Array, collection: str, shift: float,
               box: Box = EVERYWHERE) -> ak.Array:
    """``collection``'s objects inside ``box`` with their phi rotated by ``shift`` rad."""
    pt, eta, phi = (reco[f"{collection}_{v}"] for v in ("pt", "eta", "phi"))
    new = ak.values_astype(ak.where(box.contains(eta, phi), wrap_phi(phi + shift), phi),
                           np.float32)
    ox, oy = _xy(pt, phi)
    nx, ny = _xy(pt, new)
    return _met_after(ak.with_field(reco, new, f"{collection}_phi"), nx - ox, ny - oy)
