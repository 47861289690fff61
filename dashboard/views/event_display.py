"""Event display of the selected alert: eta-phi view, transverse (x-y) view, raw object table.

eta-phi: one marker per object, marker size ~ sqrt(pT), colour by type, MET drawn as a
dashed line at its phi. Transverse view: each object as a segment from the beam axis,
length ~ pT, and MET as an arrow. A DQM alert is a lumisection's occupancy map, not an
event: the title says so and points to the DQM card instead of drawing "event 0".

A selection replaces data only: the title's box has a fixed height, the object table keeps
its columns and their types, and the transverse view's vertical tick labels are turned so
their width does not follow the range (a wider axis would re-lay out the whole page).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import Arrow, ColumnDataSource, LabelSet, NumberFormatter, Range1d, VeeHead
from bokeh.plotting import figure

from hotline.dashboard.state import DashboardState
from hotline.dashboard.views.common import TYPE_COLORS

__all__ = ["OBJECT_COLUMNS", "EventDisplay", "object_frame"]

#: the object table's columns
OBJECT_COLUMNS = ["object", "type", "pt", "eta", "phi", "contribution"]


def object_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The object table with fixed column types (an empty table keeps the float columns
    float, so the browser's table is never rebuilt for a change of column types)."""
    frame = pd.DataFrame(rows, columns=OBJECT_COLUMNS)
    return frame.astype({"object": str, "type": str, "pt": float, "eta": float, "phi": float,
                         "contribution": float})


class EventDisplay(pn.viewable.Viewer):
    """eta-phi and x-y views plus the object table; data replaced when the selection changes."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        empty = {"label": [], "type": [], "pt": [], "eta": [], "phi": [], "px": [], "py": [],
                 "size": [], "color": [], "zero": []}
        self.obj_src = ColumnDataSource(dict(empty))
        self.met_src = ColumnDataSource({"x0": [], "y0": [], "x1": [], "y1": [], "eta0": [],
                                         "eta1": [], "phi": [], "text": []})
        self.fig_etaphi = figure(height=320, title="eta-phi view (marker size ~ pT)",
                                 x_axis_label="eta", y_axis_label="phi [rad]",
                                 x_range=Range1d(-5, 5), y_range=Range1d(-math.pi, math.pi),
                                 toolbar_location=None, sizing_mode="stretch_width",
                                 tools="hover", tooltips=[("", "@label"), ("pT", "@pt{0.0}"),
                                                          ("eta", "@eta{0.00}"),
                                                          ("phi", "@phi{0.00}")])
        self.fig_etaphi.scatter("eta", "phi", size="size", color="color", alpha=0.75,
                                line_color="black", source=self.obj_src)
        self.fig_etaphi.add_layout(LabelSet(x="eta", y="phi", text="label", source=self.obj_src,
                                            x_offset=6, y_offset=6, text_font_size="8pt"))
        self.fig_etaphi.segment("eta0", "phi", "eta1", "phi", source=self.met_src,
                                color=TYPE_COLORS["MET"], line_dash="dashed", line_width=2)
        self.fig_etaphi.add_layout(LabelSet(x="eta0", y="phi", text="text", source=self.met_src,
                                            x_offset=4, y_offset=4, text_font_size="8pt",
                                            text_color=TYPE_COLORS["MET"]))
        self.fig_xy = figure(height=320, width=320, title="transverse view (length ~ pT)",
                             x_axis_label="px [GeV]", y_axis_label="py [GeV]",
                             x_range=Range1d(-100, 100), y_range=Range1d(-100, 100),
                             toolbar_location=None, match_aspect=True)
        self.fig_xy.yaxis.major_label_orientation = "vertical"
        self.fig_xy.segment("zero", "zero", "px", "py", source=self.obj_src, color="color",
                            line_width=3)
        self.fig_xy.scatter("px", "py", source=self.obj_src, color="color", size=6)
        self.fig_xy.add_layout(LabelSet(x="px", y="py", text="label", source=self.obj_src,
                                        x_offset=4, y_offset=4, text_font_size="8pt"))
        self.fig_xy.add_layout(Arrow(end=VeeHead(size=12, fill_color=TYPE_COLORS["MET"],
                                                 line_color=TYPE_COLORS["MET"]),
                                     x_start="x0", y_start="y0", x_end="x1", y_end="y1",
                                     source=self.met_src, line_color=TYPE_COLORS["MET"],
                                     line_width=3, line_dash="dashed"))
        self.title = pn.pane.Markdown("*select an alert in the table*", margin=(0, 10),
                                      height=44, sizing_mode="stretch_width",
                                      styles={"overflow": "auto"},
                                      css_classes=["hotline-event-title"])
        self.table = pn.widgets.Tabulator(
            object_frame([]),
            disabled=True, show_index=False, height=220, sizing_mode="stretch_width",
            layout="fit_data_stretch",
            formatters={c: NumberFormatter(format="0.000", nan_format="-", null_format="-")
                        for c in ("pt", "eta", "phi", "contribution")},
        )
        state.param.watch(self._on_select, "selected_id")

    def _on_select(self, *_: Any) -> None:
        ev = self.state.event_objects()
        o = dict(ev["objects"])
        o.pop("contribution", None)
        o["color"] = [TYPE_COLORS.get(t, "#7f7f7f") for t in o["type"]]
        o["zero"] = [0.0] * len(o["pt"])
        self.obj_src.data = o
        met = ev["met"]
        if met:
            self.met_src.data = {"x0": [0.0], "y0": [0.0], "x1": [met["px"]], "y1": [met["py"]],
                                 "eta0": [-5.0], "eta1": [5.0], "phi": [met["phi"]],
                                 "text": [f"MET {met['pt']:.0f} GeV"]}
        else:
            self.met_src.data = {k: [] for k in self.met_src.data}
        scale = max(o["pt"] + ([met["pt"]] if met else []) + [20.0]) * 1.15
        self.fig_xy.x_range.update(start=-scale, end=scale)
        self.fig_xy.y_range.update(start=-scale, end=scale)
        self.title.object = f"**{ev['title']}**" if ev["title"] else "*no alert selected*"
        self.table.value = object_frame(self.state.object_rows())

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.title,
            pn.FlexBox(pn.pane.Bokeh(self.fig_etaphi, sizing_mode="stretch_width",
                                     min_width=280, styles={"flex": "1 1 320px"}),
                       pn.pane.Bokeh(self.fig_xy), sizing_mode="stretch_width"),
            self.table,
            sizing_mode="stretch_width",
        )
