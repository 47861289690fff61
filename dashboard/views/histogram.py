"""Score distribution: the AE score histogram (log y) against its reference, with a ratio panel.

The reference is the model card's background survival function over the whole score
range (the table and, beyond it, the card's tail fit, so it reaches past every threshold),
else a reference run, as expected counts for the events shown. Below it, the ratio
data / reference per bin with Poisson error bars (bins where the reference expects almost
nothing are left out and said so). Thresholds are dotted lines with labels on a white
box. The legend sits outside the plot. The selected lumisections (status strip) restrict
the histogram to them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource, Label, Legend, LegendItem, Range1d, Span, Whisker
from bokeh.plotting import figure

from hotline.dashboard.state import DashboardState
from hotline.dashboard.views.common import FIG_STYLE

__all__ = ["MIN_EXPECTED", "ScoreHistogram", "ratio_columns"]

#: bins whose reference expects fewer events than this get no ratio point
MIN_EXPECTED = 1e-3

#: threshold label colours: dark enough to read on white (WCAG contrast > 4.5)
LABEL_COLORS = ["#0d47a1", "#b71c1c", "#1b5e20", "#4a148c", "#e65100", "#004d40"]


def _nan_zero(x: np.ndarray) -> list[float]:
    """Zero counts become NaN so the log axis does not choke on them."""
    y = np.asarray(x, dtype=float)
    return np.where(y > 0, y, np.nan).tolist()


def ratio_columns(counts: np.ndarray, ref: np.ndarray) -> dict[str, list[float]]:
    """Per bin: ``ratio`` data / reference and its Poisson band ``lo``..``hi`` (1 sigma of
    the observed count; an empty bin gets the 1-sigma upper limit 1.15 / expected); NaN where
    the reference expects fewer than ``MIN_EXPECTED`` events or no data arrived at all."""
    k = np.asarray(counts, float)
    mu = np.asarray(ref, float)
    ok = mu >= MIN_EXPECTED
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(ok, k / np.where(ok, mu, 1.0), np.nan)
        err = np.where(k > 0, np.sqrt(k), 1.15) / np.where(ok, mu, 1.0)
    lo = np.where(ok & (k > 0), np.maximum(r - err, r * 0.05), np.nan)
    hi = np.where(ok, np.where(k > 0, r + err, err), np.nan)
    r = np.where(k > 0, r, np.nan)  # an empty bin: no point on a log axis, only its limit
    return {"ratio": r.tolist(), "lo": lo.tolist(), "hi": hi.tolist()}


class ScoreHistogram(pn.viewable.Viewer):
    """The score histogram of the run on screen; counts are patched in place."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        h = state.score_histogram()
        edges = h["edges"]
        n = len(edges) - 1
        centre = np.sqrt(edges[:-1] * edges[1:]).tolist()
        self.source = ColumnDataSource({"left": edges[:-1].tolist(), "right": edges[1:].tolist(),
                                        "x": centre, "top": [np.nan] * n, "ref": [np.nan] * n,
                                        "bottom": [0.5] * n, "ratio": [np.nan] * n,
                                        "lo": [np.nan] * n, "hi": [np.nan] * n})
        self.fig = figure(height=260, title="anomaly score distribution", x_axis_type="log",
                          y_axis_type="log", x_axis_label="AE score (reconstruction loss, a.u.)",
                          y_axis_label="events / bin (0.1 dex)",
                          x_range=Range1d(1e-2, 1e2), y_range=Range1d(0.5, 10),
                          **FIG_STYLE)
        r_data = self.fig.quad(left="left", right="right", top="top", bottom="bottom",
                               source=self.source, fill_color="#4a78b5", line_color="#2b4f80",
                               fill_alpha=0.75)
        self.ref_renderer = self.fig.step(x="left", y="ref", source=self.source, mode="after",
                                          color="black", line_width=1.5, line_dash="dashed")
        self.legend = Legend(items=[LegendItem(label="data (selection)", renderers=[r_data]),
                                    LegendItem(label="reference (expected)",
                                               renderers=[self.ref_renderer])],
                             orientation="horizontal", label_text_font_size="9pt",
                             spacing=6, padding=3, margin=2, border_line_alpha=0.0)
        self.fig.add_layout(self.legend, "below")
        self.fig.xaxis.visible = True
        self.ratio = figure(height=150, x_axis_type="log", y_axis_type="log",
                            x_range=self.fig.x_range, y_range=Range1d(0.1, 10),
                            x_axis_label="AE score (reconstruction loss, a.u.)",
                            y_axis_label="data / reference", **FIG_STYLE)
        self.ratio.yaxis.ticker.desired_num_ticks = 3
        self.ratio.yaxis.ticker.num_minor_ticks = 0
        self.ratio.scatter("x", "ratio", source=self.source, size=5, color="#2b4f80")
        self.ratio.add_layout(Whisker(source=self.source, base="x", lower="lo", upper="hi",
                                      line_color="#2b4f80"))
        self.ratio.add_layout(Span(location=1.0, dimension="width", line_color="black",
                                   line_dash="dashed"))
        self.spans: list[tuple[Span, Label]] = []
        self._set_thresholds(h["thresholds"])
        self.note = pn.pane.Markdown("", margin=(0, 10), css_classes=["hotline-hist-note"])
        self.patches = 0
        state.param.watch(self._on_tick, ["tick", "selection_version"])
        self._on_tick()

    def _set_thresholds(self, thresholds: list) -> None:
        for i, t in enumerate(thresholds):
            color = LABEL_COLORS[i % len(LABEL_COLORS)]
            span = Span(location=t.threshold, dimension="height", line_color=color,
                        line_width=2, line_dash="dotted")
            self.fig.add_layout(span)
            self.ratio.add_layout(Span(location=t.threshold, dimension="height",
                                       line_color=color, line_width=2, line_dash="dotted"))
            # labels staggered in height so neighbouring thresholds never overlap
            label = Label(x=t.threshold, y=6 + 18 * (i % 4), x_units="data", y_units="screen",
                          text=t.label, x_offset=3, text_font_size="9pt",
                          text_font_style="bold", text_color=color,
                          background_fill_color="white", background_fill_alpha=0.9,
                          border_line_color=color, border_line_alpha=0.6)
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
        ref = np.asarray(h["reference"], float)
        ratio = ratio_columns(counts, ref)
        self.source.patch({"top": [(slice(0, n), _nan_zero(counts))],
                           "ref": [(slice(0, n), _nan_zero(ref))],
                           "ratio": [(slice(0, n), ratio["ratio"])],
                           "lo": [(slice(0, n), ratio["lo"])],
                           "hi": [(slice(0, n), ratio["hi"])]})
        self.patches += 1
        edges = h["edges"]
        nz = np.flatnonzero(counts)
        lo, hi = edges[max(nz[0] - 2, 0)], edges[min(nz[-1] + 3, n)]
        for t in h["thresholds"]:
            lo, hi = min(lo, t.threshold / 2), max(hi, t.threshold * 2)
        self.fig.x_range.update(start=lo, end=hi)
        top = max(float(counts.max()), float(np.nanmax(ref) if n else 1))
        self.fig.y_range.update(start=0.5, end=top * 3)
        rr = np.asarray([v for v in ratio["lo"] + ratio["hi"] if v == v and v > 0])
        if rr.size:
            self.ratio.y_range.update(start=max(float(rr.min()) / 1.5, 1e-3),
                                      end=min(float(rr.max()) * 1.5, 1e4))
        self.ref_renderer.visible = bool(np.nansum(ref) > 0)
        beyond = ""
        reach = float(h.get("reach", float("inf")))
        if np.isfinite(reach) and h["thresholds"] and max(t.threshold for t in
                                                          h["thresholds"]) > reach:
            beyond = f"; the reference is unknown above score {reach:.3g}"
        text = (f"rule **{h['rule']}**, {h.get('selection', '')}: {int(counts.sum()):,} events "
                f"(underflow {h['under']:,}, overflow {h['over']:,}); "
                f"{h['reference_label'] or 'no reference'}{beyond}")
        if text != self.note.object:
            self.note.object = text

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(pn.pane.Bokeh(self.fig, sizing_mode="stretch_width"),
                         pn.pane.Bokeh(self.ratio, sizing_mode="stretch_width"), self.note,
                         sizing_mode="stretch_width")
