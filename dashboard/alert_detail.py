"""The drill-down of one alert: why it fired, its loss contributions, its objects.

Owns ``contributions`` (per-object and per-type loss contributions of an AE alert, largest
first, with a one-line note), ``classic_why`` (a classic alert's cut, its value against the
threshold and the objects that fired it, from the rule's definition and the alert's
objects), ``dqm_why`` (a DQM alert's map score against its threshold, its p-value -- a
bound when the reference cannot resolve it -- and the flagged hardware units), ``p_text``
(an alert's p-value and significance as shown: ``"< 2.0e-06"`` when floored),
``event_objects`` (the alert's objects as columns for the eta-phi and transverse views, MET
apart), ``object_rows`` (the raw object table) and ``object_type`` (display type of an
object label such as ``mu2``). All are pure functions of an ``AlertRecord`` (or ``None``
when nothing is selected); which alert is selected is ``state.DashboardState``'s business.
"""

from __future__ import annotations

import math
from typing import Any

from hotline.alerts.records import AlertRecord

__all__ = ["TYPE_OF_PREFIX", "classic_why", "contributions", "dqm_why", "event_objects",
           "is_floored", "object_rows", "object_type", "p_text"]

#: object-label prefix -> display type (met, e1.., mu1.., j1..; also g/tau if a spec adds them)
TYPE_OF_PREFIX = {"met": "MET", "e": "electron", "mu": "muon", "j": "jet", "g": "photon",
                  "pho": "photon", "tau": "tau"}


def object_type(label: str) -> str:
    """Display type of an object label such as ``mu2`` -> ``muon``."""
    prefix = label.rstrip("0123456789").lower()
    return TYPE_OF_PREFIX.get(prefix, prefix or "other")


def is_floored(a: AlertRecord) -> bool:
    """True when ``a``'s p-value is the smallest its reference supports (a bound, not a
    measurement): DQM payloads name that floor (``p_floor``)."""
    floor = (a.payload or {}).get("p_floor")
    return (a.p_value is not None and floor is not None and float(floor) > 0
            and a.p_value <= float(floor) * (1 + 1e-6))


def p_text(a: AlertRecord) -> tuple[str, str]:
    """(p-value, significance Z) of ``a`` as shown: ``"< 2.0e-06"`` / ``"> 4.61"`` when
    the p-value is the reference's floor, ``"-"`` when there is none."""
    if a.p_value is None:
        return "-", "-"
    z = a.significance
    zs = "-" if z is None else ("> 37" if math.isinf(z) else f"{min(z, 99.0):.2f}")
    if is_floored(a):
        return f"< {a.p_value:.1e}", (f"> {zs}" if zs != "-" else zs)
    return f"{a.p_value:.1e}", zs


def _prefix(label: str) -> str:
    return label.rstrip("0123456789").lower()


def _objects(a: AlertRecord) -> list[tuple[str, float, float, float]]:
    out = []
    for entry in (a.payload or {}).get("objects") or []:
        try:
            out.append((str(entry[0]), float(entry[1]), float(entry[2]), float(entry[3])))
        except (IndexError, TypeError, ValueError):
            continue
    return out


def _collection_label(collection: str) -> str:
    from hotline.detectors.spec import DEFAULT_SPEC

    return DEFAULT_SPEC.label_for(collection)


def _gev(x: float) -> str:
    return f"{x:,.0f} GeV" if abs(x) >= 10 else f"{x:.1f} GeV"


