"""At a glance and the crew workflow on a real SQLite store: the status strip filters
everything, the timeline carries exact significances, the alert map finds the hot cell,
acknowledgements are stored under the session's user, complete legends, the wall display."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bokeh.models import Legend

from hotline.alerts.acknowledgements import acknowledgements
from hotline.dashboard.glance import Z_CAP, finding_z
from hotline.dashboard.model_info import Threshold
from tests.support.control_room import HOT_CELL, THRESHOLDS_EXACT, fill_control_room, hot_lumis

N_LUMIS = 40


@pytest.fixture
def room(store):
    alerts = fill_control_room(store, run=300, n_lumis=N_LUMIS, n_alerts=1200,
                               events_per_lumi=20000)
    return store, alerts


def page_of(store, tmp_path, user="guest"):
    """A page as ``make_page`` builds it, with thresholds at the exact quantiles."""
    from hotline.config import load_config
    from hotline.dashboard.app import create_page
    from hotline.dashboard.hub import build_hub

    cfg = load_config(environ={}, cli={"store": {"url": store.url},
                                       "dashboard": {"basic_auth": "pw"},
                                       "source": {"archive": str(tmp_path)}})
    hub = build_hub(cfg, store=store, replay=False)
    hub.feed.min_interval = 0.0
    hub.thresholds = [Threshold(p, t) for p, t in THRESHOLDS_EXACT]
    return create_page(hub, user=user)


def test_strip_shows_every_lumisection_and_flags_the_hot_ones(room, tmp_path):
    store, _ = room
    page = page_of(store, tmp_path)
    st = page.hotline_state
    strip = page.hotline_views["strip"]
    data = strip.source.data
    assert list(data["lumi"]) == list(range(1, N_LUMIS + 1))
    levels = dict(zip(data["lumi"], data["level"]))
    assert all(levels[ls] == "red" for ls in hot_lumis(N_LUMIS)), levels
    assert sum(lv != "green" for lv in levels.values()) <= len(hot_lumis(N_LUMIS)) + 2
    assert "AE rate" in dict(zip(data["lumi"], data["reason"]))[hot_lumis(N_LUMIS)[0]]
    # a fresh page over a store of >100 alerts has skipped nothing
    assert st.rows_skipped == 0
    assert "skipped" not in page.hotline_views["alerts"].count.object


def test_clicking_a_lumisection_filters_everything_to_it(room, tmp_path):
    store, alerts = room
    page = page_of(store, tmp_path)
    st, views = page.hotline_state, page.hotline_views
    hot = hot_lumis(N_LUMIS)
    full_hist = int(np.asarray(st.score_histogram()["counts"]).sum())
    views["strip"].pick(hot[0], hot[-1])
    assert (st.ls_first, st.ls_last) == (hot[0], hot[-1])
    table = views["alerts"]
    rows = table.table.value
    want = sum(1 for a in alerts if hot[0] <= a.lumi <= hot[-1])
    # one page of the selection's alerts, newest first; the count is the whole selection's
    assert len(rows) == table.page_rows < want and set(rows["lumi"]) <= set(hot)
    assert f"of {want:,} " in table.count.object
    assert f"LS {hot[0]}-{hot[-1]}" in table.count.object
    # paging through the store: every alert of the selection once, newest first
    seen = list(rows["id"])
    while not table.older_w.disabled:
        table.older_w.clicks += 1
        seen += list(table.table.value["id"])
    newest = sorted((a for a in alerts if hot[0] <= a.lumi <= hot[-1]),
                    key=lambda a: (-a.created, a.id))
    assert seen == [a.id for a in newest]
    table.newest_w.clicks += 1
    assert list(table.table.value["id"]) == seen[: table.page_rows]
    h = st.score_histogram()
    shown = int(np.asarray(h["counts"]).sum()) + h["under"] + h["over"]
    assert shown == 20000 * len(hot) and int(np.asarray(h["counts"]).sum()) < full_hist
    assert views["occupancy"].current().lumi in hot
    m = st.alert_map()
    assert m["label"] == f"LS {hot[0]}-{hot[-1]}" and m["n_total"] == want
    assert abs(m["hot"]["eta"] - HOT_CELL[0]) < 0.25 and abs(m["hot"]["phi"] - HOT_CELL[1]) < 0.2
    assert m["hot"]["share"] > 0.3  # every hot-LS alert has an object there
    assert "hottest cell eta +1.62" in views["alert_map"].note.object or \
        "hottest cell eta +1.38" in views["alert_map"].note.object
    assert all(s.visible for s in views["overview"].shades)
    # "show all" clears the selection and the table is the whole run again
    views["strip"].clear_w.clicks += 1
    assert st.ls_first is None and len(views["alerts"].table.value) == views["alerts"].page_rows
    assert f"of {len(alerts):,} " in views["alerts"].count.object
    assert not any(s.visible for s in views["overview"].shades)


def test_the_timeline_carries_the_engines_exact_significances(room, tmp_path):
    store, _ = room
    page = page_of(store, tmp_path)
    st = page.hotline_state
    tl = page.hotline_views["timeline"]
    data = tl.source.data
    status = st.run_status()
    # one cell per tested quantity and lumisection (the green ones too)
    n = sum(len([f for f in ls.tested if f.kind not in ("unavailable", "trend")])
            for ls in status.lumis)
    assert len(data["z"]) == n > 4 * N_LUMIS
    hot = hot_lumis(N_LUMIS)[0]
    cell = [i for i, (q, ls) in enumerate(zip(data["quantity"], data["lumi"]))
            if q == "rule:met250" and ls == hot][0]
    f = next(f for f in status.lumi(hot).tested if f.quantity == "rule:met250")
    assert data["z"][cell] == finding_z(f) > 5
    assert data["p"][cell] == f"{f.p_value:.2e}"
    assert "rule:met250" in tl.fig.y_range.factors
    # deficits are negative, zero p-values are capped and said as a bound
    assert finding_z(f.__class__("q", "rule", 0, 50, 100, 1e-20, 1e-19, "red", "")) < -9
    zero = finding_z(f.__class__("q", "rule", 90, 5, 100, 0.0, 0.0, "red", ""))
    assert zero == Z_CAP and math.isfinite(zero)
    # the status is computed once for all sessions of the server
    from hotline.dashboard.state import DashboardState

    other = DashboardState(st.feed, thresholds=list(st.thresholds))
    other.update(force=True)
    assert other.run_status() is st.run_status()


def test_legends_are_complete_and_outside_the_plots(room, tmp_path):
    store, _ = room
    ov = page_of(store, tmp_path).hotline_views["overview"]
    for fig, legend, want in ((ov.fig_rules, ov.rules_legend, {"met250", "ht300", "2mu_pt15"}),
                              (ov.fig_ae, ov.ae_legend, {"p=1e-2", "p=1e-3"})):
        assert legend in fig.below and not [x for x in fig.center if isinstance(x, Legend)]
        assert {item.label.value for item in legend.items} == want
    assert "[" in ov.fig_input.yaxis[0].axis_label or "/" in ov.fig_input.yaxis[0].axis_label
    # the classic rates carry the engine's expected fraction as a reference overlay
    src = ov.rule_sources["met250"][0]
    assert np.nanmax(src.data["expected"]) > 0


def test_why_card_for_classic_and_dqm_alerts(room, tmp_path):
    store, alerts = room
    page = page_of(store, tmp_path)
    st, why = page.hotline_state, page.hotline_views["contributions"]
    met = next(a for a in alerts if a.rule == "met250")
    st.select(met.id)
    assert "&gt; 250 GeV" in why.verdict.object and "MET " in why.verdict.object
    assert list(why.rows["object"]) == ["met"] and "<td>met</td>" in why.table.object.replace(
        "<td style='padding:1px 8px 1px 0'>", "<td>")
    assert why.fig_obj.title.text == "objects that fired it"
    assert list(why.type_src.data["label"]) == ["MET", "threshold"]
    assert why.type_src.data["value"][1] == 250.0 and why.type_src.data["value"][0] > 250
    dqm = next(a for a in alerts if a.kind == "dqm")
    st.select(dqm.id)
    assert "p &lt; 2.0e-06" in why.verdict.object and "Z &gt; 4.61" in why.verdict.object
    assert "only known to be below" in why.note.object
    assert why.rows["-log10 p"].iloc[0] == 872.0 and "872.00" in why.table.object
    assert list(why.type_src.data["label"]) == ["map score", "threshold"]
    occ = page.hotline_views["occupancy"]
    assert occ.shown_id == dqm.id and "map p < 2.0e-06" in occ.note.object
    assert len(occ.box_src.data["left"]) == 1
    assert "not one event" in page.hotline_views["event_display"].title.object


def test_acknowledgements_are_stored_under_the_session_user(room, tmp_path):
    store, alerts = room
    guest = page_of(store, tmp_path, "guest")
    a = max(alerts, key=lambda x: x.created)  # on the table's first page
    guest.hotline_state.select(a.id)
    ack = guest.hotline_views["contributions"].ack
    assert ack.button.disabled
    ack.comment_w.value = "guest was here"
    ack.button.clicks += 1  # a forced click: the server refuses
    assert "not allowed" in ack.msg.object and acknowledgements(store, 300) == []

    crew = page_of(store, tmp_path, "shifter")
    st, views = crew.hotline_state, crew.hotline_views
    st.select(a.id)
    ack = views["contributions"].ack
    ack.comment_w.value = ""
    ack.button.clicks += 1
    assert "needs a comment" in ack.msg.object and acknowledgements(store, 300) == []
    ack.comment_w.value = "checked the event display: HCAL noise"
    ack.button.clicks += 1
    (row,) = acknowledgements(store, 300)
    assert (row.alert_id, row.acked_by, row.comment) == (a.id, "shifter",
                                                          "checked the event display: HCAL noise")
    assert "acknowledged by <b>shifter</b>" in ack.history.object
    shown = views["alerts"].table.value
    assert shown.loc[shown["id"] == a.id, "ack"].iloc[0] == "shifter"
    # lumisection flags: select the hot range on the strip, acknowledge with a comment
    hot = hot_lumis(N_LUMIS)
    lumi_ack = views["lumi_ack"]
    lumi_ack.comment_w.value = "HV trip, see e-log 77"
    lumi_ack.button.clicks += 1
    assert "select lumisections first" in lumi_ack.msg.object
    views["strip"].pick(hot[0], hot[-1])
    lumi_ack.button.clicks += 1
    ls_rows = [r for r in acknowledgements(store, 300) if not r.alert_id]
    assert [(r.first_lumi, r.last_lumi, r.acked_by) for r in ls_rows] == [
        (hot[0], hot[-1], "shifter")]
    assert ls_rows[0].what.startswith(f"LS {hot[0]}-{hot[-1]}: red")
    assert "HV trip" in lumi_ack.history.object


def test_wall_display_cycles_its_views(room, tmp_path):
    from hotline.config import load_config
    from hotline.dashboard.app import create_page, wall_from_args
    from hotline.dashboard.hub import build_hub

    store, _ = room
    cfg = load_config(environ={}, cli={"store": {"url": store.url}})
    hub = build_hub(cfg, store=store, replay=False)
    page = create_page(hub, user="guest", wall=5.0)
    wall = page.hotline_views["wall"]
    assert 'id=\'hotline-wall-status\'' in wall.big.object and "font-size:64px" in wall.big.object
    names = [wall.tabs._names[i] for i in range(len(wall.tabs))]
    assert names[:3] == ["rates", "significance timeline", "alert map"]
    seen = []
    for _ in range(len(names) + 1):
        seen.append(wall.tabs.active)
        wall.advance()
    assert seen == [*range(len(names)), 0]
    assert wall_from_args({"wall": [b"1"], "cycle": [b"7"]}) == 7.0
    assert wall_from_args({"wall": [b"1"], "cycle": [b"x"]}) == 15.0
    assert wall_from_args({}) is None
