"""The Panel views as Bokeh models: built from the state, updated by stream/patch only."""

from __future__ import annotations

import math

import pytest
from bokeh.models import ColumnDataSource, Label, Span, VArea

from hotline.alerts.records import LumiSummary
from hotline.config import load_config
from hotline.dashboard.app import create_page
from hotline.dashboard.hub import build_hub
from hotline.dashboard.views.common import SeriesSync
from hotline.stream.pipeline import BatchResult
from tests.unit.dashboard.conftest import AE_RULE, THRESHOLDS, ae_alert, lumi_summary


@pytest.fixture
def page(filled_store, tmp_path):
    cfg = load_config(environ={}, cli={"store": {"url": filled_store.url},
                                       "source": {"archive": str(tmp_path)}})
    hub = build_hub(cfg, store=filled_store)
    hub.feed.min_interval = 0.0
    hub.thresholds = list(THRESHOLDS)
    return create_page(hub, user="guest")


def test_overview_figures(page):
    ov = page.hotline_views["overview"]
    assert set(ov.rule_sources) == {"met250"}  # the AE rule has its own figure
    src, _ = ov.rule_sources["met250"]
    assert list(src.data["lumi"]) == [1, 2, 3, 4, 5]
    assert list(ov.input_src.data["n"]) == [2000] * 5
    assert set(ov.ae_sources) == {"p=1e-2", "p=1e-3"}
    assert sum(isinstance(r.glyph, VArea) for r in ov.fig_ae.renderers) == 2
    assert "RED" in ov.header.object and "hotline-status" in ov.header.object


def test_overview_streams_new_lumis_and_patches_open_ones(page, filled_store):
    st = page.hotline_state
    ov = page.hotline_views["overview"]
    src = ov.input_src
    filled_store.upsert_summaries([lumi_summary(2, 6, n=700)])
    assert st.update(force=True)
    assert ov.input_src is src and list(src.data["lumi"]) == [1, 2, 3, 4, 5, 6]
    assert ov.input_sync.streams >= 1 and ov.input_sync.resets == 0
    # the live replay overlay grows LS 6: patched in place, not re-sent
    bigger = LumiSummary("hotline", 2, 6, n_events=1500)
    bigger.rule_counts = {"met250": 3}
    st.feed.on_result(None, BatchResult(summaries={bigger.key: bigger}))
    streams = ov.input_sync.streams
    assert st.update(force=True)
    assert list(src.data["n"])[-1] == 1500
    assert ov.input_sync.patches >= 1 and ov.input_sync.streams == streams
    assert ov.input_sync.resets == 0
    # a new run replaces the series (the only full reset)
    filled_store.upsert_summaries([lumi_summary(3, 1)])
    st.update(force=True)
    assert list(src.data["lumi"]) == [1] and ov.input_sync.resets == 1


def test_histogram_thresholds_and_patch(page, filled_store):
    hv = page.hotline_views["histogram"]
    spans = [m for m in hv.fig.center if isinstance(m, Span)]
    labels = [m for m in hv.fig.center if isinstance(m, Label)]
    assert sorted(s.location for s in spans) == [3.0, 10.0]
    assert sorted(lbl.text for lbl in labels) == ["p=1e-2", "p=1e-3"]
    assert hv.fig.y_scale.__class__.__name__ == "LogScale"
    top = hv.source.data["top"]
    assert sum(0 if math.isnan(x) else x for x in top) > 9000
    assert "reference: run 1" in hv.note.object
    src, patches = hv.source, hv.patches
    filled_store.upsert_summaries([lumi_summary(2, 6)])
    page.hotline_state.update(force=True)
    assert hv.source is src and hv.patches == patches + 1


def test_alert_table_streams_newest_first_and_filters(page, filled_store):
    st = page.hotline_state
    tab = page.hotline_views["alerts"].table
    assert len(tab.value) == 10
    assert tab.sorters == [{"field": "seq", "dir": "desc"}]
    filled_store.add_alerts([ae_alert(2, 5, 777, created=5000.0)])
    st.update(force=True)
    assert len(tab.value) == 11
    newest = tab.value.sort_values("seq").iloc[-1]
    assert newest["event"] == 777
    st.rule_filter = ["met250"]
    assert set(tab.value["rule"]) == {"met250"} and len(tab.value) == 5
    filled_store.add_alerts([ae_alert(2, 5, 778, created=6000.0)])
    st.update(force=True)
    assert len(tab.value) == 5  # filtered out