def classic_why(a: AlertRecord | None, rule: Any = None) -> dict[str, Any]:
    """Why the classic alert ``a`` fired: ``cut`` (the rule's cut in words), ``verdict``
    (the value against the threshold, e.g. ``"MET 365 GeV > 250 GeV"``), ``fired`` (rows
    of the objects that fired it: label, type, pt, eta, phi), ``note`` and, when the rule
    is known, ``quantity`` / ``value`` / ``threshold`` / ``unit`` (the cut's numbers).
    ``rule`` is the rule object of the menu (``alerts.rules``: count, scalar or sum-pT
    kinds); without it (a rule the dashboard's menu does not know) the objects are listed
    without a cut."""
    out: dict[str, Any] = {"cut": "", "verdict": "", "fired": [], "note": "", "quantity": "",
                           "value": None, "threshold": None, "unit": ""}
    if a is None:
        out["note"] = "select an alert in the table"
        return out
    objs = _objects(a)

    def rows(sel: list[tuple[str, float, float, float]]) -> list[dict[str, Any]]:
        return [{"object": lb, "type": object_type(lb), "pt": pt, "eta": eta, "phi": phi}
                for lb, pt, eta, phi in sel]

    coll = getattr(rule, "collection", None)
    if rule is not None and hasattr(rule, "min_value") and hasattr(rule, "branch"):
        branch = str(rule.branch)
        name = branch.removesuffix("_pt").replace("_", " ")
        unit = " GeV" if branch.endswith("_pt") else ""
        out["cut"] = f"{name} > {float(rule.min_value):g}{unit} ({branch})"
        label = _collection_label(branch.removesuffix("_pt")) if branch.endswith("_pt") else ""
        hit = [o for o in objs if _prefix(o[0]) == label] if label else []
        if hit:
            v = hit[0][1]
            out["verdict"] = (f"{name} {v:,.0f}{unit} {'>' if v > rule.min_value else '<='} "
                              f"{float(rule.min_value):g}{unit}")
            out["fired"] = rows(hit[:1])
            out.update(quantity=name, value=v, threshold=float(rule.min_value),
                       unit=unit.strip())
        else:
            out["verdict"] = f"{name} above {float(rule.min_value):g}{unit} (value not stored)"
    elif rule is not None and coll and hasattr(rule, "min_sum"):
        label = _collection_label(str(coll))
        eta_cut = getattr(rule, "max_abs_eta", None)
        sel = [o for o in objs if _prefix(o[0]) == label and o[1] > rule.object_min_pt
               and (eta_cut is None or abs(o[2]) < eta_cut)]
        total = sum(o[1] for o in sel)
        kind = object_type(label + "1")
        out["cut"] = (f"scalar sum of {kind} pT (pT > {float(rule.object_min_pt):g} GeV"
                      + (f", |eta| < {eta_cut:g}" if eta_cut is not None else "")
                      + f") > {float(rule.min_sum):g} GeV")
        rel = ">" if total > rule.min_sum else ">="
        out["verdict"] = (f"sum pT {total:,.0f} GeV {rel} {float(rule.min_sum):g} GeV "
                          f"({len(sel)} {kind}s)")
        if total <= rule.min_sum:
            out["note"] = ("the stored objects hold only the leading ones; the full sum "
                           "passed the cut")
        out["fired"] = rows(sel)
        out.update(quantity="sum pT", value=total, threshold=float(rule.min_sum), unit="GeV")
    elif rule is not None and coll and hasattr(rule, "min_count"):
        label = _collection_label(str(coll))
        eta_cut = getattr(rule, "max_abs_eta", None)
        sel = [o for o in objs if _prefix(o[0]) == label and o[1] > rule.min_pt
               and (eta_cut is None or abs(o[2]) < eta_cut)]
        kind = object_type(label + "1")
        n = int(rule.min_count)
        out["cut"] = (f"at least {n} {kind}{'s' if n > 1 else ''} with pT > "
                      f"{float(rule.min_pt):g} GeV"
                      + (f" and |eta| < {eta_cut:g}" if eta_cut is not None else ""))
        lead = ", ".join(f"{o[0]} {_gev(o[1])}" for o in sel[:4])
        out["verdict"] = (f"{len(sel)} {kind}{'s' if len(sel) != 1 else ''} above "
                          f"{float(rule.min_pt):g} GeV {'>=' if len(sel) >= n else '<'} {n}"
                          + (f": {lead}" if lead else ""))
        out["fired"] = rows(sel)
        out.update(quantity=f"{kind}s", value=float(len(sel)), threshold=float(n), unit="")
    else:
        out["note"] = (f"rule {a.rule} is not in this dashboard's rule menu: its cut is "
                       "unknown here; the event's objects are listed")
        out["fired"] = rows(objs)
    return out


def dqm_why(a: AlertRecord | None) -> dict[str, Any]:
    """Why the DQM alert ``a`` fired: ``verdict`` (map score against the threshold and the
    p-value, a bound when floored), ``units`` (the flagged hardware units: level, unit,
    share of the loss, -log10 p), ``note`` and ``quantity`` / ``value`` / ``threshold``
    (the map score and its threshold as numbers)."""
    out: dict[str, Any] = {"verdict": "", "units": [], "note": "", "quantity": "map score",
                           "value": None, "threshold": None, "unit": ""}
    if a is None:
        return out
    p = a.payload or {}
    thr = p.get("threshold")
    ps, zs = p_text(a)
    score = f"{a.score:.3g}" if a.score is not None else "?"
    out["value"] = a.score
    out["threshold"] = float(thr) if thr is not None else None
    out["verdict"] = (f"{p.get('title') or p.get('subsystem') or a.rule}: map score {score}"
                      + (f" > threshold {float(thr):.3g}" if thr is not None else "")
                      + f" (p {ps if ps.startswith('<') else '= ' + ps}, Z {zs})")
    if is_floored(a):
        out["note"] = ("the map score is beyond what the reference resolves: its p-value is "
                       f"only known to be below {a.p_value:.1e}; the units' own p-values "
                       "say how far")
    out["units"] = [{"level": str(t.get("level", "")), "unit": str(t.get("unit", "")),
                     "loss share": float(t.get("contribution", 0.0)),
                     "-log10 p": float(t.get("log10_p", 0.0))}
                    for t in p.get("top_units") or []]
    return out


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
    if a.kind == "dqm":
        cols["contribution"] = []
        out["title"] = (f"run {a.run}, LS {a.lumi} - {a.rule}: a lumisection's occupancy map, "
                        "not one event; see the DQM map")
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
