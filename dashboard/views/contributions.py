"""Loss contributions of the selected AE alert: per object and per object type (bar charts)."""

from __future__ import annotations

from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, FactorRange
from bokeh.plotting import figure

from hotline.dashboard.state import DashboardState
from hotline.dashboard.views.common import TYPE_COLORS


class Contributions(pn.viewable.Viewer):
    """Which objects (and which object types) drove the anomaly score."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.obj_src = ColumnDataSource({"label": [], "value": [], "type": [], "color": []})
        self.type_src = ColumnDataSource({"label": [], "value": [], "color": []})
        self.fig_obj = figure(height=280, title="per-object loss contribution",
                              y_range=FactorRange(), x_axis_label="loss",
                              toolbar_location=None, sizing_mode="stretch_width",
                              tools="hover", tooltips=[("object", "@label"),
                                                       ("loss", "@value{0.000}")])
        self.fig_obj.hbar(y="label", right="value", height=0.75, source=self.obj_src,
                          color="color")
        self.fig_type = figure(height=180, title="per-type loss contribution",
                               y_range=FactorRange(), x_axis_label="loss",
                               toolbar_location=None, sizing_mode="stretch_width",
                               tools="hover", tooltips=[("type", "@label"),
                                                        ("loss", "@value{0.000}")])
        self.fig_type.hbar(y="label", right="value", height=0.75, source=self.type_src,
                           color="color")
        for f in (self.fig_obj, self.fig_type):
            f.x_range.start = 0
            f.ygrid.grid_line_color = None
        self.note = pn.pane.Markdown("*select an alert in the table*", margin=(0, 10),
                                     css_classes=["hotline-contrib-note"])
        state.param.watch(self._on_select, "selected_id")

    def _on_select(self, *_: Any) -> None:
        c = self.state.contributions()
        o, t = c["objects"], c["types"]
        top = 15  # the 15 largest objects; the rest are summed in the type chart anyway
        labels, values, types = o["label"][:top], o["value"][:top], o["type"][:top]
        self.obj_src.data = {"label": labels[::-1], "value": values[::-1],
                             "type": types[::-1],
                             "color": [TYPE_COLORS.get(x, "#7f7f7f") for x in types[::-1]]}
        self.fig_obj.y_range.factors = labels[::-1]
        self.type_src.data = {"label": t["label"][::-1], "value": t["value"][::-1],
                              "color": [TYPE_COLORS.get(_type_key(x), "#7f7f7f")
                                        for x in t["label"][::-1]]}
        self.fig_type.y_range.factors = t["label"][::-1]
        self.note.object = c["note"]

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.note, pn.pane.Bokeh(self.fig_obj, sizing_mode="stretch_width"),
                         pn.pane.Bokeh(self.fig_type, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")


def _type_key(label: str) -> str:
    """Map card type names (MET, electrons, muons, jets) to the colour keys."""
    low = label.lower().rstrip("s")
    return {"met": "MET", "electron": "electron", "muon": "muon", "jet": "jet",
            "photon": "photon", "tau": "tau"}.get(low, label)
