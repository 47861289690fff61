"""Occupancy maps (DQM): the lumisection map, the conv-AE per-cell loss, the flagged units.

Shows the selected alert when it is a DQM alert, else the newest DQM alert in the store:
two heatmaps (occupancy per event, and the per-cell loss of the conv-AE as the "why"
overlay) with the row/column labels of the subsystem geometry, and the table of the
hardware units the alert names (level, unit, share of the loss, -log10 p). Everything
comes from the alert payload written by ``stream.dqm_pipeline`` (map, loss, rows, cols,
top_units); the dashboard never scores anything itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
from bokeh.models import ColorBar, ColumnDataSource, LinearColorMapper
from bokeh.palettes import Inferno256, Viridis256
from bokeh.plotting import figure

from hotline.alerts.records import AlertRecord
from hotline.dashboard.state import DashboardState


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
        self.map_src = ColumnDataSource({"image": [], "dw": [], "dh": []})
        self.loss_src = ColumnDataSource({"image": [], "dw": [], "dh": []})
        self.map_fig, self.map_cmap = self._heatmap("occupancy per event", Viridis256,
                                                    self.map_src)
        self.loss_fig, self.loss_cmap = self._heatmap("conv-AE loss per cell (why)",
                                                      Inferno256, self.loss_src)
        self.units = pn.widgets.Tabulator(
            value=None, disabled=True, show_index=False, height=160,
            sizing_mode="stretch_width", css_classes=["hotline-dqm-units"])
        self._set_units([])
        state.param.watch(self._refresh, ["selected_id", "tick"])
        self._refresh()

    @staticmethod
    def _heatmap(title: str, palette: Any, source: ColumnDataSource) -> tuple[Any, Any]:
        cmap = LinearColorMapper(palette=palette, low=0, high=1)
        fig = figure(height=230, title=title, toolbar_location=None, tools="hover",
                     tooltips=[("value", "@image{0.000}")], sizing_mode="stretch_width",
                     x_range=(0, 1), y_range=(0, 1))
        fig.image(image="image", x=0, y=0, dw="dw", dh="dh", color_mapper=cmap, source=source)
        fig.add_layout(ColorBar(color_mapper=cmap, width=8), "right")
        fig.xaxis.axis_label = "column (sector / phi)"
        fig.yaxis.axis_label = "row (wheel-station / eta)"
        return fig, cmap

    def _set_units(self, top: list[dict[str, Any]]) -> None:
        import pandas as pd

        rows = [{"level": t.get("level", ""), "unit": t.get("unit", ""),
                 "loss share": round(float(t.get("contribution", 0.0)), 3),
                 "-log10 p": round(float(t.get("log10_p", 0.0)), 1)} for t in top]
        self.units.value = pd.DataFrame(rows, columns=["level", "unit", "loss share",
                                                       "-log10 p"])

    def current(self) -> AlertRecord | None:
        """The DQM alert to show: the selected one if it is DQM, else the newest DQM alert."""
        sel = self.state.selected
        if sel is not None and sel.kind == "dqm":
            return sel
        latest = self.state.feed.store.alerts(kind="dqm", limit=1)
        return latest[0] if latest else None

    def _refresh(self, *_: Any) -> None:
        alert = self.current()
        if alert is None or alert.id == self.shown_id:
            return
        self.shown_id = alert.id
        p = alert.payload
        for src, cmap, fig, key in ((self.map_src, self.map_cmap, self.map_fig, "map"),
                                    (self.loss_src, self.loss_cmap, self.loss_fig, "loss")):
            img = dqm_image(p, key)
            if img is None:
                src.data = {"image": [], "dw": [], "dh": []}
                continue
            h, w = img.shape
            src.data = {"image": [img], "dw": [w], "dh": [h]}
            finite = img[np.isfinite(img)]
            cmap.low = float(finite.min()) if finite.size else 0.0
            cmap.high = float(finite.max()) if finite.size and finite.max() > cmap.low else 1.0
            fig.x_range.start, fig.x_range.end = 0, w
            fig.y_range.start, fig.y_range.end = 0, h
        self._set_units(p.get("top_units") or [])
        self.note.object = (
            f"**{p.get('title', p.get('subsystem', alert.rule))}** - run {alert.run}, "
            f"lumisection {alert.lumi}: flagged {p.get('summary') or 'no unit'} "
            f"(p = {alert.p_value:.1e}, {p.get('model', '')})"
            if alert.p_value is not None else f"run {alert.run} LS {alert.lumi}")

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.note,
                         pn.Row(pn.pane.Bokeh(self.map_fig, sizing_mode="stretch_width"),
                                pn.pane.Bokeh(self.loss_fig, sizing_mode="stretch_width"),
                                sizing_mode="stretch_width"),
                         self.units, sizing_mode="stretch_width")
