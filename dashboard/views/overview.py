"""Run overview: status light, run / lumisection / rate, and per-lumisection rate series.

Three figures share the lumisection axis: input events per LS, classic-rule accept
fractions (one line per rule), and the AE accept fraction per calibrated threshold
with the expected fraction (the threshold's p-value) drawn as a +-2 sigma band.
"""

from __future__ import annotations

from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, Legend
from bokeh.plotting import figure

from hotline.dashboard.state import STATUS_COLORS, DashboardState
from hotline.dashboard.views.common import FIG_STYLE, PALETTE, SeriesSync


class RunOverview(pn.viewable.Viewer):
    """Status header and rate time series of the run on screen."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.header = pn.pane.HTML(self._header_html(), sizing_mode="stretch_width",
                                   margin=(0, 5))
        self.input_src = ColumnDataSource({"lumi": [], "n": [], "bad": []})
        self.input_sync = SeriesSync(self.input_src)
        self.fig_input = figure(height=160, title="input events per lumisection "
                                "(red: quarantined)",
                                x_axis_label="lumisection", y_axis_label="events", **FIG_STYLE)
        self.fig_input.vbar(x="lumi", top="n", width=0.8, source=self.input_src,
                            color="#546e7a")
        self.fig_input.vbar(x="lumi", top="bad", width=0.8, source=self.input_src,
                            color="#c62828")

        self.fig_rules = figure(height=260, title="classic hotline rules: accepted fraction",
                                x_axis_label="lumisection", y_axis_label="fraction of events",
                                y_axis_type="log", **FIG_STYLE)
        self.fig_rules.add_layout(Legend(click_policy="hide", label_text_font_size="8pt",
                                         spacing=0, padding=2), "right")
        self.rule_sources: dict[str, tuple[ColumnDataSource, SeriesSync]] = {}

        self.fig_ae = figure(height=260, title="AE accepted fraction (band: p-value +-2 sigma)",
                             x_axis_label="lumisection", y_axis_label="fraction of events",
                             y_axis_type="log", **FIG_STYLE)
        self.fig_ae.add_layout(Legend(click_policy="hide", label_text_font_size="8pt",
                                      spacing=0, padding=2), "right")
        self.ae_sources: dict[str, tuple[ColumnDataSource, SeriesSync]] = {}
        self.ae_note = pn.pane.Markdown("", margin=(0, 10))
        for fig in (self.fig_rules, self.fig_ae):
            fig.x_range = self.fig_input.x_range
        state.param.watch(self._on_tick, "tick")
        state.param.watch(self._on_header, ["tick", "event_rate"])
        self._on_tick()

    # ------------------------------------------------------------------ header
    def _header_html(self) -> str:
        s = self.state
        color = STATUS_COLORS[s.status]
        run = "-" if s.run is None else str(s.run)
        lumi = "-" if s.lumi is None else str(s.lumi)
        cell = ("<div style='display:inline-block;margin-right:28px'>"
                "<div style='font-size:11px;color:#666;text-transform:uppercase'>{}</div>"
                "<div style='font-size:22px;font-weight:600'>{}</div></div>")
        return (
            "<div style='display:flex;align-items:center;gap:18px'>"
            f"<div id='hotline-status' data-status='{s.status}' style='background:{color};"
            "color:white;border-radius:6px;padding:10px 18px;font-size:22px;font-weight:700;"
            f"min-width:110px;text-align:center'>{s.status.upper()}</div>"
            + cell.format("run", run) + cell.format("lumisection", lumi)
            + cell.format("input rate", f"{s.event_rate:,.0f} ev/s")
            + cell.format("alerts stored", f"{s.alert_total:,}")
            + f"<div style='color:#444;font-size:13px;max-width:520px'>{s.status_reason}</div>"
            "</div>"
        )

    def _on_header(self, *_: Any) -> None:
        html = self._header_html()
        if html != self.header.object:
            self.header.object = html

    # ------------------------------------------------------------------ series
    def _on_tick(self, *_: Any) -> None:
        s = self.state
        self.input_sync.apply(s.input_series())
        scoring = set(s.scoring_rules())
        for rule, data in s.rule_series().items():
            if rule in scoring:  # AE rules have their own figure
                continue
            if rule not in self.rule_sources:
                # a new source carries its data from the start: streaming into it in the
                # same hold would reach the browser twice (model + stream event)
                src = ColumnDataSource({k: list(v) for k, v in data.items()})
                color = PALETTE[len(self.rule_sources) % len(PALETTE)]
                self.fig_rules.line("lumi", "frac", source=src, color=color, line_width=2,
                                    legend_label=rule)
                self.fig_rules.scatter("lumi", "frac", source=src, color=color, size=4,
                                       legend_label=rule)
                self.rule_sources[rule] = (src, SeriesSync(src))
            self.rule_sources[rule][1].apply(data)
        ae = s.ae_series()
        for label, data in ae.items():
            if label not in self.ae_sources:
                src = ColumnDataSource({k: list(v) for k, v in data.items()})
                color = PALETTE[len(self.ae_sources) % len(PALETTE)]
                self.fig_ae.varea("lumi", "lo", "hi", source=src, fill_color=color,
                                  fill_alpha=0.18, legend_label=f"{label} expected")
                self.fig_ae.line("lumi", "expected", source=src, color=color, line_dash="dashed",
                                 legend_label=f"{label} expected")
                self.fig_ae.line("lumi", "frac", source=src, color=color, line_width=2,
                                 legend_label=f"{label} observed")
                self.fig_ae.scatter("lumi", "frac", source=src, color=color, size=4,
                                    legend_label=f"{label} observed")
                self.ae_sources[label] = (src, SeriesSync(src))
            self.ae_sources[label][1].apply(data)
        if not ae:
            note = s.model_note or "no anomaly-score rule in the data"
            if s.thresholds and not s.scoring_rules():
                note = "no AE scores in the summaries yet"
            text = f"*AE rates:* {note}"
        else:
            text = ""
        if text != self.ae_note.object:
            self.ae_note.object = text

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.header,
            pn.Row(
                pn.Column(pn.pane.Bokeh(self.fig_rules, sizing_mode="stretch_width"),
                          pn.pane.Bokeh(self.fig_input, sizing_mode="stretch_width"),
                          sizing_mode="stretch_width"),
                pn.Column(pn.pane.Bokeh(self.fig_ae, sizing_mode="stretch_width"),
                          self.ae_note, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )
