"""The run report on a real replayed run: self-contained, complete, escaped, small enough."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import pytest

from hotline.alerts.lumi_status import RunStatus
from hotline.alerts.store import SQLiteAlertStore
from hotline.dashboard import alert_detail
from hotline.dashboard.model_info import load_model_info
from hotline.dashboard.run_report import render_report, write_report
from hotline.models.registry import load_model
from tests.support.report_run import (
    EVENTS_PER_LUMI,
    EVIL,
    LUMIS,
    REASON,
    RUN,
    SOURCE,
    lumi_flags,
    replay_run,
    run_status,
)

BLOCK = {"td", "th", "tr", "br", "p", "div", "dt", "dd", "pre", "h1", "h2", "h3", "summary"}


class _Text(HTMLParser):
    """The visible text of a page (script and style contents left out; a space between
    table cells, paragraphs and other blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self.skip += 1
        if tag in BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip -= 1
        if tag in BLOCK:
            self.parts.append(" ")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def _parse(page: str) -> _Text:
    p = _Text()
    p.feed(page)
    return p


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", "".join(_parse(page).parts))


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    store = SQLiteAlertStore(replay_run(tmp_path_factory.mktemp("report")))
    yield store
    store.close()


@pytest.fixture(scope="module")
def page(replayed) -> str:
    # Panel registers models that declare external JavaScript; a report rendered in a
    # process that imported it (the dashboard's) must still be self-contained
    import panel  # noqa: F401

    thresholds, _, _ = load_model_info("ae_default")
    assert thresholds
    return render_report(replayed, run_status(), lumi_flags(), thresholds=thresholds,
                         generated=1.7e9)


def test_page_needs_no_network_and_stays_small(page):
    assert len(page.encode()) < 3_000_000  # 40 lumisections, 5 plots, Bokeh inlined
    tags = _parse(page).tags
    for tag, attrs in tags:
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not re.match(r"^\s*(https?:)?//", value), (tag, key, value)
    assert not [t for t, a in tags if t == "link"]  # no external stylesheet
    scripts = [a for t, a in tags if t == "script"]
    assert scripts and not any(a.get("src") for a in scripts)
    assert "Bokeh" in page  # the library itself is inline
    # every plot is embedded: five roots named in the document JSON
    for name in ("timeline", "rates_ae", "rates_rules", "rates_input", "rates_quarantine"):
        assert f'"name":"{name}"' in page


def test_header_timeline_and_ranges(page):
    text = _text(page)
    assert "Run 42" in text and "RED" in text and "LS 25-32 bad" in text
    assert f"{LUMIS * EVENTS_PER_LUMI:,} (3 quarantined)" in text
    assert "LS 1-40 (40 lumisections)" in text
    calo = f"conv_calo_regions v{load_model('conv_calo_regions').version}"  # the shipped
    assert "hotline 0.1.0" in text and "ae_default v" in text and calo in text
    assert "run: 41; set_by: expert" in text  # reference provenance
    assert "Holm-Bonferroni" in text  # statistical method
    assert f"LS 25-32 RED {REASON}" in text
    # the non-green findings: the 8 bad lumisections' identical findings in one row
    assert "LS 25-32 ae_default_p1e-02" in text and "jets near eta 1.8, phi 2.6" in text
    # the timeline carries one bar per lumisection with its level and reason
    assert '"reason"' in page and page.count(REASON) >= 2


def test_alerts_are_the_stores_top_scores_with_their_contributions(page, replayed):
    text = _text(page)
    counts = replayed.rule_counts(run=RUN, source=SOURCE)
    for rule, n in counts.items():
        assert f"{rule} {n:,}" in text
    scored = sorted((a for a in replayed.iter_alerts(run=RUN) if a.kind == "ae"),
                    key=lambda a: -a.score)
    top = scored[0]
    assert f"LS {top.lumi}, event {top.event}" in text
    c = alert_detail.contributions(top)
    note = html.unescape(c["note"]).replace("**", "")
    assert note in text  # the dashboard's own drill-down note
    assert f"{c['types']['label'][0]} " in text
    # the 11th is not shown; the 10th is
    assert f"LS {scored[9].lumi}, event {scored[9].event}" in text
    assert f"event {scored[10].event} " not in text or scored[10].score == scored[9].score


def test_dqm_findings_deadletters_and_certification(page, replayed):
    text = _text(page)
    dqm = replayed.alerts(kind="dqm", run=RUN)
    assert f"{len(dqm)} DQM alerts in {len({a.lumi for a in dqm})} lumisections" in text
    hot = next(a for a in dqm if a.lumi == 30)
    calo = f"conv_calo_regions v{load_model('conv_calo_regions').version}"  # the shipped
    assert f"LS 30 calo_regions {calo}" in text
    assert hot.payload["summary"] in text  # the flagged hardware units
    # dead letters: the quarantined NaN events, per reason, events counted
    letters = list(replayed.iter_deadletters(run=RUN))
    reason = letters[0].reason
    assert f"{reason} {len(letters)} {sum(len(d.events) for d in letters)}" in text
    # certification: golden JSON of the good lumisections, bad ones, overrides
    golden = re.search(r"<pre id='golden-json'>(.*?)</pre>", page).group(1)
    assert json.loads(html.unescape(golden)) == {"42": [[1, 24], [33, 39]]}
    assert "31 of 40 lumisections certified good" in text
    assert f"LS 25-32 {REASON} red auto" in text
    assert "LS 40 beam dump green bob" in text
    assert "LS 3 good alice 2023-11-14 22:14:20 UTC" in text
    assert "LS 40 bad bob 2023-11-14 22:15:20 UTC beam lost mid-LS" in text


def test_user_text_is_escaped_everywhere(page):
    # the reason and the expert's comment hold markup: it shows as text, never as markup
    assert "<script>window.__pwned" not in page
    assert "<img src=x" not in page
    text = _text(page)
    assert f"checked {EVIL} & ok" in text
    assert f"quarantined events {EVIL}" in text
    assert not [a for t, a in _parse(page).tags if t == "img"]


def test_status_without_alerts_flags_or_model(tmp_path):
    """A run with summaries only: every section says plainly what is missing."""
    from tests.unit.dashboard.conftest import lumi_summary

    with SQLiteAlertStore(tmp_path / "a.db") as store:
        store.upsert_summaries([lumi_summary(7, ls) for ls in range(1, 4)])
        status = RunStatus("hotline", 7, "green", "rates as expected")
        out = write_report(tmp_path / "out" / "r.html", store, status)
        text = _text(out.read_text())
    assert "every assessed lumisection is green" in text
    assert "AE rates: no calibrated thresholds" in text
    assert "no scored alerts in this run" in text and "no DQM alerts in this run" in text
    assert "no dead letters for this run" in text
    assert "run 7 is not certified yet (hotline certify 7)" in text
    assert "reference none recorded" in text
    assert "nothing acknowledged by the crew" in text


def test_crew_acknowledgements_are_exported_escaped(tmp_path):
    from hotline.alerts.acknowledgements import acknowledge_alert, acknowledge_lumis
    from tests.unit.dashboard.conftest import classic_alert, lumi_summary

    with SQLiteAlertStore(tmp_path / "a.db") as store:
        store.upsert_summaries([lumi_summary(7, ls) for ls in range(1, 6)])
        a = classic_alert(7, 2, 42)
        store.add_alerts([a])
        acknowledge_alert(store, a, "alice", f"HCAL noise {EVIL}", at=1.7e9)
        acknowledge_lumis(store, "hotline", 7, [3, 4], "bob", "HV trip", what="LS 3-4: red",
                          at=1.7e9 + 60)
        status = RunStatus("hotline", 7, "red", "rates as expected")
        page = render_report(store, status)
    text = _text(page)
    assert "<script>window.__pwned" not in page
    assert (f"alert: classic alert met250, run 7 LS 2 event 42 LS 2 alice "
            f"2023-11-14 22:13:20 UTC HCAL noise {EVIL}") in text
    assert "flags: LS 3-4: red LS 3-4 bob 2023-11-14 22:14:20 UTC HV trip" in text


def test_rate_plots_draw_the_status_expectations(replayed):
    """AE bands from the thresholds' p-values; the findings' expectations as crosses."""
    from bokeh.models import Scatter, VArea

    from hotline.dashboard.run_report import _rate_figures

    thresholds, _, _ = load_model_info("ae_default")
    sums = replayed.summaries(source=SOURCE, run=RUN)
    figs, note = _rate_figures(run_status(), sums, "ae_default_p1e-02", thresholds)
    by = {f.name: f for f in figs}
    assert note == "" and set(by) == {"rates_ae", "rates_rules", "rates_input",
                                      "rates_quarantine"}
    bands = [r for r in by["rates_ae"].renderers if isinstance(r.glyph, VArea)]
    assert len(bands) == len(thresholds)
    assert {tuple(set(b.data_source.data["expected"])) for b in bands} == {
        (t.p,) for t in thresholds}

    def crosses(name: str) -> dict[str, list]:
        (r,) = [r for r in by[name].renderers
                if isinstance(r.glyph, Scatter) and r.glyph.marker == "x"]
        return dict(r.data_source.data)

    rule = crosses("rates_rules")  # 2mu_pt15: 5 expected in 50 events (LS 3: no finding)
    assert list(rule["x"]) == [ls for ls in range(1, 41) if ls != 3]
    assert set(rule["y"]) == {0.1}
    inp = crosses("rates_input")  # 50 events expected where the status says so
    assert list(inp["x"]) == [ls for ls in range(1, 41) if ls != 3 and not 25 <= ls <= 32]
    assert set(inp["y"]) == {50.0}
    q = crosses("rates_quarantine")
    assert list(q["x"]) == [3] and list(q["y"]) == [pytest.approx(0.001)]


def test_l1_agreement_per_lumisection_when_the_summaries_carry_it(tmp_path):
    """Firmware in the loop: agreement per seed and lumisection, the differing lumisections
    with their divergence alerts; a run without emulation has no such section."""
    import numpy as np
    from bokeh.models import ColumnDataSource

    from hotline.alerts.l1_agreement import L1Header, L1Tally
    from hotline.alerts.records import EventTally, LumiSummary
    from hotline.dashboard.run_report import _l1_figure
    from hotline.stream.l1_emulation import divergence_alerts

    header = L1Header("ae_x", "3", "b0123456789a", 18,
                      (("Loose", 0.01, 0.05, 13107), ("Tight", 0.001, 0.1, 26214)))

    def lumi(ls: int, n_wrong: int) -> LumiSummary:
        ev = np.arange(ls * 10_000, ls * 10_000 + 2000)
        fw = np.zeros(ev.size)
        fw[:n_wrong] = 0.2  # fires in firmware only, at both seeds
        return LumiSummary.of_tally("hotline", 7, ls, EventTally(
            ev, np.zeros(ev.size, bool), {}, {}, 0, L1Tally.build(header, ev, fw, fw * 0)))

    sums = [lumi(1, 0), lumi(2, 1), lumi(3, 30)]
    with SQLiteAlertStore(tmp_path / "a.db") as store:
        store.upsert_summaries(sums)
        store.add_alerts([a for s in sums for a in divergence_alerts(s, 0.999)])
        status = RunStatus("hotline", 7, "red", "L1 divergence")
        page = render_report(store, status)
        stored = store.summaries(run=7)
        store.upsert_summaries([LumiSummary("hotline", 8, 1, n_events=10, n_bad=0)])
        plain = _text(render_report(store, RunStatus("hotline", 8, "green", "fine")))
    text = _text(page)
    assert "L1 emulation agreement" in text and "L1 emulation agreement" not in plain
    assert "ae_x v3 build b0123456789a: 6,000 events emulated in 3 lumisections; " \
           "2 divergence alerts in 1 lumisections" in text
    # LS 1 agrees everywhere (not listed); LS 2 (1 of 2000: allowed) and LS 3 (30: red) are
    assert "LS 1 " not in text.split("L1 emulation agreement")[1]
    assert "LS 2 2000 0 Loose 1 (99.950%), Tight 1 (99.950%)" in text
    assert "LS 3 2000 0 Loose 30 (98.500%), Tight 30 (98.500%)" in text
    assert "Loose red, Tight red" in text
    fig = _l1_figure(stored)
    series = [list(r.data_source.data["agreement"]) for r in fig.renderers
              if isinstance(r.data_source, ColumnDataSource)]
    assert len(series) == 4  # line + points per seed
    assert all(v == pytest.approx([1.0, 1 - 1 / 2000, 1 - 30 / 2000]) for v in series)
    assert "l1_agreement" in page  # the plot is embedded
