"""Why did the selected alert fire? One card for every kind of alert.

* AE alerts: per-object and per-type loss contributions (bar charts), the calibrated
  ``explained_by`` type in the note.
* Classic alerts: the rule's cut, the value against the threshold ("MET 365 GeV > 250
  GeV") and the objects that fired it (``alert_detail.classic_why``, from the rule menu).
* DQM alerts: the map score against its threshold, the p-value (a bound, "p < 2.0e-06",
  when the reference cannot resolve it) and the flagged hardware units
  (``alert_detail.dqm_why``); the map itself is in the DQM card.

Below, a logged-in crew member acknowledges the alert (``views.acknowledge.AlertAck``).
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, FactorRange
from bokeh.models.widgets.tables import NumberFormatter
from bokeh.plotting import figure

from hotline.dashboard.state import DashboardState
from hotline.dashboard.views.acknowledge import AlertAck
from hotline.dashboard.views.common import TYPE_COLORS

__all__ = ["Contributions"]

OBJECT_COLUMNS = ["object", "type", "pt", "eta", "phi"]
UNIT_COLUMNS = ["level", "unit", "loss share", "-log10 p"]


class Contributions(pn.viewable.Viewer):
    """Which cut, objects, object types or hardware units made the selected alert fire."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.obj_src = ColumnDataSource({"label": [], "value": [], "type": [], "color": []})
        self.type_src = ColumnDataSource({"label": [], "value": [], "color": []})
        self.fig_obj = figure(height=260, title="per-object loss contribution",
                              y_range=FactorRange(), x_axis_label="loss (a.u.)",
                              toolbar_location=None, sizing_mode="stretch_width",
                              tools="hover", tooltips=[("object", "@label"),
                                                       ("loss", "@value{0.000}")])
        self.fig_obj.hbar(y="label", right="value", height=0.75, source=self.obj_src,
                          color="color")
        self.fig_type = figure(height=170, title="per-type loss contribution",
                               y_range=FactorRange(), x_axis_label="loss (a.u.)",
                               toolbar_location=None, sizing_mode="stretch_width",
                               tools="hover", tooltips=[("type", "@label"),
                                                        ("loss", "@value{0.000}")])
        self.fig_type.hbar(y="label", right="value", height=0.75, source=self.type_src,
                           color="color")
        for f in (self.fig_obj, self.fig_type):
            f.x_range.start = 0
            f.ygrid.grid_line_color = None
        self.bars = pn.Column(pn.pane.Bokeh(self.fig_obj, sizing_mode="stretch_width"),
                              pn.pane.Bokeh(self.fig_type, sizing_mode="stretch_width"),
                              sizing_mode="stretch_width", visible=False)
        self.verdict = pn.pane.HTML("", css_classes=["hotline-why"], margin=(0, 10),
                                    sizing_mode="stretch_width")
        self.note = pn.pane.Markdown("*select an alert in the table*", margin=(0, 10),
                                     css_classes=["hotline-contrib-note"])
        fmt = NumberFormatter(format="0.00", nan_format="-", null_format="-")
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=OBJECT_COLUMNS), disabled=True, show_index=False, height=170,
            sizing_mode="stretch_width", layout="fit_columns", visible=False,
            formatters={c: fmt for c in ("pt", "eta", "phi", "loss share", "-log10 p")},
            css_classes=["hotline-why-table"])
        self.ack = AlertAck(state)
        state.param.watch(self._on_select, "selected_id")

    def _on_select(self, *_: Any) -> None:
        w = self.state.why()
        kind = w["kind"]
        self.bars.visible = kind == "ae"
        title = (f"<div style='font-weight:600;font-size:14px'>{html.escape(w['title'])}</div>"
                 if w.get("title") else "")
        if kind == "classic":
            self.verdict.object = (
                title + f"<div style='font-size:20px;font-weight:700;margin:4px 0'>"
                f"{html.escape(w['verdict'] or 'cut not known')}</div>"
                + (f"<div style='color:#333'>cut: {html.escape(w['cut'])}</div>"
                   if w["cut"] else ""))
            self.note.object = w["note"] or f"objects that fired it: {len(w['fired'])}"
            self._table(pd.DataFrame(w["fired"], columns=OBJECT_COLUMNS))
        elif kind == "dqm":
            self.verdict.object = (
                title + f"<div style='font-size:16px;font-weight:700;margin:4px 0'>"
                f"{html.escape(w['verdict'])}</div>")
            self.note.object = w["note"] or "flagged hardware units:"
            self._table(pd.DataFrame(w["units"], columns=UNIT_COLUMNS))
        elif kind == "ae":
            self.verdict.object = title
            self._bars(w)
            self.note.object = w["note"]
            self.table.visible = False
        else:
            self.verdict.object = ""
            self.note.object = w.get("note") or "*select an alert in the table*"
            self.table.visible = False

    def _table(self, frame: pd.DataFrame) -> None:
        self.table.value = frame
        self.table.visible = not frame.empty

    def _bars(self, c: dict[str, Any]) -> None:
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

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.verdict, self.note, self.table, self.bars, self.ack,
                         sizing_mode="stretch_width")


def _type_key(label: str) -> str:
    """Map card type names (MET, electrons, muons, jets) to the colour keys."""
    low = label.lower().rstrip("s")
    return {"met": "MET", "electron": "electron", "muon": "muon", "jet": "jet",
            "photon": "photon", "tau": "tau"}.get(low, label)
