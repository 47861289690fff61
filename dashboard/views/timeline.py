"""The state timeline: every quantity the status engine tests x every lumisection.

One cell per (quantity, lumisection), coloured by the signed significance Z of the exact
tail probability behind it (``glance.timeline_columns``: excesses red, deficits blue,
white around zero), outlined when the lumisection-corrected level is amber or red; the
hover says the quantity, the lumisection, Z, the p-value before and after the correction
and the finding in words. Like Grafana's state timeline, but with the numbers. Redrawn
at most every ``min_interval`` seconds (the expectations of the whole run move as it
grows, so every cell may change).
"""

from __future__ import annotations

import time
from typing import Any

import panel as pn
from bokeh.models import ColorBar, ColumnDataSource, FactorRange, HoverTool, LinearColorMapper
from bokeh.plotting import figure

from hotline.dashboard.glance import quantity_order
from hotline.dashboard.state import DashboardState

__all__ = ["Z_PALETTE", "StateTimeline"]


def _palette() -> list[str]:
    """Blue (deficit) - white - red (excess), 21 steps."""
    out = []
    for i in range(-10, 11):
        t = abs(i) / 10
        if i < 0:
            r, g, b = int(255 - 200 * t), int(255 - 150 * t), 255
        else:
            r, g, b = 255, int(255 - 210 * t), int(255 - 210 * t)
        out.append(f"#{r:02x}{g:02x}{b:02x}")
    return out


Z_PALETTE = _palette()
LEVEL_LINE = {"green": None, "amber": "#b26a00", "red": "#000000", "idle": None}


class StateTimeline(pn.viewable.Viewer):
    """Quantity x lumisection significance map of the run on screen."""

    def __init__(self, state: DashboardState, min_interval: float = 5.0,
                 **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.min_interval = min_interval
        self._last = -float("inf")
        self.redraws = 0
        self.source = ColumnDataSource({k: [] for k in ("quantity", "lumi", "z", "z_text", "p",
                                                        "p_corr", "level", "text", "line")})
        self.cmap = LinearColorMapper(palette=Z_PALETTE, low=-6, high=6,
                                      low_color=Z_PALETTE[0], high_color=Z_PALETTE[-1])
        self.fig = figure(height=260, sizing_mode="stretch_width", toolbar_location=None,
                          tools="", y_range=FactorRange(), x_axis_label="lumisection (LS)",
                          title="significance per quantity and lumisection (Z, signed)")
        r = self.fig.rect(x="lumi", y="quantity", width=1, height=0.92, source=self.source,
                          fill_color={"field": "z", "transform": self.cmap},
                          line_color="line", line_width=1.5)
        self.fig.add_tools(HoverTool(renderers=[r], tooltips=[
            ("quantity", "@quantity"), ("LS", "@lumi"), ("Z", "@z_text"), ("p", "@p"),
            ("p corrected", "@p_corr"), ("level", "@level"), ("", "@text")]))
        self.fig.add_layout(ColorBar(color_mapper=self.cmap, width=8, title="Z"), "right")
        self.fig.xgrid.grid_line_color = None
        self.fig.ygrid.grid_line_color = None
        self.fig.yaxis.major_label_text_font_size = "8pt"
        self.note = pn.pane.Markdown("", margin=(0, 10), css_classes=["hotline-timeline-note"])
        state.param.watch(self._on_tick, "tick")
        self.refresh(force=True)

    def _on_tick(self, *_: Any) -> None:
        self.refresh()

    def refresh(self, force: bool = False) -> bool:
        """Redraw from the run's status (at most once per ``min_interval`` unless forced)."""
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return False
        self._last = now
        d = self.state.timeline()
        d["line"] = [LEVEL_LINE.get(lv) for lv in d["level"]]
        if d == dict(self.source.data):
            return False
        qs = quantity_order(d["quantity"])
        self.fig.y_range.factors = qs[::-1]
        self.fig.height = max(140, 60 + 16 * len(qs))
        self.source.data = d
        self.redraws += 1
        zs = [abs(z) for z in d["z"]]
        self.note.object = (f"{len(qs)} quantities x {len(set(d['lumi']))} lumisections; "
                            f"largest |Z| {max(zs):.1f}" if zs else "*no status yet*")
        return True

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.pane.Bokeh(self.fig, sizing_mode="stretch_width"), self.note,
                         sizing_mode="stretch_width")
