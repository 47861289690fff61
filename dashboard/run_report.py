"""The run report: one self-contained HTML page of a run's status for the shift e-log.

Owns ``render_report`` (the page as a string) and ``write_report`` (the page as a file),
plus ``ae_model_of_run`` (the anomaly model named by a run's AE alerts, for callers that
need its thresholds). The page needs no network when opened: the Bokeh plots are embedded
with ``bokeh.resources.INLINE`` (JavaScript inlined, only the bundles the plots use, never
the external files other packages' models declare), the rest is plain HTML with inline CSS.

Inputs: the run's ``RunStatus`` and certification ``LumiFlag``s as computed by the status
engine and the certification (``alerts.run_status``, ``alerts.certification``); everything
else (per-lumisection summaries, alerts, dead letters) is read from the alert store. The
sections, one helper each: header (run, source, time span, events, code and model
versions, reference provenance, statistical method), status timeline (one coloured bar
per lumisection, reason on hover), rates vs expectation (``rates`` series: AE thresholds
with their p-value band, classic rules, input events, quarantined fraction; expected
values from the status findings where it has them), non-green ranges with their reasons
and findings, top alerts with their loss contributions (``alert_detail``), DQM findings,
L1 agreement per lumisection when the summaries carry it (firmware in the loop,
``stream.l1_emulation``: a plot of the agreement per menu seed and the lumisections where
firmware and serving differ, with their divergence alerts; shaped by ``l1_series``, as the
live view ``views.l1_agreement``), distribution findings (the
lumisection histograms against the reference: object type, variable, region), dead
letters per reason, the certification (golden JSON, bad lumisections with reasons, expert
overrides with who, when and comment) and the crew's acknowledgements of alerts and
lumisection flags (``alerts.acknowledgements``: what, who, when, comment).

Every piece of text that comes from the store or the status (reasons, comments, rule
names, units) is HTML-escaped; plot tooltips show field values as text.
"""

from __future__ import annotations

import heapq
import html
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hotline.alerts.lumi_status import LumiFlag, RunStatus, merge_ranges
from hotline.alerts.records import AlertRecord, DeadLetter, LumiSummary
from hotline.dashboard import alert_detail, rates
from hotline.dashboard.l1_series import (
    L1Alarm,
    l1_alarms,
    l1_builds,
    l1_lumi_rows,
    l1_points,
    per_seed,
)
from hotline.dashboard.model_info import Threshold

__all__ = ["TOP_ALERTS", "ae_model_of_run", "render_report", "write_report"]

