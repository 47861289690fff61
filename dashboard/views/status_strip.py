"""The per-lumisection status strip: one coloured cell per lumisection; click to filter.

One cell per lumisection of the run on screen, coloured by the status engine's level
(green / amber / red), the reason on hover. Clicking a cell (shift-click or a box drag
for a range) selects those lumisections in the session's state
(``DashboardState.select_lumis``), which filters the alert table, the score histogram,
the alert map and the DQM map and shades the rate plots; *show all* clears it. Below,
a logged-in crew member acknowledges the selected lumisections' flags with a comment
(``views.acknowledge.LumiAck``).
"""

from __future__ import annotations

from typing import Any

import panel as pn
from bokeh.models import BoxSelectTool, ColumnDataSource, HoverTool, TapTool
from bokeh.plotting import figure

from hotline.dashboard.state import DashboardState

__all__ = ["StatusStrip"]


class StatusStrip(pn.viewable.Viewer):
    """Clickable lumisection strip of the run on screen."""

    def __init__(self, state: DashboardState, height: int = 70, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.source = ColumnDataSource({"lumi": [], "level": [], "color": [], "reason": [],
                                        "n": []})
        self.fig = figure(height=height, sizing_mode="stretch_width", toolbar_location=None,
                          tools="", y_range=(0, 1), x_axis_label="lumisection (LS)",
                          min_border_left=10, min_border_right=10)
        self.cells = self.fig.vbar(x="lumi", top=1, bottom=0, width=0.92, source=self.source,
                                   fill_color="color", line_color="white",
                                   nonselection_fill_alpha=0.35,
                                   selection_line_color="#0d47a1", selection_line_width=2)
        self.fig.add_tools(TapTool(renderers=[self.cells]),
                           BoxSelectTool(dimensions="width", renderers=[self.cells]),
                           HoverTool(renderers=[self.cells],
                                     tooltips=[("LS", "@lumi"), ("status", "@level"),
                                               ("events", "@n"), ("why", "@reason")]))
        self.fig.yaxis.visible = False
        self.fig.ygrid.grid_line_color = None
        self.fig.xgrid.grid_line_color = None
        self.fig.css_classes = ["hotline-strip"]
        self.clear_w = pn.widgets.Button(label="Show all lumisections", width=170,
                                         disabled=True)
        self.clear_w.on_click(lambda *_: self.state.select_lumis(None))
        self.label = pn.pane.HTML("", css_classes=["hotline-strip-label"], margin=(4, 10))
        self.source.selected.on_change("indices", self._on_pick)
        self._status_version = -1
        state.param.watch(self._on_tick, "tick")
        state.param.watch(self._on_selection, "selection_version")
        self._on_tick()
        self._on_selection()

    def _on_tick(self, *_: Any) -> None:
        data = self.state.strip()
        if data != dict(self.source.data):
            self.source.data = data
        self._on_selection()

    def _on_pick(self, attr: str, old: Any, new: Any) -> None:
        lumis = [self.source.data["lumi"][i] for i in new
                 if i < len(self.source.data["lumi"])]
        if lumis:
            self.state.select_lumis(min(lumis), max(lumis))

    def pick(self, first: int, last: int | None = None) -> None:
        """Select lumisections as a click on the strip would (tests, the wall display)."""
        self.state.select_lumis(first, last)

    def _on_selection(self, *_: Any) -> None:
        s = self.state
        self.clear_w.disabled = s.ls_first is None
        lumis = list(self.source.data.get("lumi", []))
        if s.ls_first is None or s.ls_last is None:
            idx: list[int] = []
        else:
            idx = [i for i, ls in enumerate(lumis) if s.ls_first <= ls <= s.ls_last]
        if list(self.source.selected.indices) != idx:
            self.source.selected.indices = idx
        levels = list(self.source.data.get("level", []))
        counts = {lv: levels.count(lv) for lv in ("red", "amber", "green")}
        run = "-" if s.run is None else s.run
        text = (f"run {run}: {len(lumis)} LS - <b style='color:#c62828'>{counts['red']} red"
                f"</b>, <b style='color:#b26a00'>{counts['amber']} amber</b>, "
                f"{counts['green']} green; showing <b>{s.selection_label()}</b> "
                "<span style='color:#555'>(click a lumisection, shift-click or drag for a "
                "range)</span>")
        if text != self.label.object:
            self.label.object = text

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.FlexBox(self.label, self.clear_w, align_items="center"),
                         pn.pane.Bokeh(self.fig, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")
