"""Score distribution: live histogram of the AE score (log y), thresholds, reference overlay."""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, Label, Range1d, Span
from bokeh.plotting import figure

from hotline.dashboard.state import DashboardState
from hotline.dashboard.views.common import FIG_STYLE, PALETTE


def _nan_zero(x: np.ndarray) -> list[float]:
    """Zero counts become NaN so the log axis does not choke on them."""
    y = np.asarray(x, dtype=float)
    return np.where(y > 0, y, np.nan).tolist()


class ScoreHistogram(pn.viewable.Viewer):
    """The score histogram of the run on screen; counts are patched in place."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        h = state.score_histogram()
        edges = h["edges"]
        n = len(edges) - 1
        self.source = ColumnDataSource({"left": edges[:-1].tolist(), "right": edges[1:].tolist(),
                                        "top": [np.nan] * n, "ref": [np.nan] * n,
                                        "bottom": [0.5] * n})
        self.fig = figure(height=300, title="anomaly score distribution", x_axis_type="log",
                          y_axis_type="log", x_axis_label="AE score", y_axis_label="events / bin",
                          x_range=Range1d(1e-2, 1e2), y_range=Range1d(0.5, 10),
                          **FIG_STYLE)
        self.fig.quad(left="left", right="right", top="top", bottom="bottom", source=self.source,
                      fill_color="#4a78b5", line_color="#2b4f80", fill_alpha=0.75,
                      legend_label="this run")
        self.ref_renderer = self.fig.step(x="left", y="ref", source=self.source, mode="after",
                                          color="black", line_width=1.5, line_dash="dashed",
                                          legend_label="reference")
        self.fig.legend.location = "top_left"
        self.fig.legend.background_fill_alpha = 0.7
        self.spans: list[tuple[Span, Label]] = []
        self._set_thresholds(h["thresholds"])
        self.note = pn.pane.Markdown("", margin=(0, 10))
        self.patches = 0
        state.param.watch(self._on_tick, "tick")
        self._on_tick()

    def _set_thresholds(self, thresholds: list) -> None:
        for i, t in enumerate(thresholds):
            color = PALETTE[i % len(PALETTE)]
            span = Span(location=t.threshold, dimension="height", line_color=color,
                        line_width=2, line_dash="dotdash")
            label = Label(x=t.threshold, y=10, y_units="screen", text=t.label, angle=1.5708,
                          x_offset=-4, text_font_size="9pt", text_color=color)
            self.fig.add_layout(span)
            self.fig.add_layout(label)
            self.spans.append((span, label))

    def _on_tick(self, *_: Any) -> None:
        h = self.state.score_histogram()
        counts = np.asarray(h["counts"])
        if counts.sum() == 0:
            text = ("*No anomaly scores yet* - " + (self.state.model_note or
                    "no AE rule in the data")) if h["rule"] is None else "*waiting for scores*"
            if text != self.note.object:
                self.note.object = text
            return
        n = counts.size
        self.source.patch({"top": [(slice(0, n), _nan_zero(counts))],
                           "ref": [(slice(0, n), _nan_zero(h["reference"]))]})
        self.patches += 1
        edges = h["edges"]
        nz = np.flatnonzero(counts)
        lo, hi = edges[max(nz[0] - 2, 0)], edges[min(nz[-1] + 3, n)]
        for t in h["thresholds"]:
            lo, hi = min(lo, t.threshold / 2), max(hi, t.threshold * 2)
        self.fig.x_range.update(start=lo, end=hi)
        top = max(float(counts.max()), float(np.nanmax(h["reference"]) if n else 1))
        self.fig.y_range.update(start=0.5, end=top * 3)
        self.ref_renderer.visible = bool(np.nansum(h["reference"]) > 0)
        self.note.object = (f"rule **{h['rule']}**, {int(counts.sum()):,} events "
                            f"(underflow {h['under']:,}, overflow {h['over']:,}); "
                            f"{h['reference_label'] or 'no reference'}")

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.pane.Bokeh(self.fig, sizing_mode="stretch_width"), self.note,
                         sizing_mode="stretch_width")
