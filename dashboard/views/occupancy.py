"""Occupancy maps (DQM): the lumisection map, the conv-AE per-cell loss, the flagged units.

Shows the selected alert when it is a DQM alert, else the newest DQM alert of the selected
lumisections (status strip), else the newest DQM alert in the store: two heatmaps
(occupancy per event, and the per-cell loss of the conv-AE as the "why" overlay) in the
subsystem's hardware coordinates (``dqm_display``: calorimeter maps in eta and phi, muon
maps with labelled wheels, stations and sectors), the flagged units outlined on both, and
the table of the hardware units the alert names (level, unit, share of the loss, -log10
p). The map's p-value is written as a bound ("p < 2.0e-06") when it is the reference's
floor. Everything comes from the alert payload written by ``stream.dqm_pipeline``; the
dashboard never scores anything itself.

Showing another alert changes data only (no new Bokeh models, no layout change): the grid
lines between wheels and sectors are segments of one ``ColumnDataSource``, the tick
positions and labels are set on each axis's one ``FixedTicker``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
from bokeh.models import ColorBar, ColumnDataSource, FixedTicker, LinearColorMapper
from bokeh.palettes import Inferno256, Viridis256
from bokeh.plotting import figure

from hotline.alerts.records import AlertRecord
from hotline.dashboard.alert_detail import p_text
from hotline.dashboard.dqm_display import geometry_of, map_frame, unit_boxes
from hotline.dashboard.state import DashboardState

__all__ = ["OccupancyView", "dqm_image"]


def dqm_image(payload: dict[str, Any], key: str) -> np.ndarray | None:
    """The ``key`` grid (map / loss / expected) of a DQM payload as a 2-D array."""
    grid = payload.get(key)
    if grid is None:
        return None
    arr = np.asarray(grid, dtype=float)
    return arr if arr.ndim == 2 else None


class OccupancyView(pn.viewable.Viewer):
    """Latest (or selected) DQM alert: occupancy heatmap, loss overlay, flagged units."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.shown_id = ""
        self.note = pn.pane.Markdown(
            "**No DQM alert yet** - occupancy maps, the conv-AE per-cell loss and the "
            "flagged hardware units appear here when a DQM alert is raised "
            "(`hotline dqm inject` / `hotline dqm replay`).",
            css_classes=["hotline-occupancy"], margin=(0, 10))
        self.map_src = ColumnDataSource({"image": [], "x": [], "y": [], "dw": [], "dh": []})
        self.loss_src = ColumnDataSource({"image": [], "x": [], "y": [], "dw": [], "dh": []})
        self.box_src = ColumnDataSource({"left": [], "right": [], "bottom": [], "top": [],
                                         "label": []})
        self.grid_src = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": []})
        self.map_fig, self.map_cmap = self._heatmap("occupancy (hits per event)", Viridis256,
                                                    self.map_src, "hits / event")
        self.loss_fig, self.loss_cmap = self._heatmap("conv-AE loss per cell (why)",
                                                      Inferno256, self.loss_src, "loss")
        self.units = pn.widgets.Tabulator(
            value=_units_frame([]), disabled=True, show_index=False, height=160,
            sizing_mode="stretch_width", css_classes=["hotline-dqm-units"])
        state.param.watch(self._refresh, ["selected_id", "tick", "selection_version"])
        self._refresh()

    def _heatmap(self, title: str, palette: Any, source: ColumnDataSource,
                 unit: str) -> tuple[Any, Any]:
        cmap = LinearColorMapper(palette=palette, low=0, high=1)
        fig = figure(height=260, title=title, toolbar_location=None, tools="hover",
                     tooltips=[(unit, "@image{0.000}")], sizing_mode="stretch_width",
                     x_range=(0, 1), y_range=(0, 1))
        fig.image(image="image", x="x", y="y", dw="dw", dh="dh", color_mapper=cmap,
                  source=source)
        fig.segment("x0", "y0", "x1", "y1", source=self.grid_src, line_color="white",
                    line_alpha=0.6)
        fig.quad(left="left", right="right", bottom="bottom", top="top", source=self.box_src,
                 fill_alpha=0, line_color="#00e5ff", line_width=2.5)
        fig.add_layout(ColorBar(color_mapper=cmap, width=8, title=unit), "right")
        fig.xaxis.axis_label = "column"
        fig.yaxis.axis_label = "row"
        fig.yaxis.major_label_text_font_size = "7pt"
        fig.xgrid.grid_line_color = None
        fig.ygrid.grid_line_color = None
        fig.xaxis.ticker = FixedTicker(ticks=[])
        fig.yaxis.ticker = FixedTicker(ticks=[])
        return fig, cmap

    def _set_units(self, top: list[dict[str, Any]]) -> None:
        self.units.value = _units_frame(top)

    def current(self) -> AlertRecord | None:
        """The DQM alert to show: the selected one if it is DQM, else the newest DQM alert
        of the selected lumisections, else the newest DQM alert."""
        sel = self.state.selected
        if sel is not None and sel.kind == "dqm":
            return sel
        return self.state.latest_dqm()

    def _axes(self, fig: Any, frame: dict[str, Any]) -> None:
        fig.xaxis.axis_label, fig.yaxis.axis_label = frame["x_label"], frame["y_label"]
        for axis, ticks, start, span in ((fig.xaxis[0], frame["x_ticks"], frame["x0"],
                                          frame["dw"]),
                                         (fig.yaxis[0], frame["y_ticks"], frame["y0"],
                                          frame["dh"])):
            labels = ({float(k): v for k, v in ticks.items()} if ticks
                      else _numeric_ticks(start, span))
            axis.ticker.ticks = list(labels)
            axis.major_label_overrides = labels
        x0, x1 = frame["x0"], frame["x0"] + frame["dw"]
        y0, y1 = frame["y0"], frame["y0"] + frame["dh"]
        xs, ys = [float(x) for x in frame["x_lines"]], [float(y) for y in frame["y_lines"]]
        self.grid_src.data = {"x0": xs + [x0] * len(ys), "x1": xs + [x1] * len(ys),
                              "y0": [y0] * len(xs) + ys, "y1": [y1] * len(xs) + ys}
        fig.x_range.start, fig.x_range.end = x0, x1
        fig.y_range.start, fig.y_range.end = y0, y1

    def _refresh(self, *_: Any) -> None:
        alert = self.current()
        if alert is None:
            if self.shown_id and self.state.selected_lumis() is not None:
                self.note.object = f"*no DQM alert in {self.state.selection_label()}*"
            return
        if alert.id == self.shown_id:
            return
        self.shown_id = alert.id
        p = alert.payload
        geo = geometry_of(p)
        frame = map_frame(p, geo)
        self.box_src.data = _columns(unit_boxes(p, geo))
        for src, cmap, fig, key in ((self.map_src, self.map_cmap, self.map_fig, "map"),
                                    (self.loss_src, self.loss_cmap, self.loss_fig, "loss")):
            img = dqm_image(p, key)
            if img is None:
                src.data = {"image": [], "x": [], "y": [], "dw": [], "dh": []}
                continue
            src.data = {"image": [img], "x": [frame["x0"]], "y": [frame["y0"]],
                        "dw": [frame["dw"]], "dh": [frame["dh"]]}
            finite = img[np.isfinite(img)]
            cmap.low = float(finite.min()) if finite.size else 0.0
            cmap.high = float(finite.max()) if finite.size and finite.max() > cmap.low else 1.0
            self._axes(fig, frame)
        self._set_units(p.get("top_units") or [])
        ps, zs = p_text(alert)
        self.note.object = (
            f"**{p.get('title', p.get('subsystem', alert.rule))}** - run {alert.run}, "
            f"lumisection {alert.lumi}: flagged {p.get('summary') or 'no unit'} "
            f"(outlined; map p {ps if ps.startswith('<') else '= ' + ps}, Z {zs}, "
            f"{p.get('model', '')})")

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.note,
                         pn.FlexBox(pn.pane.Bokeh(self.map_fig, sizing_mode="stretch_width",
                                                  min_width=300, styles={"flex": "1 1 300px"}),
                                    pn.pane.Bokeh(self.loss_fig, sizing_mode="stretch_width",
                                                  min_width=300, styles={"flex": "1 1 300px"}),
                                    sizing_mode="stretch_width"),
                         self.units, sizing_mode="stretch_width")


def _numeric_ticks(start: float, span: float, n: int = 8) -> dict[float, str]:
    """About ``n`` round tick positions over [start, start + span], labelled as numbers."""
    if span <= 0:
        return {}
    raw = span / n
    mag = 10 ** np.floor(np.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = np.ceil(start / step) * step
    ticks = np.arange(first, start + span + step * 1e-9, step)
    return {float(t): f"{t:g}" for t in ticks}


def _units_frame(top: list[dict[str, Any]]) -> Any:
    import pandas as pd

    rows = [{"level": t.get("level", ""), "unit": t.get("unit", ""),
             "loss share": round(float(t.get("contribution", 0.0)), 3),
             "-log10 p": round(float(t.get("log10_p", 0.0)), 1)} for t in top]
    return pd.DataFrame(rows, columns=["level", "unit", "loss share", "-log10 p"])


def _columns(boxes: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {k: [b[k] for b in boxes] for k in ("left", "right", "bottom", "top", "label")}