def test_selection_drives_contributions_and_event_display(page):
    tab = page.hotline_views["alerts"].table
    contrib = page.hotline_views["contributions"]
    disp = page.hotline_views["event_display"]
    i = int(tab.value.index[tab.value["kind"] == "ae"][0])
    tab.selection = [i]
    assert page.hotline_state.selected_id == tab.value.iloc[i]["id"]
    labels = list(contrib.obj_src.data["label"])
    assert labels[0] == "mu1"  # largest first, drawn on top
    top = contrib.obj_src.data["y"][0]
    assert top == max(contrib.obj_src.data["y"]) and top < contrib.fig_obj.y_range.end
    assert contrib.fig_obj.title.text == "per-object loss contribution"
    assert "largest contributions mu1" in contrib.note.object
    assert set(disp.obj_src.data["label"]) == {"e1", "mu1", "j1", "j2"}
    assert list(disp.met_src.data["x1"]) == [pytest.approx(180 * math.cos(1.2))]
    assert len(disp.table.value) == 5
    j1 = list(disp.obj_src.data["label"]).index("j1")
    e1 = list(disp.obj_src.data["label"]).index("e1")
    assert disp.obj_src.data["size"][j1] > disp.obj_src.data["size"][e1]  # size ~ pT
    assert disp.fig_xy.x_range.end > 310


def test_occupancy_and_replay_views_read_only_for_guest(page):
    occ = page.hotline_views["occupancy"]
    assert "No DQM alert yet" in occ.note.object
    rp = page.hotline_views["replay"]
    assert rp.start_w.disabled and rp.stop_w.disabled
    assert "log in" in rp.login.object
    rp._start()
    assert "not allowed" in rp.text.object
    assert page.hotline_state.replay.run is None


def test_series_sync_semantics():
    src = ColumnDataSource({"lumi": [], "v": []})
    sync = SeriesSync(src, rollover=3)
    sync.apply({"lumi": [1, 2], "v": [10, 20]})
    assert (sync.resets, sync.streams) == (0, 1)  # first fill is a stream into empty columns
    sync.apply({"lumi": [1, 2, 3], "v": [10, 21, 30]})
    assert list(src.data["v"]) == [10, 21, 30] and sync.patches == 1 and sync.streams == 2
    sync.apply({"lumi": [2, 3, 4], "v": [21, 30, 40]})  # oldest rolled over: still a stream
    assert list(src.data["lumi"]) == [2, 3, 4] and sync.resets == 0 and sync.streams == 3
    sync.apply({"lumi": [1], "v": [5]})  # a new run starts: replaced
    assert list(src.data["lumi"]) == [1] and sync.resets == 1


def test_can_control_only_with_login(filled_store, tmp_path):
    cfg = load_config(environ={}, cli={"dashboard": {"basic_auth": "pw"},
                                       "source": {"archive": str(tmp_path)}})
    hub = build_hub(cfg, store=filled_store)
    assert create_page(hub, user="guest").hotline_state.can_control is False
    page = create_page(hub, user="alice")
    assert page.hotline_state.can_control is True
    assert not page.hotline_views["replay"].start_w.disabled
    assert AE_RULE  # fixture sanity


def test_occupancy_view_shows_dqm_alert_map_loss_and_units(page, filled_store):
    import numpy as np

    from hotline.alerts.records import AlertRecord

    occ = page.hotline_views["occupancy"]
    grid = np.full((4, 6), 0.5)
    grid[2, 3] = 0.0  # a dead cell
    loss = np.zeros((4, 6))
    loss[2, 3] = 9.0
    dqm = AlertRecord.make(
        kind="dqm", rule="dqm_muon_barrel", source="hotline", run=2, lumi=4, event=0,
        score=12.0, p_value=1e-6, created=2000.0,
        payload={"subsystem": "muon_barrel", "title": "Muon barrel", "summary": "sector W+1 S04",
                 "model": "conv_muon_barrel v1", "map": grid.tolist(), "loss": loss.tolist(),
                 "top_units": [{"level": "sector", "unit": "W+1 S04", "contribution": 0.8,
                                "loss": 9.0, "log10_p": 7.5}]})
    filled_store.add_alerts([dqm])
    page.hotline_state.update(force=True)
    occ._refresh()
    assert occ.shown_id == dqm.id
    [img] = occ.map_src.data["image"]
    assert img.shape == (4, 6) and img[2, 3] == 0.0
    assert occ.loss_src.data["image"][0][2, 3] == 9.0 and occ.loss_cmap.high == 9.0
    assert list(occ.units.value["unit"]) == ["W+1 S04"]
    assert "Muon barrel" in occ.note.object and "W+1 S04" in occ.note.object
    # selecting a non-DQM alert keeps the latest DQM alert on screen
    page.hotline_state.select(filled_store.alerts(kind="ae", limit=1)[0].id)
    assert occ.shown_id == dqm.id
