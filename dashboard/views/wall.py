"""The wall display: big status, the lumisection strip, and views cycling on their own.

For the control room's wall screen (``/?wall=1``; ``&cycle=SECONDS``, default
``CYCLE_S``): the status light, run, lumisection and input rate in large type, the status
strip, and one large view at a time (rates, significance timeline, alert map, score
distribution, DQM map) switched every ``cycle`` seconds by the session's periodic
callback (``advance``), so nobody has to touch it. Read-only: no controls.
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn

from hotline.dashboard.rates import STATUS_COLORS
from hotline.dashboard.state import DashboardState

__all__ = ["CYCLE_S", "WallDisplay"]

#: seconds each view stays on the wall
CYCLE_S = 15.0


class WallDisplay(pn.viewable.Viewer):
    """Big status and auto-cycling views over one session's state."""

    def __init__(self, state: DashboardState, cycle: float = CYCLE_S, **params: Any) -> None:
        super().__init__(**params)
        from hotline.dashboard.views.alert_map import AlertMap
        from hotline.dashboard.views.histogram import ScoreHistogram
        from hotline.dashboard.views.occupancy import OccupancyView
        from hotline.dashboard.views.overview import RunOverview
        from hotline.dashboard.views.status_strip import StatusStrip
        from hotline.dashboard.views.timeline import StateTimeline

        self.state = state
        self.cycle = max(float(cycle), 2.0)
        self.overview = RunOverview(state)
        self.strip = StatusStrip(state, height=110)
        self.views = {
            "rates": pn.Column(pn.pane.Bokeh(self.overview.fig_rules,
                                             sizing_mode="stretch_width"),
                               pn.pane.Bokeh(self.overview.fig_ae,
                                             sizing_mode="stretch_width"),
                               sizing_mode="stretch_width"),
            "significance timeline": StateTimeline(state),
            "alert map": AlertMap(state),
            "score distribution": ScoreHistogram(state),
            "DQM map": OccupancyView(state),
        }
        self.tabs = pn.Tabs(*[(k, v) for k, v in self.views.items()], dynamic=False,
                            sizing_mode="stretch_width", css_classes=["hotline-wall-tabs"])
        self.big = pn.pane.HTML(self._big(), sizing_mode="stretch_width", margin=0)
        self.advances = 0
        state.param.watch(self._on_tick, ["tick", "event_rate"])

    def _big(self) -> str:
        s = self.state
        color = STATUS_COLORS[s.status]
        cell = ("<div style='margin-right:48px'><div style='font-size:18px;color:#cfd8dc;"
                "text-transform:uppercase'>{}</div><div style='font-size:44px;"
                "font-weight:700'>{}</div></div>")
        return (
            "<div style='display:flex;flex-wrap:wrap;align-items:center;background:#263238;"
            "color:white;padding:14px 24px;gap:12px'>"
            f"<div id='hotline-wall-status' data-status='{s.status}' style='background:{color};"
            "border-radius:10px;padding:14px 36px;font-size:64px;font-weight:800;"
            f"margin-right:40px'>{s.status.upper()}</div>"
            + cell.format("run", "-" if s.run is None else s.run)
            + cell.format("lumisection", "-" if s.lumi is None else s.lumi)
            + cell.format("input", f"{s.event_rate:,.0f} ev/s")
            + cell.format("alerts", f"{s.alert_total:,}")
            + f"<div style='font-size:20px;flex:1 1 400px'>{html.escape(s.status_reason)}"
            "</div></div>")

    def _on_tick(self, *_: Any) -> None:
        text = self._big()
        if text != self.big.object:
            self.big.object = text

    def advance(self) -> None:
        """Show the next view (the periodic callback calls this every ``cycle`` seconds)."""
        self.tabs.active = (self.tabs.active + 1) % len(self.tabs)
        self.advances += 1

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.big, self.strip, self.tabs, sizing_mode="stretch_width",
                         margin=0)
