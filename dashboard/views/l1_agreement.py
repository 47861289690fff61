"""L1 emulation agreement per lumisection: the deployed firmware's decisions against serving.

For the run on screen, when the stream ran a firmware build's emulation beside the serving
score (``--emulate BUILD_DIR``, ``stream.l1_emulation``): one line per menu seed of the
decision agreement per lumisection with the minimum agreement (``[firmware]
min_agreement``, 99.9 %) dashed, the lumisections with a divergence alarm shaded red and
the alarmed seeds crossed; the hover says LS, seed, agreement, events differing of those
emulated, failed, the fraction of the good events emulated, the build and the alarm. Above
it the builds compared (model, version, build hash and their lumisections; a build
replaced mid-run shows as two) and the lumisections not emulated; below it the selection's
numbers (events emulated and the fraction, score correlation, agreement and passes per
seed, the largest score differences with their events). The selection is the status
strip's (clicking a point here selects its lumisection the same way); without one, the
whole run. It follows the summaries as they arrive: on every feed tick that brought data,
new lumisections are streamed and filling ones patched (``views.common.SeriesSync``). A run
that was not emulated gets one line saying so and how to turn it on, no empty plot.
The numbers are shaped by ``dashboard.l1_series`` (shared with the run report) once for all
sessions (``feed.memo``); the alarms are the stored DQM alerts of the run, re-read at most
every ``ALARM_REFRESH_S`` seconds unless an alert or a lumisection arrives.
"""

from __future__ import annotations

import html
import logging
import math
import re
import time
from collections.abc import Sequence
from typing import Any

import panel as pn
from bokeh.models import (
    BoxAnnotation,
    ColumnDataSource,
    HoverTool,
    Label,
    Legend,
    LegendItem,
    NumeralTickFormatter,
    Range1d,
    Span,
    TapTool,
)
from bokeh.plotting import figure

from hotline.alerts.records import LumiSummary
from hotline.dashboard.l1_series import (
    POINT_COLUMNS,
    L1Alarm,
    l1_alarms,
    l1_builds,
    l1_points,
    l1_selection,
    lumi_ranges,
    not_emulated,
    per_seed,
)
from hotline.dashboard.state import DashboardState
from hotline.dashboard.views.common import FIG_STYLE, PALETTE, SeriesSync

__all__ = ["ALARM_REFRESH_S", "L1AgreementView", "y_window"]

log = logging.getLogger(__name__)

#: the run's divergence alarms are re-read at most this often (seconds) between arrivals
ALARM_REFRESH_S = 5.0
#: DQM alerts of the run read to find the divergence alarms (newest first)
ALARMS_READ = 5000
ALARM_COLOR = "#c62828"
TABLE_CSS = (".hotline-l1-seeds,.hotline-l1-top{border-collapse:collapse;font-size:12px;"
             "margin:3px 0 6px}.hotline-l1-seeds td,.hotline-l1-seeds th,.hotline-l1-top td,"
             ".hotline-l1-top th{border:1px solid #ddd;padding:2px 6px;text-align:left}"
             ".hotline-l1-seeds th,.hotline-l1-top th{background:#f4f4f4}"
             "td.num{text-align:right;font-variant-numeric:tabular-nums}")


def y_window(agreements: Sequence[float], min_agreement: float) -> tuple[float, float]:
    """The agreement axis: from below the lowest agreement (and the minimum line) to 1."""
    finite = [a for a in agreements if math.isfinite(a)]
    lo = min([*finite, min_agreement])
    pad = max((1.0 - lo) * 0.15, 2e-4)
    return lo - pad, 1.0 + pad / 3