TOP_ALERTS = 10  #: alerts with the highest scores shown with their contributions
DQM_ROWS = 50  #: DQM alerts listed (the most significant first)
LEGEND_ROWS = 8  #: legend entries per column of a rate plot
FINDING_ROWS = 300  #: rows of non-green findings listed
L1_ROWS = 50  #: lumisections listed in the L1 agreement table (those with differences first)
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"]
FIG: dict[str, Any] = {"sizing_mode": "stretch_width", "toolbar_location": "above",
                       "tools": "pan,wheel_zoom,box_zoom,reset,save"}

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;padding:16px 28px;
color:#222;height:auto}
h1{font-size:22px;margin:4px 0 10px}h2{font-size:18px;margin:26px 0 8px;border-bottom:1px solid
#ddd;padding-bottom:3px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:4px 0 10px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;color:#fff;border-radius:5px;padding:3px 12px;font-weight:700}
.note{color:#555;font-size:13px}.bar{display:inline-block;height:10px;background:#1f77b4;
vertical-align:middle}pre{background:#f7f7f7;padding:8px;font-size:13px;white-space:pre-wrap}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:13px;margin:0}
dt{color:#666}dd{margin:0}.top-alerts td{white-space:nowrap}
.top-alerts td:last-child{white-space:normal;min-width:260px}
"""


# ------------------------------------------------------------------ small helpers

def _e(value: Any) -> str:
    """``value`` as HTML text (escaped, quotes too)."""
    return html.escape(str(value), quote=True)


def _bold(text: str) -> str:
    """Escape ``text`` and turn its ``**x**`` (the dashboard notes' emphasis) into bold."""
    parts = _e(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))


def _badge(level: str) -> str:
    color = rates.STATUS_COLORS.get(level, "#757575")
    return f"<span class='badge' style='background:{color}'>{_e(level.upper())}</span>"


class Markup:
    """A table cell that is already HTML (built from escaped parts)."""

    def __init__(self, html_text: str) -> None:
        self.html = html_text


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], num: Sequence[int] = (),
           cls: str = "") -> str:
    """An HTML table; cells are escaped unless given as ``Markup`` (pre-built HTML)."""
    out = [f"<table class='{_e(cls)}'><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head)
           + "</tr>"]
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            text = c.html if isinstance(c, Markup) else _e(c)
            cells.append(f"<td class='num'>{text}</td>" if i in num else f"<td>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _utc(t: float | None) -> str:
    if not t:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _num(x: float | None, fmt: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, fmt)


def _label(first: int, last: int) -> str:
    return f"LS {first}" if first == last else f"LS {first}-{last}"


def _grouped(items: Iterable[tuple[int, tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """``(lumi, cells)`` items as rows ``(label, *cells)``, consecutive lumisections with the
    same cells merged into one ``LS a-b`` row; ordered by first lumisection."""
    groups: list[list[Any]] = []  # [first, last, cells]
    open_: dict[tuple[Any, ...], list[Any]] = {}
    for ls, cells in sorted(items, key=lambda it: it[0]):
        g = open_.get(cells)
        if g is not None and ls == g[1] + 1:
            g[1] = ls
        elif g is None or ls != g[1]:
            g = [ls, ls, cells]
            groups.append(g)
            open_[cells] = g
    return [(_label(a, b), *cells) for a, b, cells in groups]


# ------------------------------------------------------------------ store reads

def _read_alerts(store: Any, status: RunStatus, top: int
                 ) -> tuple[list[AlertRecord], list[AlertRecord], dict[str, int]]:
    """(top ``top`` scored event alerts, DQM alerts, alerts per rule) of the run."""
    scored: list[tuple[float, str, AlertRecord]] = []
    dqm: list[AlertRecord] = []
    counts: Counter[str] = Counter()
    for a in store.iter_alerts(run=status.run, source=status.source):
        counts[a.rule] += 1
        if a.kind == "dqm":
            dqm.append(a)
        elif a.score is not None and math.isfinite(a.score):
            item = (float(a.score), a.id, a)
            if len(scored) < top:
                heapq.heappush(scored, item)
            elif item > scored[0]:
                heapq.heapreplace(scored, item)
    best = [a for _, _, a in sorted(scored, key=lambda t: (-t[0], t[1]))]
    dqm.sort(key=lambda a: (a.lumi, a.rule))
    return best, dqm, dict(counts)


def ae_model_of_run(store: Any, source: str, run: int) -> tuple[str, str] | None:
    """(model name, version) named by the first AE alert of the run, or None."""
    for a in store.iter_alerts(run=run, source=source, kind="ae", page_size=50):
        model = a.payload.get("model")
        if model:
            return str(model), str(a.payload.get("version") or "")
    return None


# ------------------------------------------------------------------ sections

def _header(status: RunStatus, sums: Sequence[LumiSummary], models: Sequence[str],
            generated: float) -> str:
    from hotline import __version__

    n = sum(s.n_events for s in sums)
    bad = sum(s.n_bad for s in sums)
    first = min((s.first_seen for s in sums), default=None)
    last = max((s.last_seen for s in sums), default=None)
    lumis = [s.lumi for s in sums] or [s.lumi for s in status.lumis]
    span = f"{_label(min(lumis), max(lumis))} ({len(lumis)} lumisections)" if lumis else "-"
    items = [
        ("source", status.source), ("lumisections", span),
        ("events", f"{n:,} ({bad:,} quarantined)"),
        ("processed", f"{_utc(first)} to {_utc(last)}"),
        ("code", f"hotline {__version__}"
         + (f"; models {', '.join(models)}" if models else "")),
        ("statistics", status.method or "-"),
        ("report written", _utc(generated)),
    ]
    ref = status.reference or {}
    ref_text = "; ".join(f"{k}: {v if isinstance(v, str | int | float) else json.dumps(v)}"
                         for k, v in ref.items()) or "none recorded"
    items.insert(5, ("reference", ref_text))
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    return (f"<h1>Run {_e(status.run)} {_badge(status.level)}</h1>"
            f"<p id='run-reason'>{_e(status.reason)}</p><dl>{dl}</dl>")


def _timeline(status: RunStatus, sums: Sequence[LumiSummary]) -> Any:
    from bokeh.models import ColumnDataSource, HoverTool, Range1d
    from bokeh.plotting import figure

    by_lumi = {s.lumi: s for s in status.lumis}
    lumis = sorted(set(by_lumi) | {s.lumi for s in sums})
    n_of = {s.lumi: s.n_events for s in sums}
    levels = [by_lumi[ls].level if ls in by_lumi else "idle" for ls in lumis]
    src = ColumnDataSource({
        "lumi": lumis, "level": levels,
        "color": [rates.STATUS_COLORS.get(lv, "#757575") for lv in levels],
        "events": [by_lumi[ls].n_events if ls in by_lumi else n_of.get(ls, 0) for ls in lumis],
        "reason": [(by_lumi[ls].reason or "as expected") if ls in by_lumi else "not assessed"
                   for ls in lumis],
    })
    fig = figure(name="timeline", height=130, title="status per lumisection (hover: reason)",
                 x_axis_label="lumisection", y_range=Range1d(start=0, end=1), **FIG)
    fig.vbar(x="lumi", top=1, width=0.9, color="color", source=src)
    fig.yaxis.visible = False
    fig.ygrid.grid_line_color = None
    fig.add_tools(HoverTool(tooltips=[("LS", "@lumi"), ("status", "@level"),
                                      ("events", "@events"), ("reason", "@reason")]))
    return fig


def _expected_from_findings(status: RunStatus) -> dict[str, dict[int, float]]:
    """quantity -> lumisection -> expectation from the findings: events for the input
    rate, else the expected fraction (expected count / n)."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for s in status.lumis:
        for f in s.findings:
            if f.kind == "input":
                out[f.quantity][s.lumi] = f.expected
            elif f.n > 0 and f.kind not in ("trend", "dqm"):
                out[f.quantity][s.lumi] = f.expected / f.n
    return out


def _rate_figures(status: RunStatus, sums: Sequence[LumiSummary], ae_rule: str | None,
                  thresholds: Sequence[Threshold]) -> tuple[list[Any], str]:
    """The rates-vs-expectation figures and a note on what could not be drawn."""
    from bokeh.models import ColumnDataSource
    from bokeh.models.annotations import Legend
    from bokeh.plotting import figure

    expected = _expected_from_findings(status)
    notes = []
    figs = []

    def fig_(name: str, title: str, y: str, log: bool = True) -> Any:
        f = figure(name=name, height=280, title=title, x_axis_label="lumisection",
                   y_axis_label=y, y_axis_type="log" if log else "linear", **FIG)
        f.add_layout(Legend(click_policy="hide", label_text_font_size="8pt", spacing=0),
                     "right")
        return f

    def expect(f: Any, quantity: str, color: str, label: str) -> None:
        """Crosses at the expected values of ``quantity`` where the status has them."""
        pts = expected.get(quantity) or {}
        if pts:
            xs = sorted(pts)
            f.scatter(xs, [pts[x] for x in xs], marker="x", size=9, color=color,
                      legend_label=label)

    ae = rates.ae_series(sums, ae_rule, thresholds)
    if ae:
        f = fig_("rates_ae", "AE accepted fraction (band: threshold p-value +-2 sigma)",
                 "fraction of events")
        for i, (label, d) in enumerate(ae.items()):
            c = PALETTE[i % len(PALETTE)]
            src = ColumnDataSource(d)
            f.varea("lumi", "lo", "hi", source=src, fill_color=c, fill_alpha=0.18,
                    legend_label=f"{label} expected")
            f.line("lumi", "expected", source=src, color=c, line_dash="dashed",
                   legend_label=f"{label} expected")
            f.line("lumi", "frac", source=src, color=c, line_width=2,
                   legend_label=f"{label} observed")
            f.scatter("lumi", "frac", source=src, color=c, size=4,
                      legend_label=f"{label} observed")
        figs.append(f)
    else:
        notes.append("AE rates: no calibrated thresholds for the run's anomaly score"
                     if ae_rule else "AE rates: no anomaly model in this run")
    scoring = {r for s in sums for r in s.score_hist}
    rules = {k: v for k, v in rates.rule_series(sums).items() if k not in scoring}
    if rules:
        f = fig_("rates_rules", "classic rules: accepted fraction (x: expected)",
                 "fraction of events")
        for i, (rule, d) in enumerate(rules.items()):
            c = PALETTE[i % len(PALETTE)]
            src = ColumnDataSource(d)
            f.line("lumi", "frac", source=src, color=c, line_width=2, legend_label=rule)
            f.scatter("lumi", "frac", source=src, color=c, size=4, legend_label=rule)
            expect(f, f"rule:{rule}", c, rule)
        figs.append(f)
    inp = rates.input_series(sums)
    if inp["lumi"]:
        f = fig_("rates_input", "input events per lumisection (x: expected)", "events",
                 log=False)
        f.vbar(x=inp["lumi"], top=inp["n"], width=0.8, color="#546e7a", legend_label="events")
        expect(f, "input_rate", "#000", "expected")
        q = fig_("rates_quarantine", "quarantined fraction (x: expected)",
                 "fraction of events", log=False)
        frac = [b / n if n else float("nan") for n, b in zip(inp["n"], inp["bad"], strict=True)]
        q.vbar(x=inp["lumi"], top=frac, width=0.8, color="#c62828", legend_label="quarantined")
        expect(q, "quarantine", "#000", "expected")
        figs += [f, q]
    for f in figs:  # long legends in columns rather than cut off
        for legend in f.legend:
            legend.ncols = max(1, math.ceil(len(legend.items) / LEGEND_ROWS))
    return figs, "; ".join(notes)


def _ranges_section(status: RunStatus) -> str:
    if not status.ranges:
        return "<p class='note'>every assessed lumisection is green.</p>"
    rows = [(r.label(), Markup(_badge(r.level)), r.reason) for r in status.ranges]
    out = [_table(["lumisections", "status", "reason"], rows, cls="ranges")]
    details = _grouped((s.lumi, (f.quantity, _num(f.observed, ".4g"), _num(f.expected, ".4g"),
                                 f.n, _num(f.p_value, ".2g"), _num(f.p_corrected, ".2g"),
                                 f.level, f.text, f.where))
                       for s in status.lumis for f in s.findings if f.level in ("amber", "red"))
    if details:
        shown = details[:FINDING_ROWS]
        more = f", the first {len(shown)} shown" if len(shown) < len(details) else ""
        out.append("<details><summary>findings of the non-green lumisections "
                   f"({len(details)}{more})</summary>")
        out.append(_table(["LS", "quantity", "observed", "expected", "n", "p", "p corrected",
                           "level", "finding", "where"], shown, num=(2, 3, 4, 5, 6)))
        out.append("</details>")
    return "".join(out)


def _shares(values: dict[str, list], n: int, extra: dict[str, str] | None = None) -> Markup:
    """The ``n`` largest contributions as lines of a small bar and a share of the total."""
    total = sum(values["value"]) or 1.0
    lines = []
    for lbl, v in list(zip(values["label"], values["value"], strict=True))[:n]:
        width = max(v / total, 0.0) * 80
        lines.append(f"<span class='bar' style='width:{width:.0f}px'></span> {_e(lbl)} "
                     f"{v / total:.0%}{_e((extra or {}).get(lbl, ''))}")
    return Markup("<br>".join(lines) or "-")


def _alerts_section(best: Sequence[AlertRecord], counts: dict[str, int]) -> str:
    out = []
    if counts:
        per_rule = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out.append("<h3>alerts per rule</h3>"
                   + _table(["rule", "alerts"], [(r, f"{n:,}") for r, n in per_rule], num=(1,)))
    if not best:
        out.append("<p class='note'>no scored alerts in this run.</p>")
        return "".join(out)
    rows = []
    for a in best:
        c = alert_detail.contributions(a)  # the dashboard's drill-down, as the crew knows it
        where = {r["object"]: f" (pT {r['pt']:.0f}, eta {r['eta']:.2f}, phi {r['phi']:.2f})"
                 for r in alert_detail.object_rows(a)}
        rows.append((Markup(f"<b>{_e(a.rule)}</b><br>LS {_e(a.lumi)}, event {_e(a.event)}"
                            f"<br><span class='note'>{_e(a.id[:12])}</span>"),
                     Markup(f"{_num(a.score)}<br>p = {_num(a.p_value, '.2g')}<br>"
                            f"Z = {_num(a.significance, '.1f')}"),
                     _shares(c["types"], 4), _shares(c["objects"], 3, where),
                     Markup(_bold(c["note"]))))
    out.append(f"<h3>top {len(best)} alerts by score</h3>"
               + _table(["alert", "score", "per type", "largest objects", "note"], rows,
                        cls="top-alerts"))
    return "".join(out)


def _dqm_section(status: RunStatus, dqm: Sequence[AlertRecord]) -> str:
    out = []
    findings = _grouped((s.lumi, (f.quantity, f.level, f.text, f.where))
                        for s in status.lumis for f in s.findings
                        if f.kind == "dqm" and f.level != "green")
    if findings:
        out.append(_table(["LS", "quantity", "level", "finding", "where"], findings))
    if not dqm:
        out.append("<p class='note'>no DQM alerts in this run.</p>")
        return "".join(out)
    shown = sorted(dqm, key=lambda a: (a.p_value if a.p_value is not None else 1.0,
                                       -(a.score or 0.0)))[:DQM_ROWS]
    shown.sort(key=lambda a: (a.lumi, a.rule))
    rows = []
    for a in shown:
        p = a.payload
        units = p.get("summary") or ", ".join(
            f"{u.get('level', '')} {u.get('unit', '')}" for u in p.get("top_units") or [])
        rows.append((f"LS {a.lumi}", p.get("subsystem") or a.rule, p.get("model", "-"),
                     _num(a.score), _num(a.p_value, ".2g"), units))
    more = (f" (the {DQM_ROWS} most significant of {len(dqm)})" if len(dqm) > DQM_ROWS
            else "")
    out.append(f"<p>{len(dqm)} DQM alerts in "
               f"{len({a.lumi for a in dqm})} lumisections{_e(more)}:</p>")
    out.append(_table(["LS", "subsystem", "model", "score", "p", "flagged hardware units"],
                      rows, num=(3, 4), cls="dqm"))
    return "".join(out)


def _l1_figure(sums: Sequence[LumiSummary],
               alarms: dict[int, list[L1Alarm]] | None = None) -> Any:
    """Agreement of firmware and serving decisions per lumisection, one line per menu seed
    (``l1_series``: the shaping the live view uses too)."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.models.annotations import Legend
    from bokeh.plotting import figure

    f = figure(name="l1_agreement", height=240, title="L1 emulation vs serving: decision "
               "agreement per lumisection (hover: differing events)",
               x_axis_label="lumisection", y_axis_label="agreement", **FIG)
    f.add_layout(Legend(click_policy="hide", label_text_font_size="8pt", spacing=0), "right")
    for i, (label, data) in enumerate(per_seed(l1_points(sums, alarms)).items()):
        src = ColumnDataSource({k: data[k] for k in ("lumi", "agreement", "agreement_text",
                                                     "differ", "n", "fraction_text", "alarm")})
        c = PALETTE[i % len(PALETTE)]
        f.line("lumi", "agreement", source=src, color=c, line_width=2, legend_label=label)
        f.scatter("lumi", "agreement", source=src, color=c, size=4, legend_label=label)
    f.add_tools(HoverTool(tooltips=[("LS", "@lumi"), ("agreement", "@agreement_text"),
                                    ("differing", "@differ of @n"),
                                    ("emulated", "@fraction_text of the good events"),
                                    ("alarm", "@alarm")]))
    return f


def _l1_section(sums: Sequence[LumiSummary], dqm: Sequence[AlertRecord]) -> str:
    """The lumisections whose firmware and serving decisions differ, with their alarms."""
    alarms = l1_alarms(dqm)
    l1 = [s for s in sums if s.l1 is not None]
    builds = sorted(b.label for b in l1_builds(l1))
    n = sum(s.l1.n for s in l1)
    out = [f"<p>{_e(', '.join(builds))}: {n:,} events emulated in {len(l1)} lumisections; "
           f"{sum(map(len, alarms.values()))} divergence alerts in {len(alarms)} "
           "lumisections.</p>"]
    shown = l1_lumi_rows(l1, alarms)
    if not shown:
        out.append("<p class='note'>firmware and serving decisions agree on every emulated "
                   "event.</p>")
        return "".join(out)
    cut = sorted(shown, key=lambda r: -r["n_differ"])[:L1_ROWS]
    rows = [(f"LS {r['lumi']}", r["n"], r["n_failed"], r["differ"] or "-",
             _num(r["correlation"], ".6f"), r["alarms"] or "-")
            for r in sorted(cut, key=lambda r: r["lumi"])]
    if len(shown) > len(cut):
        out.append(f"<p class='note'>the {len(cut)} lumisections with the most differing "
                   f"decisions of {len(shown)}:</p>")
    out.append(_table(["LS", "emulated", "failed", "differing decisions (agreement)",
                       "score correlation", "divergence alerts"], rows, num=(1, 2, 4),
                      cls="l1"))
    return "".join(out)


def _dist_section(status: RunStatus) -> str:
    """The non-green distribution findings (``alerts.distribution_checks``), by lumisection."""
    rows = _grouped((s.lumi, (f.quantity.removeprefix("dist:"), Markup(_badge(f.level)),
                              _num(f.p_value, ".2g"), _num(f.p_corrected, ".2g"), f.where,
                              f.text))
                    for s in status.lumis for f in s.findings
                    if f.kind == "dist" and f.level in ("amber", "red"))
    if not rows:
        return ("<p class='note'>no lumisection histogram differs from its reference beyond "
                "the distribution family's false-alarm budget.</p>")
    shown = rows[:FINDING_ROWS]
    more = f" (the first {len(shown)} of {len(rows)})" if len(shown) < len(rows) else ""
    return (f"<p>{len(rows)} distribution findings{_e(more)}:</p>"
            + _table(["LS", "histogram", "level", "p", "p corrected", "where", "finding"],
                     shown, num=(3, 4), cls="dist"))


def _deadletters_section(run: int, letters: Sequence[DeadLetter]) -> str:
    if not letters:
        return "<p class='note'>no dead letters for this run.</p>"
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for d in letters:
        row = per[d.reason]
        row[0] += 1
        row[1] += len(d.events)
        row[2] += d.resolved is None
    rows = [(reason, f"{n:,}", f"{ev:,}", f"{open_:,}")
            for reason, (n, ev, open_) in sorted(per.items(), key=lambda kv: -kv[1][0])]
    return (f"<p>{len(letters):,} dead letters, {sum(len(d.events) for d in letters):,} "
            f"events (details: <code>hotline deadletters --run {_e(run)}</code>):</p>"
            + _table(["reason", "dead letters", "events", "open"], rows, num=(1, 2, 3)))


def _certification_section(run: int, flags: Sequence[LumiFlag]) -> str:
    if not flags:
        return (f"<p class='note'>run {_e(run)} is not certified yet "
                f"(<code>hotline certify {_e(run)}</code>).</p>")
    good = merge_ranges(f.lumi for f in flags if f.good)
    golden = json.dumps({str(run): good})
    n_good = sum(f.good for f in flags)
    out = [f"<p>{n_good} of {len(flags)} lumisections certified good.</p>",
           "<h3>good lumisections (golden JSON)</h3>",
           f"<pre id='golden-json'>{_e(golden)}</pre>"]
    bad = _grouped((f.lumi, (f.reason, f.level, f.decided_by)) for f in flags if not f.good)
    if bad:
        out.append("<h3>bad lumisections</h3>" + _table(
            ["lumisections", "reason", "assessed", "decided by"], bad, cls="bad"))
    overrides = sorted((f for f in flags if f.decided_by != "auto"), key=lambda f: f.lumi)
    out.append("<h3>expert overrides</h3>")
    if overrides:
        out.append(_table(["LS", "certified", "by", "when", "comment"],
                          [(f"LS {f.lumi}", "good" if f.good else "bad", f.decided_by,
                            _utc(f.at), f.comment) for f in overrides], cls="overrides"))
    else:
        out.append("<p class='note'>none: every flag is the status engine's.</p>")
    return "".join(out)


def _acknowledgements_section(store: Any, status: RunStatus) -> str:
    from hotline.alerts.acknowledgements import acknowledgements

    try:
        acks = acknowledgements(store, status.run, status.source)
    except Exception:  # noqa: BLE001 - a store without the table: nothing acknowledged
        acks = []
    if not acks:
        return "<p class='note'>nothing acknowledged by the crew.</p>"
    return _table(["acknowledged", "lumisections", "by", "when", "comment"],
                  [("alert: " + a.what if a.alert_id else "flags: " + a.what, a.lumis,
                    a.acked_by, _utc(a.at), a.comment) for a in acks], cls="acks")


# ------------------------------------------------------------------ the page

def render_report(store: Any, status: RunStatus, flags: Sequence[LumiFlag] = (), *,
                  thresholds: Sequence[Threshold] = (), ae_rule: str | None = None,
                  top: int = TOP_ALERTS, generated: float | None = None) -> str:
    """The run report of ``status`` as one self-contained HTML page (no network needed).

    ``flags``: the run's certification flags (none: "not certified yet");
    ``thresholds``: the calibrated AE thresholds (``model_info``) for the AE rate plot;
    ``ae_rule``: the AE rule whose score histograms are counted (default: the first rule
    with score histograms in the run's summaries); ``top``: alerts shown with their
    contributions; ``generated``: the time stamped on the page (default: now).
    """
    from bokeh.embed import file_html
    from bokeh.embed.bundle import bundle_for_objs_and_resources
    from bokeh.resources import INLINE
    from jinja2 import Template

    generated = time.time() if generated is None else generated
    sums = sorted(store.summaries(source=status.source, run=status.run), key=lambda s: s.lumi)
    if ae_rule is None:
        ae_rule = min((r for s in sums for r in s.score_hist), default=None)
    best, dqm, counts = _read_alerts(store, status, top)
    letters = list(store.iter_deadletters(run=status.run, source=status.source))
    models = sorted({f"{a.payload['model']} v{a.payload.get('version', '?')}"
                     for a in best if a.payload.get("model")}
                    | {str(a.payload["model"]) for a in dqm if a.payload.get("model")})
    rate_figs, rate_note = _rate_figures(status, sums, ae_rule, thresholds)
    # the page: HTML parts (escaped here) and plots (embedded by Bokeh), in order
    parts: list[str | Any] = [
        _header(status, sums, models, generated),
        "<h2>Status timeline</h2>", _timeline(status, sums),
        "<h2>Rates vs expectation</h2>",
        f"<p class='note'>{_e(rate_note)}</p>" if rate_note else "", *rate_figs,
        "<h2>Non-green lumisections</h2>", _ranges_section(status),
        "<h2>Alerts</h2>", _alerts_section(best, counts),
        "<h2>DQM findings</h2>", _dqm_section(status, dqm),
        *(["<h2>L1 emulation agreement</h2>", _l1_figure(sums, l1_alarms(dqm)),
           _l1_section(sums, dqm)]
          if any(s.l1 is not None for s in sums) else []),
        "<h2>Distribution findings</h2>", _dist_section(status),
        "<h2>Dead letters</h2>", _deadletters_section(status.run, letters),
        "<h2>Certification</h2>", _certification_section(status.run, flags),
        "<h2>Crew acknowledgements</h2>", _acknowledgements_section(store, status),
    ]
    texts: list[str] = []
    body = []
    figs = []
    for p in parts:
        if isinstance(p, str):
            body.append(f"{{{{ parts[{len(texts)}] }}}}")
            texts.append(p)
        else:
            body.append(f"<div class='plot'>{{{{ embed(roots.{p.name}) }}}}</div>")
            figs.append(p)
    # Bokeh's inline JavaScript only: in inline mode its resource *files* are just the
    # external files that other packages' models declare (Panel's, once it is imported)
    bundle = bundle_for_objs_and_resources(figs, INLINE)
    template = Template(
        "{% extends base %}{% block css_resources %}{{ inline_css }}{% endblock %}"
        "{% block js_resources %}{{ inline_js }}{% endblock %}"
        "{% block postamble %}<style>{{ css }}</style>{% endblock %}"
        "{% block contents %}" + "".join(body) + "{% endblock %}")
    return file_html(figs, INLINE, f"Hotline run {status.run} report", template=template,
                     template_variables={
                         "parts": texts, "css": CSS, "inline_js": bundle.scripts(),
                         "inline_css": "".join(f"<style>{c}</style>" for c in bundle.css_raw)})


def write_report(path: str | Path, store: Any, status: RunStatus,
                 flags: Sequence[LumiFlag] = (), **options: Any) -> Path:
    """Write ``render_report(store, status, flags, **options)`` to ``path``; returns it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(store, status, flags, **options), encoding="utf-8")
    return out
