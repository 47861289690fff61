"""Why did the selected alert fire? One card for every kind of alert.

* AE alerts: per-object and per-type loss contributions (bar charts), the calibrated
  ``explained_by`` type in the note, the event's objects in the table.
* Classic alerts: the rule's cut, the value against the threshold ("MET 365 GeV > 250
  GeV", and as two bars) and the objects that fired it (``alert_detail.classic_why``, from
  the rule menu; their pT as bars, their kinematics in the table).
* DQM alerts: the map score against its threshold (text and bars), the p-value (a bound,
  "p < 2.0e-06", when the reference cannot resolve it) and the flagged hardware units
  (``alert_detail.dqm_why``: their share of the map's loss as bars, -log10 p in the
  table); the map itself is in the DQM card.

A click must not re-lay out the page (Bokeh lays out the whole page when any element
shows, hides or changes size): every part of the card is always there at a fixed height
(text that does not fit scrolls inside its box), a selection only replaces texts and the
data of the two bar charts' ``ColumnDataSource``, and the charts draw their item labels
inside the plot (no categorical axis whose width follows the labels).

Below, a logged-in crew member acknowledges the alert (``views.acknowledge.AlertAck``).
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource, LabelSet, Range1d
from bokeh.plotting import figure

from hotline.dashboard.state import DashboardState
from hotline.dashboard.views.acknowledge import AlertAck
from hotline.dashboard.views.common import TYPE_COLORS

__all__ = ["Contributions", "rows_html"]

OBJECT_COLUMNS = ["object", "type", "pt", "eta", "phi"]
AE_COLUMNS = [*OBJECT_COLUMNS, "contribution"]
UNIT_COLUMNS = ["level", "unit", "loss share", "-log10 p"]
#: bars shown at most (the rest are summed in the per-type chart anyway)
TOP = 15
#: the item chart keeps room for this many bars, so one bar is not a slab
MIN_SLOTS = 4
#: fixed heights (px) of the card's parts: nothing in the card changes size on a click
VERDICT_PX, NOTE_PX, TABLE_PX, ITEMS_PX, GAUGE_PX = 92, 46, 118, 210, 130
THRESHOLD_COLOR = "#90a4ae"

#: (title, x-axis label) of the two charts per alert kind; never empty (an empty title or
#: axis label has no height: filling it would re-lay out the page)
CHART_TITLES = {
    "ae": (("per-object loss contribution", "loss (a.u.)"),
           ("per-type loss contribution", "loss (a.u.)")),
    "classic": (("objects that fired it", "pT [GeV]"),
                ("value against the cut", "value")),
    "dqm": (("flagged hardware units", "share of the map's loss"),
            ("map score against the threshold", "score")),
    "": (("why: select an alert in the table", "value"),
         ("value against its threshold", "value")),
}


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "-" if math.isnan(x) else f"{x:,.2f}"
    return html.escape(str(x))


def rows_html(frame: pd.DataFrame, caption: str) -> str:
    """A small HTML table of ``frame`` under ``caption`` (escaped; floats with 2 decimals)."""
    if frame.empty:
        return (f"<div style='color:#666;font-size:12px'>{html.escape(caption)}: none "
                "stored</div>") if caption else ""
    head = "".join(f"<th style='text-align:left;padding:1px 8px 1px 0'>{html.escape(c)}</th>"
                   for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td style='padding:1px 8px 1px 0'>{_fmt(v)}</td>"
                                    for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return (f"<div style='color:#555;font-size:12px;margin-bottom:2px'>"
            f"{html.escape(caption)}</div><table class='hotline-why-rows' "
            f"style='font-size:12px;border-collapse:collapse'><tr>{head}</tr>{body}</table>")


def _chart(height: int, slots: int) -> tuple[Any, ColumnDataSource]:
    """A horizontal bar chart with room for ``slots`` bars, each labelled at its start on a
    light box (no y axis)."""
    src = ColumnDataSource({"y": [], "label": [], "value": [], "color": [], "text": []})
    fig = figure(height=height, y_range=Range1d(-0.5, slots - 0.5), toolbar_location=None,
                 sizing_mode="stretch_width", tools="hover",
                 tooltips=[("", "@label"), ("", "@text")])
    fig.hbar(y="y", right="value", height=0.75, source=src, color="color")
    fig.add_layout(LabelSet(x=0, y="y", text="label", source=src, x_offset=4,
                            text_baseline="middle", text_font_size="8pt",
                            background_fill_color="white", background_fill_alpha=0.75))
    fig.yaxis.visible = False
    fig.ygrid.grid_line_color = None
    fig.x_range.start = 0
    return fig, src


def _bars(labels: list[str], values: list[float], colors: list[str], texts: list[str],
          min_slots: int = MIN_SLOTS) -> dict[str, list[Any]]:
    """Chart columns, the first item on top."""
    n = len(labels)
    slots = max(n, min_slots)
    return {"y": [slots - 1 - i for i in range(n)], "label": labels, "value": values,
            "color": colors, "text": texts}


class Contributions(pn.viewable.Viewer):
    """Which cut, objects, object types or hardware units made the selected alert fire."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.fig_obj, self.obj_src = _chart(ITEMS_PX, MIN_SLOTS)
        self.fig_type, self.type_src = _chart(GAUGE_PX, 2)
        self.kind = ""  #: the kind of alert the charts are titled for
        self._title_charts("")
        self.charts = pn.Column(pn.pane.Bokeh(self.fig_obj, sizing_mode="stretch_width"),
                                pn.pane.Bokeh(self.fig_type, sizing_mode="stretch_width"),
                                sizing_mode="stretch_width")
        box = {"overflow": "auto"}
        self.verdict = pn.pane.HTML("", css_classes=["hotline-why"], margin=(0, 10),
                                    height=VERDICT_PX, sizing_mode="stretch_width",
                                    styles=box)
        self.note = pn.pane.Markdown("*select an alert in the table*", margin=(0, 10),
                                     height=NOTE_PX, sizing_mode="stretch_width", styles=box,
                                     css_classes=["hotline-contrib-note"])
        #: the rows of the table shown under the note (objects or hardware units)
        self.rows = pd.DataFrame(columns=OBJECT_COLUMNS)
        self.table = pn.pane.HTML("", margin=(0, 10), height=TABLE_PX,
                                  sizing_mode="stretch_width", styles=box,
                                  css_classes=["hotline-why-table"])
        self.ack = AlertAck(state)
        state.param.watch(self._on_select, "selected_id")

    def _title_charts(self, kind: str) -> None:
        if kind == self.kind and self.fig_obj.title.text:
            return
        self.kind = kind
        for fig, (title, xlabel) in zip((self.fig_obj, self.fig_type),
                                        CHART_TITLES.get(kind, CHART_TITLES[""]), strict=True):
            fig.title.text = title
            fig.xaxis.axis_label = xlabel

    def _on_select(self, *_: Any) -> None:
        w = self.state.why()
        kind = w["kind"]
        title = (f"<div style='font-weight:600;font-size:14px'>{html.escape(w['title'])}</div>"
                 if w.get("title") else "")
        self._title_charts(kind)
        if kind == "classic":
            self.verdict.object = (
                title + f"<div style='font-size:18px;font-weight:700;margin:4px 0'>"
                f"{html.escape(w['verdict'] or 'cut not known')}</div>"
                + (f"<div style='color:#333'>cut: {html.escape(w['cut'])}</div>"
                   if w["cut"] else ""))
            self.note.object = w["note"] or f"objects that fired it: {len(w['fired'])}"
            self._table(pd.DataFrame(w["fired"], columns=OBJECT_COLUMNS),
                        "objects that fired it")
            fired = w["fired"]
            self.obj_src.data = _bars(
                [r["object"] for r in fired], [r["pt"] for r in fired],
                [TYPE_COLORS.get(r["type"], "#7f7f7f") for r in fired],
                [f"pT {r['pt']:,.1f} GeV" for r in fired])
            self._gauge(w)
        elif kind == "dqm":
            self.verdict.object = (
                title + f"<div style='font-size:16px;font-weight:700;margin:4px 0'>"
                f"{html.escape(w['verdict'])}</div>")
            self.note.object = w["note"] or "flagged hardware units:"
            units = w["units"]
            self._table(pd.DataFrame(units, columns=UNIT_COLUMNS), "flagged hardware units")
            self.obj_src.data = _bars(
                [u["unit"] for u in units], [u["loss share"] for u in units],
                ["#00838f"] * len(units),
                [f"{u['level']}, -log10 p {u['-log10 p']:.1f}" for u in units])
            self._gauge(w)
        elif kind == "ae":
            self.verdict.object = title
            self.note.object = w["note"]
            self._table(pd.DataFrame(self.state.object_rows(), columns=AE_COLUMNS),
                        "the event's objects")
            self._contributions(w)
        else:
            self.verdict.object = ""
            self.note.object = w.get("note") or "*select an alert in the table*"
            self._table(pd.DataFrame(columns=OBJECT_COLUMNS), "")
            self.obj_src.data = _bars([], [], [], [])
            self.type_src.data = _bars([], [], [], [])

    def _table(self, frame: pd.DataFrame, caption: str) -> None:
        self.rows = frame
        self.table.object = rows_html(frame, caption)

    def _gauge(self, w: dict[str, Any]) -> None:
        """The alert's value against its threshold as two bars (none if not known)."""
        value, thr = w.get("value"), w.get("threshold")
        unit = f" {w['unit']}" if w.get("unit") else ""
        labels, values, colors, texts = [], [], [], []
        if value is not None:
            labels.append(str(w.get("quantity") or "value"))
            values.append(float(value))
            colors.append(TYPE_COLORS["MET"])
            texts.append(f"{float(value):,.3g}{unit}")
        if thr is not None:
            labels.append("threshold")
            values.append(float(thr))
            colors.append(THRESHOLD_COLOR)
            texts.append(f"{float(thr):,.3g}{unit}")
        self.type_src.data = _bars(labels, values, colors, texts, min_slots=2)
        default = CHART_TITLES.get(self.kind, CHART_TITLES[""])[1][1]
        self.fig_type.xaxis.axis_label = w.get("unit") or default
        self._slots(self.fig_type, len(labels), 2)
        self._slots(self.fig_obj, len(self.obj_src.data["y"]))

    def _contributions(self, c: dict[str, Any]) -> None:
        o, t = c["objects"], c["types"]
        labels, values, types = o["label"][:TOP], o["value"][:TOP], o["type"][:TOP]
        self.obj_src.data = _bars(labels, values,
                                  [TYPE_COLORS.get(x, "#7f7f7f") for x in types],
                                  [f"loss {v:.3f}" for v in values])
        self.type_src.data = _bars(t["label"], t["value"],
                                   [TYPE_COLORS.get(_type_key(x), "#7f7f7f")
                                    for x in t["label"]],
                                   [f"loss {v:.3f}" for v in t["value"]])
        self._slots(self.fig_obj, len(labels))
        self._slots(self.fig_type, len(t["label"]))

    @staticmethod
    def _slots(fig: Any, n: int, min_slots: int = MIN_SLOTS) -> None:
        end = max(n, min_slots) - 0.5
        if fig.y_range.end != end:
            fig.y_range.end = end

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.verdict, self.note, self.table, self.charts, self.ack,
                         sizing_mode="stretch_width")


def _type_key(label: str) -> str:
    """Map card type names (MET, electrons, muons, jets) to the colour keys."""
    low = label.lower().rstrip("s")
    return {"met": "MET", "electron": "electron", "muon": "muon", "jet": "jet",
            "photon": "photon", "tau": "tau"}.get(low, label)
