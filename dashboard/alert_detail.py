"""The drill-down of one alert: its loss contributions and its objects for the event display.

Owns ``contributions`` (per-object and per-type loss contributions of an AE alert, largest
first, with a one-line note), ``event_objects`` (the alert's objects as columns for the
eta-phi and transverse views, MET apart), ``object_rows`` (the raw object table) and
``object_type`` (display type of an object label such as ``mu2``). All are pure functions
of an ``AlertRecord`` (or ``None`` when nothing is selected); which alert is selected is
``state.DashboardState``'s business.
"""

from __future__ import annotations

import math
from typing import Any

from hotline.alerts.records import AlertRecord

__all__ = ["TYPE_OF_PREFIX", "contributions", "event_objects", "object_rows", "object_type"]

#: object-label prefix -> display type (met, e1.., mu1.., j1..; also g/tau if a spec adds them)
TYPE_OF_PREFIX = {"met": "MET", "e": "electron", "mu": "muon", "j": "jet", "g": "photon",
                  "pho": "photon", "tau": "tau"}


def object_type(label: str) -> str:
    """Display type of an object label such as ``mu2`` -> ``muon``."""
    prefix = label.rstrip("0123456789").lower()
    return TYPE_OF_PREFIX.get(prefix, prefix or "other")


def contributions(a: AlertRecord | None) -> dict[str, Any]:
    """Per-object and per-type loss contributions of ``a`` (largest first) and a note."""
    out: dict[str, Any] = {"objects": {"label": [], "value": [], "type": []},
                           "types": {"label": [], "value": []}, "note": ""}
    if a is None:
        out["note"] = "select an alert in the table"
        return out
    c = a.payload.get("contributions") or {}
    if not c:
        out["note"] = (f"{a.rule} is a {a.kind} rule: no loss contributions "
                       "(only autoencoder alerts have them)")
        return out
    objs = sorted((c.get("objects") or {}).items(), key=lambda kv: -float(kv[1]))
    types = sorted((c.get("types") or {}).items(), key=lambda kv: -float(kv[1]))
    out["objects"] = {"label": [k for k, _ in objs], "value": [float(v) for _, v in objs],
                      "type": [object_type(k) for k, _ in objs]}
    out["types"] = {"label": [k for k, _ in types], "value": [float(v) for _, v in types]}
    total = sum(out["objects"]["value"]) or 1.0
    top = ", ".join(f"{k} {float(v) / total:.0%}" for k, v in objs[:3])
    out["note"] = f"score {a.score:.3g}: largest contributions {top}" if a.score else top
    exp = a.payload.get("explained_by")
    if exp and types and exp != types[0][0]:
        out["note"] += (f"; points to **{exp}** ({types[0][0]} is derived from the visible "
                        f"objects and {exp} are anomalous too)")
    elif exp:
        out["note"] += f"; points to **{exp}**"
    return out


def event_objects(a: AlertRecord | None) -> dict[str, Any]:
    """Objects of ``a`` for the event display and raw table; MET separately."""
    cols: dict[str, list] = {"label": [], "type": [], "pt": [], "eta": [], "phi": [],
                             "px": [], "py": [], "size": []}
    out: dict[str, Any] = {"objects": cols, "met": None, "title": ""}
    if a is None:
        return out
    out["title"] = (f"run {a.run}, LS {a.lumi}, event {a.event} - {a.rule}"
                    + (f", Z = {a.significance:.1f}" if a.significance else ""))
    contrib = (a.payload.get("contributions") or {}).get("objects") or {}
    for entry in a.payload.get("objects") or []:
        try:
            label, pt, eta, phi = entry[0], float(entry[1]), float(entry[2]), float(entry[3])
        except (IndexError, TypeError, ValueError):
            continue
        if object_type(label) == "MET":
            out["met"] = {"pt": pt, "phi": phi, "px": pt * math.cos(phi),
                          "py": pt * math.sin(phi)}
            continue
        cols["label"].append(label)
        cols["type"].append(object_type(label))
        cols["pt"].append(pt)
        cols["eta"].append(eta)
        cols["phi"].append(phi)
        cols["px"].append(pt * math.cos(phi))
        cols["py"].append(pt * math.sin(phi))
        cols["size"].append(8 + 6 * math.sqrt(max(pt, 0.0)) / 2)
    cols["contribution"] = [float(contrib.get(lbl, float("nan"))) for lbl in cols["label"]]
    return out


def object_rows(a: AlertRecord | None) -> list[dict[str, Any]]:
    """The raw object table of ``a`` (MET first)."""
    if a is None:
        return []
    contrib = (a.payload.get("contributions") or {}).get("objects") or {}
    rows = []
    for entry in a.payload.get("objects") or []:
        if len(entry) < 4:
            continue
        rows.append({"object": entry[0], "type": object_type(entry[0]),
                     "pt": float(entry[1]), "eta": float(entry[2]), "phi": float(entry[3]),
                     "contribution": float(contrib.get(entry[0], float("nan")))})
    return rows
