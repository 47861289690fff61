"""Run overview: status light, run / lumisection / rate, and per-lumisection rate series.

Three figures share the lumisection axis: input events per LS, classic-rule accept
fractions (one line per rule, with the status engine's expected fraction dashed), and
the AE accept fraction per calibrated threshold with the expected fraction (the
threshold's p-value) drawn as a +-2 sigma band. Every legend lives outside its plot,
below it, one entry per series (rule or threshold) in as many rows as it needs, so no
entry is ever cut off; every axis says its unit. The selected lumisections (the status
strip) are shaded on all three.
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn
from bokeh.models import BoxAnnotation, ColumnDataSource, Legend, LegendItem
from bokeh.plotting import figure

from hotline.dashboard.rates import STATUS_COLORS
from hotline.dashboard.state import DashboardState
from hotline.dashboard.views.common import FIG_STYLE, PALETTE, SeriesSync

__all__ = ["LEGEND_COLUMNS", "RunOverview"]

#: legend entries per row below a rate plot
LEGEND_COLUMNS = 3


def _legend(title: str) -> Legend:
    return Legend(items=[], click_policy="hide", label_text_font_size="9pt",
                  title=title, title_text_font_size="8pt", title_text_font_style="italic",
                  orientation="horizontal", ncols=LEGEND_COLUMNS, spacing=4, padding=4,
                  margin=2, border_line_alpha=0.0, glyph_width=18)


class RunOverview(pn.viewable.Viewer):
    """Status header and rate time series of the run on screen."""

    def __init__(self, state: DashboardState, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.header = pn.pane.HTML(self._header_html(), sizing_mode="stretch_width",
                                   margin=(0, 5))
        self.input_src = ColumnDataSource({"lumi": [], "n": [], "bad": []})
        self.input_sync = SeriesSync(self.input_src)
        self.fig_input = figure(height=170, title="input events per lumisection",
                                x_axis_label="lumisection (LS)",
                                y_axis_label="events / LS", **FIG_STYLE)
        r_all = self.fig_input.vbar(x="lumi", top="n", width=0.8, source=self.input_src,
                                    color="#546e7a")
        r_bad = self.fig_input.vbar(x="lumi", top="bad", width=0.8, source=self.input_src,
                                    color="#c62828")
        leg = _legend("")
        leg.items = [LegendItem(label="events read", renderers=[r_all]),
                     LegendItem(label="quarantined", renderers=[r_bad])]
        self.fig_input.add_layout(leg, "below")

        self.fig_rules = figure(height=320, title="classic hotline rules: accepted fraction",
                                x_axis_label="lumisection (LS)",
                                y_axis_label="accepted / events (fraction)",
                                y_axis_type="log", **FIG_STYLE)
        self.rules_legend = _legend("solid: observed, dashed: expected (reference)")
        self.fig_rules.add_layout(self.rules_legend, "below")
        self.rule_sources: dict[str, tuple[ColumnDataSource, SeriesSync]] = {}

        self.fig_ae = figure(height=320, title="AE accepted fraction per threshold",
                             x_axis_label="lumisection (LS)",
                             y_axis_label="accepted / events (fraction)",
                             y_axis_type="log", **FIG_STYLE)
        self.ae_legend = _legend("solid: observed, dashed + band: p-value +-2 sigma")
        self.fig_ae.add_layout(self.ae_legend, "below")
        self.ae_sources: dict[str, tuple[ColumnDataSource, SeriesSync]] = {}
        self.ae_note = pn.pane.Markdown("", margin=(0, 10))
        self.shades: list[BoxAnnotation] = []
        for fig in (self.fig_rules, self.fig_ae, self.fig_input):
            if fig is not self.fig_input:
                fig.x_range = self.fig_input.x_range
            shade = BoxAnnotation(left=None, right=None, fill_color="#1565c0",
                                  fill_alpha=0.12, visible=False)
            fig.add_layout(shade)
            self.shades.append(shade)
        state.param.watch(self._on_tick, "tick")
        state.param.watch(self._on_header, ["tick", "event_rate", "selection_version"])
        state.param.watch(self._on_selection, "selection_version")
        self._on_tick()

    # ------------------------------------------------------------------ header
    def _header_html(self) -> str:
        s = self.state
        color = STATUS_COLORS[s.status]
        run = "-" if s.run is None else str(s.run)
        lumi = "-" if s.lumi is None else str(s.lumi)
        cell = ("<div style='display:inline-block;margin-right:22px'>"
                "<div style='font-size:11px;color:#555;text-transform:uppercase'>{}</div>"
                "<div style='font-size:20px;font-weight:600'>{}</div></div>")
        sel = (f"<div style='background:#e3f2fd;border-radius:4px;padding:4px 8px;"
               f"font-size:13px'>showing <b>{html.escape(s.selection_label())}</b></div>"
               if s.ls_first is not None else "")
        return (
            "<div style='display:flex;flex-wrap:wrap;align-items:center;gap:10px 16px'>"
            f"<div id='hotline-status' data-status='{s.status}' style='background:{color};"
            "color:white;border-radius:6px;padding:8px 16px;font-size:22px;font-weight:700;"
            f"min-width:100px;text-align:center'>{s.status.upper()}</div>"
            + cell.format("run", run) + cell.format("lumisection", lumi)
            + cell.format("input rate", f"<span id='hotline-rate'>{s.event_rate:,.0f}</span>"
                          " ev/s")
            + cell.format("alerts stored", f"{s.alert_total:,}") + sel
            + "<div style='color:#333;font-size:13px;flex:1 1 300px;min-width:0'>"
            f"{html.escape(s.status_reason)}</div></div>"
        )

    def _on_header(self, *_: Any) -> None:
        text = self._header_html()
        if text != self.header.object:
            self.header.object = text

    def _on_selection(self, *_: Any) -> None:
        s = self.state
        for shade in self.shades:
            if s.ls_first is None or s.ls_last is None:
                shade.visible = False
            else:
                shade.update(left=s.ls_first - 0.5, right=s.ls_last + 0.5, visible=True)

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
                rs = [self.fig_rules.line("lumi", "frac", source=src, color=color,
                                          line_width=2),
                      self.fig_rules.line("lumi", "expected", source=src, color=color,
                                          line_dash="dashed", line_width=1.2)]
                self.rules_legend.items.append(LegendItem(label=rule, renderers=rs))
                self.rule_sources[rule] = (src, SeriesSync(src))
            self.rule_sources[rule][1].apply(data)
        ae = s.ae_series()
        for label, data in ae.items():
            if label not in self.ae_sources:
                src = ColumnDataSource({k: list(v) for k, v in data.items()})
                color = PALETTE[len(self.ae_sources) % len(PALETTE)]
                rs = [self.fig_ae.varea("lumi", "lo", "hi", source=src, fill_color=color,
                                        fill_alpha=0.18),
                      self.fig_ae.line("lumi", "expected", source=src, color=color,
                                       line_dash="dashed"),
                      self.fig_ae.line("lumi", "frac", source=src, color=color, line_width=2)]
                self.ae_legend.items.append(LegendItem(label=label, renderers=rs))
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
            pn.pane.Bokeh(self.fig_rules, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.fig_input, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.fig_ae, sizing_mode="stretch_width"), self.ae_note,
            sizing_mode="stretch_width",
        )
