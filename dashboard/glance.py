"""The run at a glance: the per-lumisection status strip, the quantity x lumisection timeline
of significances, and the eta-phi map of the objects of many alerts.

Owns ``strip_columns`` (one cell per lumisection of a ``RunStatus``: level, colour, reason,
events), ``timeline_columns`` (one cell per quantity tested and lumisection: the signed
significance ``z`` of the exact tail probability the status engine computed, deficits
negative, with the p-value before and after the per-lumisection correction, the level and
the finding in words; ``quantity_order`` sorts its rows), ``object_map`` (a 2-D histogram in
eta and phi of the objects of a list of alerts, MET apart, with the hottest cell named) and
``lumi_label``. All pure functions over the status vocabulary (``alerts.lumi_status``) and
``AlertRecord``s; which lumisections are selected is ``state.DashboardState``'s business.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hotline.alerts.lumi_status import Finding, RunStatus
from hotline.alerts.records import AlertRecord, significance_from_p
from hotline.dashboard.rates import STATUS_COLORS

__all__ = ["ETA_BINS", "PHI_BINS", "Z_CAP", "finding_z", "lumi_label", "object_map",
           "quantity_order", "strip_columns", "timeline_columns"]

#: |Z| shown at most (a p-value of 0 or below 1e-300 is drawn here and written "> 37")
Z_CAP = 40.0
#: object map binning: eta in [-5, 5], phi in [-pi, pi]
ETA_BINS, PHI_BINS = 40, 36
ETA_RANGE = (-5.0, 5.0)


def lumi_label(first: int | None, last: int | None) -> str:
    """``"LS 12"``, ``"LS 12-14"`` or ``"all lumisections"``."""
    if first is None or last is None:
        return "all lumisections"
    return f"LS {first}" if first == last else f"LS {first}-{last}"


def strip_columns(status: RunStatus) -> dict[str, list[Any]]:
    """One cell per lumisection of ``status``: lumi, level, color, reason, n_events."""
    out: dict[str, list[Any]] = {"lumi": [], "level": [], "color": [], "reason": [], "n": []}
    for ls in status.lumis:
        out["lumi"].append(int(ls.lumi))
        out["level"].append(ls.level)
        out["color"].append(STATUS_COLORS.get(ls.level, STATUS_COLORS["idle"]))
        out["reason"].append(ls.reason or ("as expected" if ls.level == "green" else ls.level))
        out["n"].append(int(ls.n_events))
    return out


def finding_z(f: Finding) -> float:
    """Signed significance of ``f``: Z of its exact p-value (uncorrected), negative for a
    deficit (observed below expected), capped at ``Z_CAP``."""
    z = significance_from_p(min(max(float(f.p_value), 0.0), 1.0))
    z = Z_CAP if z is None or math.isinf(z) else min(max(z, 0.0), Z_CAP)
    return -z if f.observed < f.expected else z


def _z_text(z: float) -> str:
    return f"> {Z_CAP - 3:.0f}" if abs(z) >= Z_CAP else f"{z:+.2f}"


def timeline_columns(status: RunStatus) -> dict[str, list[Any]]:
    """One cell per (quantity, lumisection) tested in ``status`` (``LumiStatus.tested``,
    or its shown findings from older producers): quantity, lumi, z, z_text, p, p_corr,
    level, text. Quantities are ordered: AE thresholds, rules, DQM, input, the rest."""
    out: dict[str, list[Any]] = {"quantity": [], "lumi": [], "z": [], "z_text": [], "p": [],
                                 "p_corr": [], "level": [], "text": []}
    for ls in status.lumis:
        for f in ls.tested or ls.findings:
            if f.kind in ("unavailable", "trend"):
                continue
            z = finding_z(f)
            out["quantity"].append(f.quantity)
            out["lumi"].append(int(ls.lumi))
            out["z"].append(z)
            out["z_text"].append(_z_text(z))
            out["p"].append(f"{f.p_value:.2e}")
            out["p_corr"].append(f"{f.p_corrected:.2e}")
            out["level"].append(f.level)
            out["text"].append(f.text + (f" - {f.where}" if f.where else ""))
    return out


def quantity_order(quantities: Sequence[str]) -> list[str]:
    """Distinct quantities in display order (AE, rules, DQM, input, others), top first."""
    def key(q: str) -> tuple[int, str]:
        if q.startswith("rule:"):
            return 1, q
        if q.startswith("dqm:"):
            return 2, q
        if q in ("input_rate", "quarantine"):
            return 3, q
        if q.startswith(("ae", "ae_")) or ":" not in q:
            return 0, q
        return 4, q
    return sorted(dict.fromkeys(quantities), key=key)


def object_map(alerts: Sequence[AlertRecord]) -> dict[str, Any]:
    """A 2-D histogram (``counts[phi_bin, eta_bin]``) of the objects of ``alerts`` (every
    object of the payload but MET), the bin edges, the number of alerts and objects, and
    the hottest cell (``hot``: eta and phi centre, count, share of the objects) or None."""
    etas: list[float] = []
    phis: list[float] = []
    n_alerts = 0
    for a in alerts:
        objs = (a.payload or {}).get("objects") or []
        used = False
        for entry in objs:
            try:
                label, eta, phi = str(entry[0]), float(entry[2]), float(entry[3])
            except (IndexError, TypeError, ValueError):
                continue
            if label.lower().startswith("met") or not (math.isfinite(eta)
                                                       and math.isfinite(phi)):
                continue
            etas.append(eta)
            phis.append(phi)
            used = True
        n_alerts += used
    eta_edges = np.linspace(*ETA_RANGE, ETA_BINS + 1)
    phi_edges = np.linspace(-math.pi, math.pi, PHI_BINS + 1)
    counts, _, _ = np.histogram2d(np.clip(phis, -math.pi, math.pi - 1e-9) if phis else [],
                                  np.clip(etas, ETA_RANGE[0], ETA_RANGE[1] - 1e-9)
                                  if etas else [], bins=[phi_edges, eta_edges])
    hot = None
    n = len(etas)
    if n:
        i, j = np.unravel_index(int(np.argmax(counts)), counts.shape)
        c = float(counts[i, j])
        hot = {"eta": float(0.5 * (eta_edges[j] + eta_edges[j + 1])),
               "phi": float(0.5 * (phi_edges[i] + phi_edges[i + 1])),
               "count": int(c), "share": c / n,
               "expected": n / counts.size}
    return {"counts": counts, "eta_edges": eta_edges, "phi_edges": phi_edges,
            "n_alerts": n_alerts, "n_objects": n, "hot": hot}