def _code(text: str) -> str:
    """``text`` HTML-escaped, with `backticks` as <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def _pct(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}%}" if math.isfinite(x) else "-"


class L1AgreementView(pn.viewable.Viewer):
    """Firmware vs serving decision agreement per lumisection of the run on screen."""

    def __init__(self, state: DashboardState, min_agreement: float = 0.999,
                 **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.min_agreement = float(min_agreement)
        self.note = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                 css_classes=["hotline-l1-note"])
        self.builds = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                   css_classes=["hotline-l1-builds"])
        self.detail = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10),
                                   css_classes=["hotline-l1-detail"], stylesheets=[TABLE_CSS])
        lo, hi = y_window([], self.min_agreement)
        self.fig = figure(name="l1_agreement_live", height=280,
                          title="decision agreement, firmware emulation vs serving",
                          x_axis_label="lumisection (LS)", y_axis_label="decision agreement",
                          y_range=Range1d(start=lo, end=hi), **FIG_STYLE)
        self.fig.yaxis.formatter = NumeralTickFormatter(format="0.00%")
        self.bands = ColumnDataSource({"lumi": [], "bottom": [], "top": [], "alarm": []})
        self.fig.vbar(x="lumi", width=0.9, bottom="bottom", top="top",
                               source=self.bands, fill_color=ALARM_COLOR, fill_alpha=0.13,
                               line_color=None)
        self.marks = ColumnDataSource({"lumi": [], "agreement": [], "seed": [], "alarm": []})
        self.fig.scatter("lumi", "agreement", source=self.marks, marker="x", size=16,
                                  line_color=ALARM_COLOR, line_width=3)
        self.min_line = Span(location=self.min_agreement, dimension="width",
                             line_color=ALARM_COLOR, line_dash="dashed", line_width=1.5)
        self.fig.add_layout(self.min_line)
        self.fig.add_layout(Label(x=6, x_units="screen", y=self.min_agreement, y_offset=3,
                                  text=f"minimum agreement {self.min_agreement:.1%}",
                                  text_font_size="8pt", text_color=ALARM_COLOR))
        self.shade = BoxAnnotation(left=None, right=None, fill_color="#1565c0",
                                   fill_alpha=0.12, visible=False)
        self.fig.add_layout(self.shade)
        self.legend = Legend(items=[], click_policy="hide", label_text_font_size="9pt",
                             orientation="horizontal", spacing=4, padding=4, margin=2,
                             border_line_alpha=0.0, glyph_width=18,
                             title="menu seeds (click to hide); x: divergence alarm",
                             title_text_font_size="8pt", title_text_font_style="italic")
        self.fig.add_layout(self.legend, "below")
        self.hover = HoverTool(renderers=[], tooltips=[
            ("LS", "@lumi"), ("seed", "@seed"), ("agreement", "@agreement_text"),
            ("differing", "@differ of @n emulated (@n_failed failed)"),
            ("emulated", "@fraction_text of @n_good good events"), ("build", "@build"),
            ("alarm", "@alarm")])
        self.tap = TapTool(renderers=[])
        self.fig.add_tools(self.hover, self.tap)
        #: per seed: its source and the stream/patch sync (``views.common.SeriesSync``)
        self.seed_sources: dict[str, tuple[ColumnDataSource, SeriesSync]] = {}
        self.plot = pn.pane.Bokeh(self.fig, sizing_mode="stretch_width", visible=False)
        self._shown: Any = None
        self._detail_key: Any = None
        self.redraws = 0  #: how often the plot's data were replaced (tests)
        state.param.watch(self.refresh, ["tick", "selection_version"])
        self.refresh()

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.note, self.builds, self.plot, self.detail,
                         sizing_mode="stretch_width")

    # ------------------------------------------------------------ data

    def alarms(self) -> dict[int, list[L1Alarm]]:
        """The divergence alarms of the run on screen by lumisection (stored DQM alerts),
        shared by the sessions; re-read when an alert or a lumisection arrived, else at
        most every ``ALARM_REFRESH_S`` seconds."""
        s = self.state
        run = s.run
        if run is None:
            return {}
        feed = s.feed

        def read() -> dict[int, list[L1Alarm]]:
            try:
                got = feed.store.alerts(limit=ALARMS_READ, kind="dqm", source=feed.source,
                                        run=run)
            except Exception as exc:  # noqa: BLE001 - no alarms shown, the page lives on
                log.warning("dashboard: L1 divergence alarms of run %s unreadable: %s",
                            run, exc)
                return {}
            return l1_alarms(got)

        version = (len(s.run_summaries()), s.alert_total,
                   int(time.monotonic() // ALARM_REFRESH_S))
        return feed.memo(("l1_alarms", feed.source, run), read, version=version)

    # ------------------------------------------------------------ drawing

    def refresh(self, *_: Any) -> None:
        """Push what changed: the series when the run's comparisons or alarms did (new
        lumisections streamed, filling ones patched), the selection's numbers when they or
        the selection did. The shaping is computed once for all sessions (``feed.memo``)."""
        s = self.state
        sums = s.run_summaries()
        emulated = [x for x in sums if x.l1 is not None]
        if not emulated:
            text = ("<i>No lumisection summaries yet.</i>" if not sums else
                    f"<span class='hotline-l1-off'>{_code(not_emulated(s.run))}</span>")
            self._set(self.note, text)
            self._set(self.builds, "")
            self._set(self.detail, "")
            self.plot.visible = False
            self._shown = self._detail_key = None
            return
        alarms = self.alarms()
        sig = (s.run, len(sums), tuple((x.lumi, x.n_events, x.n_bad, x.l1.n, x.l1.n_failed,
                                        x.l1.header.build) for x in emulated),
               tuple((ls, tuple(xs)) for ls, xs in sorted(alarms.items())))
        if sig != self._shown:
            self._shown = sig
            feed = s.feed
            points = feed.memo(("l1_points", feed.source, s.run),
                               lambda: l1_points(emulated, alarms), version=sig)
            self._draw(points, alarms)
            self._set(self.note, self._note_html(sums, emulated, points, alarms))
            self._set(self.builds, self._builds_html(sums, emulated))
        self._on_selection(emulated, alarms)
        self.plot.visible = True

    @staticmethod
    def _set(pane: Any, text: str) -> None:
        if pane.object != text:
            pane.object = text

    def _draw(self, points: dict[str, list[Any]], alarms: dict[int, list[L1Alarm]]) -> None:
        series = per_seed(points)
        for seed in series:
            if seed not in self.seed_sources:
                self._add_seed(seed, series[seed])
        for seed, (_src, sync) in self.seed_sources.items():
            sync.apply(series.get(seed, {c: [] for c in POINT_COLUMNS}))
        lo, hi = y_window(points["agreement"], self.min_agreement)
        if (self.fig.y_range.start, self.fig.y_range.end) != (lo, hi):
            self.fig.y_range.update(start=lo, end=hi)
        marks: dict[str, list[Any]] = {"lumi": [], "agreement": [], "seed": [], "alarm": []}
        for i, alarm in enumerate(points["alarm"]):
            seed = points["seed"][i]
            mine = [a for a in alarms.get(points["lumi"][i], []) if a.seed == seed]
            if mine and math.isfinite(points["agreement"][i]):
                marks["lumi"].append(points["lumi"][i])
                marks["agreement"].append(points["agreement"][i])
                marks["seed"].append(seed)
                marks["alarm"].append(alarm)
        if marks != dict(self.marks.data):
            self.marks.data = marks
        alarmed = sorted(ls for ls in alarms if ls in set(points["lumi"]))
        bands = {"lumi": alarmed, "bottom": [lo] * len(alarmed), "top": [hi] * len(alarmed),
                 "alarm": [", ".join(a.label for a in alarms[ls]) for ls in alarmed]}
        if bands != dict(self.bands.data):
            self.bands.data = bands
        self.redraws += 1

    def _add_seed(self, seed: str, data: dict[str, list[Any]]) -> None:
        # a new source carries its data from the start (streaming into it in the same hold
        # would reach the browser twice)
        src = ColumnDataSource({c: list(v) for c, v in data.items()})
        color = PALETTE[len(self.seed_sources) % len(PALETTE)]
        line = self.fig.line("lumi", "agreement", source=src, color=color, line_width=2,
                             nonselection_line_alpha=1.0)
        dots = self.fig.scatter("lumi", "agreement", source=src, color=color, size=6,
                                nonselection_fill_alpha=1.0, nonselection_line_alpha=1.0)
        self.legend.items.append(LegendItem(label=seed, renderers=[line, dots]))
        self.hover.renderers = [*self.hover.renderers, dots]
        self.tap.renderers = [*self.tap.renderers, dots]
        src.selected.on_change("indices", lambda attr, old, new: self._on_pick(src, new))
        self.seed_sources[seed] = (src, SeriesSync(src))

    def _on_pick(self, src: ColumnDataSource, idx: Sequence[int]) -> None:
        lumis = [src.data["lumi"][i] for i in idx if i < len(src.data["lumi"])]
        if lumis:
            src.selected.indices = []  # the selection is the state's (shaded), not the point's
            self.pick(min(lumis), max(lumis))

    def pick(self, first: int, last: int | None = None) -> None:
        """Select lumisections as a click on a point does (the status strip's selection)."""
        self.state.select_lumis(first, last)

    def _note_html(self, sums: Sequence[LumiSummary], emulated: Sequence[LumiSummary],
                   points: dict[str, list[Any]], alarms: dict[int, list[L1Alarm]]) -> str:
        n = sum(x.l1.n for x in emulated)
        alarmed = sorted(ls for ls in alarms if ls in {x.lumi for x in emulated})
        worst = min(((a, i) for i, a in enumerate(points["agreement"]) if math.isfinite(a)),
                    default=None)
        run = "-" if self.state.run is None else self.state.run
        text = (f"run {run}: <b>{n:,}</b> events emulated in {len(emulated)} of "
                f"{len(sums)} lumisections")
        if worst is not None:
            i = worst[1]
            text += (f"; lowest agreement {_pct(worst[0])} ({html.escape(points['seed'][i])},"
                     f" LS {points['lumi'][i]})")
        failed = [x.lumi for x in emulated if x.l1.n_failed]
        if failed:
            text += (f"; <b style='color:{ALARM_COLOR}'>the emulation failed in "
                     f"{html.escape(lumi_ranges(failed))}</b>")
        if alarmed:
            text += (f"; <b style='color:{ALARM_COLOR}'>divergence alarms in "
                     f"{html.escape(lumi_ranges(alarmed))}</b>")
        else:
            text += "; no divergence alarm"
        return f"<div class='hotline-l1-summary'>{text}</div>"

    def _builds_html(self, sums: Sequence[LumiSummary],
                     emulated: Sequence[LumiSummary]) -> str:
        builds = l1_builds(emulated)
        rows = "".join(
            f"<li>{html.escape(b.label)} <span style='color:#555'>("
            f"{html.escape(lumi_ranges(b.lumis))}; score with {b.header.frac_bits} "
            "fractional bits)</span></li>" for b in builds)
        more = ("<div style='color:#b26a00'>the build changed during the run</div>"
                if len(builds) > 1 else "")
        off = sorted({x.lumi for x in sums} - {x.lumi for x in emulated})
        if off:
            more += (f"<div style='color:#555'>not emulated: {html.escape(lumi_ranges(off))}"
                     "</div>")
        return (f"<div class='hotline-l1-compared' style='font-size:13px'>compared: "
                f"<ul style='margin:2px 0'>{rows}</ul>{more}</div>")

    def _on_selection(self, emulated: Sequence[LumiSummary],
                      alarms: dict[int, list[L1Alarm]]) -> None:
        s = self.state
        if s.ls_first is None or s.ls_last is None:
            self.shade.visible = False
        else:
            self.shade.update(left=s.ls_first - 0.5, right=s.ls_last + 0.5, visible=True)
        key = (self._shown, s.ls_first, s.ls_last)
        if key == self._detail_key:
            return
        self._detail_key = key
        feed = s.feed
        text = feed.memo(("l1_detail", feed.source, s.run, s.ls_first, s.ls_last),
                         lambda: self._detail_html(emulated, s.selected_lumis(), alarms),
                         version=self._shown)
        self._set(self.detail, text)

    def _detail_html(self, emulated: Sequence[LumiSummary], lumis: list[int] | None,
                     alarms: dict[int, list[L1Alarm]]) -> str:
        label = self.state.selection_label()
        parts = l1_selection(emulated, lumis)
        if not parts:
            return (f"<div class='hotline-l1-sel'><b>{html.escape(label)}</b>: not emulated"
                    "</div>")
        out = []
        for part in parts:
            b = part["build"]
            corr = part["correlation"]
            out.append(
                f"<div class='hotline-l1-sel' style='font-size:13px;margin-top:6px'>"
                f"<b>{html.escape(label)}</b>, {html.escape(b.label)}: "
                f"<b>{part['n']:,}</b> of {part['n_good']:,} good events emulated "
                f"({_pct(part['fraction'], 1)}), {part['n_failed']:,} failed; score "
                f"correlation {f'{corr:.6f}' if math.isfinite(corr) else '-'}</div>")
            sel_alarms = {a.seed: a.level for ls, xs in alarms.items()
                          if lumis is None or ls in set(lumis) for a in xs
                          if not a.build or a.build == b.header.build}
            rows = "".join(
                f"<tr><td>{html.escape(x['seed'])}</td><td class='num'>{x['p']:g}</td>"
                f"<td class='num'>{x['fixed']}</td><td class='num'>{x['differ']:,}</td>"
                f"<td class='num'>{_pct(x['agreement'])}</td>"
                f"<td class='num'>{x['pass_fw']:,}</td><td class='num'>{x['pass_sv']:,}</td>"
                f"<td>{html.escape(sel_alarms.get(x['seed'], ''))}</td></tr>"
                for x in part["seeds"])
            out.append(
                "<table class='hotline-l1-seeds'><tr><th>seed</th><th>p</th>"
                "<th>threshold (LSB)</th><th>differ</th><th>agreement</th>"
                "<th>firmware pass</th><th>serving pass</th><th>alarm</th></tr>"
                f"{rows}</table>")
            if "" in sel_alarms:
                out.append(f"<div style='color:{ALARM_COLOR}'>the emulation failed "
                           f"({html.escape(sel_alarms[''])})</div>")
            if part["top"]:
                tops = "".join(
                    f"<tr><td class='num'>{t['lumi']}</td><td class='num'>{t['event']}</td>"
                    f"<td class='num'>{t['firmware']:.5g}</td>"
                    f"<td class='num'>{t['serving']:.5g}</td>"
                    f"<td class='num'>{t['diff']:.3g}</td></tr>" for t in part["top"])
                out.append(
                    "<div style='font-size:12px;margin-top:4px'>largest score differences"
                    "</div><table class='hotline-l1-top'><tr><th>LS</th><th>event</th>"
                    "<th>firmware</th><th>serving</th><th>|difference|</th></tr>"
                    f"{tops}</table>")
        return "".join(out)

