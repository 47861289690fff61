"""DashboardState / LiveFeed driven directly (no browser, no Panel)."""

from __future__ import annotations

import math

import numpy as np

from hotline.dashboard.state import (
    DashboardState,
    LiveFeed,
    Threshold,
    load_thresholds,
    object_type,
)
from hotline.stream.pipeline import BatchResult
from tests.unit.dashboard.conftest import AE_RULE, THRESHOLDS, ae_alert, lumi_summary


def make_state(store, thresholds=THRESHOLDS) -> DashboardState:
    feed = LiveFeed(store, source="hotline", min_interval=0.0)
    st = DashboardState(feed, thresholds=thresholds)
    st.update(force=True)
    return st


def test_overview_follows_latest_run(filled_store):
    st = make_state(filled_store)
    assert (st.run, st.lumi) == (2, 5)
    assert st.alert_total == 10
    series = st.rule_series()
    assert set(series) == {"met250", AE_RULE}
    assert series["met250"]["lumi"] == [1, 2, 3, 4, 5]
    assert series["met250"]["frac"] == [20 / 2000] * 5
    assert st.input_series()["n"] == [2000] * 5


def test_ae_rates_and_expected_band(filled_store):
    st = make_state(filled_store)
    ae = st.ae_series()
    assert list(ae) == ["p=1e-2", "p=1e-3"]
    d = ae["p=1e-2"]
    assert d["expected"] == [1e-2] * 5
    # exponential(1) scores: P(score > 3) = 5 %, far above the expected 1 % -> big pull
    assert all(0.02 < f < 0.08 for f in d["frac"])
    assert all(lo < 1e-2 < hi for lo, hi in zip(d["lo"], d["hi"]))
    assert min(d["pull"]) > 5
    assert st.status == "red" and "p=1e-2" in st.status_reason


def test_status_green_when_rates_match(store):
    # thresholds at the true exponential quantiles: P(score > -ln p) = p
    th = [Threshold(1e-2, -math.log(1e-2) * 1.0)]
    store.upsert_summaries([lumi_summary(3, ls, n=20000) for ls in range(1, 4)])
    st = make_state(store, thresholds=th)
    assert st.status in ("green", "amber"), st.status_reason
    assert abs(st.ae_series()["p=1e-2"]["pull"][-1]) < 5


def test_status_without_model_uses_classic_run_average(store):
    store.upsert_summaries([lumi_summary(4, ls, met_count=20) for ls in range(1, 5)])
    store.upsert_summaries([lumi_summary(4, 5, met_count=200)])
    st = make_state(store, thresholds=[])
    assert st.ae_series() == {}
    assert st.status == "red" and "met250" in st.status_reason


def test_score_histogram_with_reference_and_thresholds(filled_store):
    st = make_state(filled_store)
    h = st.score_histogram()
    assert h["rule"] == AE_RULE
    assert h["counts"].sum() + h["under"] + h["over"] == 5 * 2000
    assert h["reference_label"] == "reference: run 1"
    assert np.isclose(h["reference"].sum(), h["counts"].sum())
    assert [t.label for t in h["thresholds"]] == ["p=1e-2", "p=1e-3"]


def test_alert_rows_newest_first_and_filters(filled_store):
    st = make_state(filled_store)
    rows = st.alert_rows()
    assert len(rows) == 10
    assert [r["created"] for r in rows] == sorted((r["created"] for r in rows), reverse=True)
    st.rule_filter = ["met250"]
    assert {r["rule"] for r in st.alert_rows()} == {"met250"}
    st.rule_filter = []
    st.min_significance = 3.0
    rows = st.alert_rows()
    assert rows and all(r["significance"] >= 3.0 for r in rows)
    st.min_significance = 0.0
    st.run_filter = 1
    assert st.alert_rows() == []
    assert st.filter_version == 5


def test_new_alerts_arrive_incrementally(filled_store):
    st = make_state(filled_store)
    assert st.update(force=True) is False  # nothing new
    filled_store.add_alerts([ae_alert(2, 5, 999, created=2000.0)])
    assert st.update(force=True) is True
    new = st.new_alert_rows()
    assert [r["event"] for r in new] == [999]
    assert st.alert_total == 11


def test_live_overlay_from_running_replay(filled_store):
    st = make_state(filled_store)
    res = BatchResult(summaries={("hotline", 2, 6): lumi_summary(2, 6, n=500)}, n_events=500)
    st.feed.on_result(None, res)
    st.update(force=True)
    assert st.lumi == 6
    assert st.input_series()["n"][-1] == 500


def test_selected_alert_contributions_and_objects(filled_store):
    st = make_state(filled_store)
    ae_id = next(r["id"] for r in st.alert_rows() if r["kind"] == "ae")
    st.select(ae_id)
    c = st.contributions()
    assert c["objects"]["label"][:2] == ["mu1", "j1"]
    assert c["types"]["label"][0] == "muons"
    ev = st.event_objects()
    assert ev["met"]["pt"] == 180.0
    assert ev["objects"]["label"] == ["e1", "mu1", "j1", "j2"]
    assert ev["objects"]["type"] == ["electron", "muon", "jet", "jet"]
    assert ev["objects"]["contribution"][1] == 12.0
    assert len(st.object_rows()) == 5
    classic_id = next(r["id"] for r in st.alert_rows() if r["kind"] == "classic")
    st.select(classic_id)
    assert "no loss contributions" in st.contributions()["note"]
    assert st.event_objects()["met"]["pt"] == 300.0


def test_thresholds_fallback_without_model():
    th, note = load_thresholds("")
    assert th == [] and "no anomaly model" in note
    th, note = load_thresholds("surely-not-a-model-xyz")
    assert th == [] and "surely-not-a-model-xyz" in note or "registry" in note


def test_object_types():
    assert [object_type(x) for x in ("met", "e3", "mu10", "j1")] == ["MET", "electron", "muon",
                                                                       "jet"]


def test_reference_from_model_card(filled_store):
    from hotline.dashboard.state import reference_from_card

    # exponential(1) background: log10 P(score > s) = -s / ln 10
    s = np.linspace(0, 20, 201)
    ref = reference_from_card({"reference": {"n_ref": 100000, "scores": s.tolist(),
                                             "log10_p": (-s / np.log(10)).tolist()}})
    assert ref is not None and ref.n_ref == 100000
    assert reference_from_card({}) is None
    st = make_state(filled_store)
    st.reference = ref
    h = st.score_histogram()
    assert "model card background" in h["reference_label"]
    # the fixture's scores are exponential(1): the reference matches the data in shape
    assert np.isclose(h["reference"].sum(), h["counts"].sum(), rtol=0.01)
    peak = int(np.argmax(h["counts"]))
    assert abs(int(np.argmax(h["reference"])) - peak) <= 2


def test_alert_rows_say_what_an_ae_alert_points_to():
    from hotline.alerts.records import AlertRecord
    from hotline.dashboard.state import ROW_COLUMNS, alert_row

    ae = AlertRecord.make(kind="ae", rule="ae_default_p1e-04", source="s", run=1, lumi=2,
                          event=3, score=0.2, payload={"top_type": "MET",
                                                       "explained_by": "muons"})
    classic = AlertRecord.make(kind="classic", rule="ht300", source="s", run=1, lumi=2, event=3)
    assert alert_row(ae)["points_to"] == "muons"  # the derived MET followed to the muons
    assert alert_row(classic)["points_to"] == ""
    assert "points_to" in ROW_COLUMNS
