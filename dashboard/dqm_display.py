"""How a DQM alert's occupancy map is drawn: hardware coordinates and flagged-unit boxes.

Owns ``map_frame(payload)``: where the map image goes and how its axes are labelled, from
the subsystem's geometry (``detectors.geometry``, by the payload's ``subsystem``):

* an eta-phi grid (calorimeter regions; image rows = phi, columns = eta): x is eta and y
  is phi in radians, the image placed at the grid's real eta and phi edges;
* the muon barrel (rows = wheel x station, columns = sector x channel): x ticks at the
  sector centres labelled S01..S12 with lines between sectors, y ticks at every row
  labelled with its wheel and station (W-2 MB1 ..) with lines between wheels;
* any other layout: the payload's row and column labels as ticks.

and ``unit_boxes(payload, geometry)``, one rectangle (in the same coordinates) around the
cells of each flagged hardware unit. Pure: no Panel, no Bokeh.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["geometry_of", "map_frame", "unit_boxes"]


def geometry_of(payload: dict[str, Any]) -> Any:
    """The registered geometry of the payload's subsystem, or None."""
    from hotline.detectors.geometry import get_geometry
    from hotline.errors import HotlineError

    sub = payload.get("subsystem")
    if not sub:
        return None
    try:
        return get_geometry(str(sub))
    except (HotlineError, ValueError):
        return None


def _ticks(labels: list[str], every: int = 1) -> dict[float, str]:
    return {i + 0.5: str(lb) for i, lb in enumerate(labels) if i % every == 0}


def map_frame(payload: dict[str, Any], geo: Any = None) -> dict[str, Any]:
    """Placement and axes of the payload's map: ``x0, y0, dw, dh`` (image corner and size
    in axis units), ``x_label``, ``y_label``, ``x_ticks`` / ``y_ticks`` ({position: label},
    empty: numeric axis), ``x_lines`` / ``y_lines`` (boundaries to draw) and ``layout``."""
    rows = [str(x) for x in payload.get("rows") or []]
    cols = [str(x) for x in payload.get("cols") or []]
    shape = payload.get("shape") or [len(rows), len(cols)]
    h, w = int(shape[0]), int(shape[1])
    out: dict[str, Any] = {"x0": 0.0, "y0": 0.0, "dw": float(w), "dh": float(h),
                           "x_label": "column", "y_label": "row", "x_ticks": {}, "y_ticks": {},
                           "x_lines": [], "y_lines": [], "layout": ""}
    geo = geo if geo is not None else geometry_of(payload)
    layout = getattr(geo, "layout", "")
    out["layout"] = layout
    if geo is not None and tuple(geo.shape) != (h, w):
        geo, layout = None, ""
    if layout == "eta_phi_grid":
        p = geo.layout_params
        lo, hi = float(p["eta_min"]), float(p["eta_max"])
        out.update(x0=lo, dw=hi - lo, y0=-math.pi, dh=2 * math.pi, x_label="eta",
                   y_label="phi [rad]")
        return out
    if layout == "muon_barrel":
        p = geo.layout_params
        ns, nst, nch = int(p["sectors"]), int(p["stations"]), int(p["channels_per_chamber"])
        nw = int(p["wheels"])
        out["x_ticks"] = {(s + 0.5) * nch: f"S{s + 1:02d}" for s in range(ns)}
        out["x_lines"] = [float(s * nch) for s in range(1, ns)]
        out["y_ticks"] = _ticks(rows)
        out["y_lines"] = [float(k * nst) for k in range(1, nw)]
        out.update(x_label=f"sector (phi; {nch} channels each)",
                   y_label="wheel / station")
        return out
    out["x_ticks"] = _ticks(cols, max(1, len(cols) // 16))
    out["y_ticks"] = _ticks(rows, max(1, len(rows) // 20))
    return out


def unit_boxes(payload: dict[str, Any], geo: Any = None) -> list[dict[str, Any]]:
    """One box per flagged unit of the payload (``top_units``) around its cells, in the
    coordinates of ``map_frame``: left, right, bottom, top, label. Units the geometry does
    not know are skipped."""
    geo = geo if geo is not None else geometry_of(payload)
    if geo is None:
        return []
    frame = map_frame(payload, geo)
    h, w = geo.shape
    sx, sy = frame["dw"] / w, frame["dh"] / h
    out = []
    for t in payload.get("top_units") or []:
        try:
            level = geo.level(str(t.get("level", "")))
            unit = level.names.index(str(t.get("unit", "")))
        except (ValueError, KeyError, Exception):  # noqa: BLE001 - an unknown unit: no box
            continue
        cells = level.cells(unit)
        if not cells.size:
            continue
        r, c = np.divmod(cells, w)
        out.append({"left": frame["x0"] + float(c.min()) * sx,
                    "right": frame["x0"] + float(c.max() + 1) * sx,
                    "bottom": frame["y0"] + float(r.min()) * sy,
                    "top": frame["y0"] + float(r.max() + 1) * sy,
                    "label": f"{t.get('level', '')} {t.get('unit', '')}"})
    return out
