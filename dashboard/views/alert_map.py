"""The eta-phi map of the objects of all alerts in the selected lumisections.

A 2-D histogram (eta on x, phi on y, objects per cell) of every object (MET apart) of the
run's alerts in the lumisections selected on the status strip (the whole run when none
is), the hottest cell marked and named with its share of the objects against a uniform
spread, so a hot cell jumps out. The alerts are read by the state (``alert_map``: at
most ``MAP_ALERTS``, newest first, shared by sessions, re-read every ``MAP_REFRESH_S``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import panel as pn
from bokeh.models import ColorBar, ColumnDataSource, LogColorMapper, Range1d
from bokeh.palettes import Inferno256
from bokeh.plotting import figure

from hotline.dashboard.glance import ETA_RANGE
from hotline.dashboard.state import DashboardState

__all__ = ["AlertMap"]


class AlertMap(pn.viewable.Viewer):
    """Objects of the selected lumisections' alerts in eta and phi."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.source = ColumnDataSource({"image": [], "x": [], "y": [], "dw": [], "dh": []})
        self.hot_src = ColumnDataSource({"eta": [], "phi": []})
        self.cmap = LogColorMapper(palette=Inferno256, low=1, high=10, nan_color="#f5f5f5",
                                   low_color="#f5f5f5")
        self.fig = figure(height=300, sizing_mode="stretch_width", toolbar_location=None,
                          tools="hover", tooltips=[("objects", "@image")],
                          x_range=Range1d(*ETA_RANGE), y_range=Range1d(-math.pi, math.pi),
                          x_axis_label="eta", y_axis_label="phi [rad]",
                          title="objects of the alerts in the selection (per cell)")
        self.fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=self.source,
                       color_mapper=self.cmap)
        self.fig.scatter("eta", "phi", source=self.hot_src, marker="square", size=22,
                         fill_alpha=0, line_color="#00e5ff", line_width=3)
        self.fig.add_layout(ColorBar(color_mapper=self.cmap, width=8, title="objects"),
                            "right")
        self.note = pn.pane.Markdown("", margin=(0, 10), css_classes=["hotline-map-note"])
        self.shown: Any = None
        state.param.watch(self.refresh, ["tick", "selection_version"])
        self.refresh()

    def refresh(self, *_: Any) -> None:
        m = self.state.alert_map()
        key = (m["label"], m["n_total"], m["n_objects"], self.state.run)
        if key == self.shown:
            return
        self.shown = key
        counts = np.asarray(m["counts"], float)
        img = np.where(counts > 0, counts, np.nan)
        e, p = m["eta_edges"], m["phi_edges"]
        self.source.data = {"image": [img], "x": [float(e[0])], "y": [float(p[0])],
                            "dw": [float(e[-1] - e[0])], "dh": [float(p[-1] - p[0])]}
        self.cmap.high = max(float(counts.max()) if counts.size else 1.0, 2.0)
        hot = m["hot"]
        if hot is None:
            self.hot_src.data = {"eta": [], "phi": []}
            self.note.object = f"*no alert objects in {m['label']}*"
            return
        self.hot_src.data = {"eta": [hot["eta"]], "phi": [hot["phi"]]}
        read = m["n_alerts"]
        more = (f" (the newest {read:,} of {m['n_total']:,} alerts read)"
                if m["n_total"] > read else "")
        ratio = hot["count"] / hot["expected"] if hot["expected"] else 0.0
        self.note.object = (
            f"{m['label']}: {m['n_objects']:,} objects of {read:,} alerts{more}; hottest cell "
            f"eta {hot['eta']:+.2f}, phi {hot['phi']:+.2f}: {hot['count']:,} objects "
            f"({hot['share']:.1%}, {ratio:.0f}x a uniform spread)")

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.pane.Bokeh(self.fig, sizing_mode="stretch_width"), self.note,
                         sizing_mode="stretch_width")
