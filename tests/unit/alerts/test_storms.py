"""The storm guard (alerts.storms): what it keeps, its determinism, the store's storms, the
storm notices and the opt-out of subscriptions (real SQLite store, real delivery worker)."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.alerts.records import alert_id
from hotline.alerts.storms import StormGuard, StormRecord, in_sample
from hotline.alerts.subscription_store import add_subscription
from hotline.errors import ConfigError, StreamError
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch, run_embedded
from tests.conftest import make_events
from tests.unit.alerts.test_grouping_retries import Clock, MemoryChannel, drain

MENU = """
[[rule]]
name = "1jet_pt60"
kind = "count"
collection = "Jet"
min_pt = 60
[[rule]]
name = "met500"
kind = "scalar"
branch = "MET_pt"
min_value = 500
"""


@pytest.fixture
def ctx(tmp_path):
    from hotline.alerts.menu import load_menu

    (tmp_path / "menu.toml").write_text(MENU)
    return PipelineContext(rules=load_menu(str(tmp_path / "menu.toml")),
                           max_alerts_per_lumi=50, storm_sample=10)


def _hits(arrays, rule: str = "1jet_pt60") -> set[int]:
    """Event numbers where the jet rule fires (the reference, without any guard)."""
    res = process_batch(EventBatch(arrays), PipelineContext(rules=_rules()))
    return {a.event for a in res.alerts if a.rule == rule}


def _rules():
    import tempfile

    from hotline.alerts.menu import load_menu

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(MENU)
    return load_menu(f.name)


def test_guard_keeps_first_n_then_a_deterministic_sample_and_lists_the_rest(ctx):
    arrays = make_events(2000, seed=4, run=9, events_per_lumi=1000)  # 2 lumisections
    all_hits = _hits(arrays)
    guard = ctx.storm_guard()
    # the same events in two different cuts give the same kept alerts and storm records
    res = [process_batch(EventBatch(arrays[i:i + 300]), ctx, guard) for i in range(0, 2000, 300)]
    guard2 = ctx.storm_guard()
    res2 = [process_batch(EventBatch(arrays[i:i + 700]), ctx, guard2) for i in range(0, 2000, 700)]
    kept = {a.event for r in res for a in r.alerts if a.rule == "1jet_pt60"}
    kept2 = {a.event for r in res2 for a in r.alerts if a.rule == "1jet_pt60"}
    listed = [e for r in res for st in r.storms for e in st.events.tolist()]
    assert kept == kept2
    assert kept | set(listed) == all_hits and not kept & set(listed)  # nothing lost
    assert len(listed) == len(set(listed))
    for ls in (1, 2):  # per lumisection: the first 50 in full, then 1 in ~10
        evs = sorted(e for e in all_hits if (e - 1) // 1000 + 1 == ls)
        first, rest = evs[:50], evs[50:]
        assert set(first) <= kept
        sample = in_sample(np.full(len(rest), 9), np.full(len(rest), ls), np.array(rest),
                           "1jet_pt60", 10)
        assert {e for e, s in zip(rest, sample) if s} == kept & set(rest)
        assert 0.03 < sample.mean() < 0.2
    # the summaries count every alert, whatever the guard kept
    total = sum(s.rule_counts["1jet_pt60"] for r in res for s in r.summaries.values())
    assert total == len(all_hits)
    storms = [st for r in res for st in r.storms]
    assert {st.rule for st in storms} == {"1jet_pt60"}  # the rare rule is never guarded
    assert all(st.threshold == 50 and st.sample_every == 10 for st in storms)
    assert max(st.seen for st in storms if st.lumi == 1) == sum(
        1 for e in all_hits if e <= 1000)


def test_storm_record_round_trip_and_listed_alert_ids():
    st = StormRecord("hotline", 9, 3, "r1", "classic", 50, 10, 120, 2,
                     np.array([5, 9, 11]), np.array([np.nan] * 3), np.array([np.nan] * 3), 7.0)
    back = StormRecord.from_dict(st.to_dict())
    assert back.to_dict() == st.to_dict() and back.part == st.part
    listed = back.listed_alerts()
    assert [a.id for a in listed] == [alert_id("hotline", 9, 3, e, "r1") for e in (5, 9, 11)]
    assert all(a.payload == {"storm_listed": True} and a.score is None for a in listed)
    bad = st.to_dict() | {"n": 4}
    with pytest.raises(StreamError, match="'events' has 3 entries for 4 alerts"):
        StormRecord.from_dict(bad)
    with pytest.raises(StreamError, match="schema version 7"):
        StormRecord.from_dict(st.to_dict() | {"storm": 7})
    with pytest.raises(ConfigError):
        StormGuard(-1)


def test_embedded_replay_stores_storms_with_exact_counts(ctx, store):
    arrays = make_events(2000, seed=4, run=9, events_per_lumi=1000)
    batches = [EventBatch(arrays[i:i + 250]) for i in range(0, 2000, 250)]
    rep = run_embedded(batches, ctx, store)
    assert rep.storms > 0
    storms = store.storms()
    assert [(s.run, s.lumi, s.rule) for s in storms] == [(9, 1, "1jet_pt60"), (9, 2, "1jet_pt60")]
    all_hits = _hits(arrays)
    for s in storms:
        n = sum(1 for e in all_hits if (e - 1) // 1000 + 1 == s.lumi)
        assert s.n_alerts == n  # exact, from the summary
        assert s.n_kept == store.count_alerts(rule="1jet_pt60", lumi=s.lumi) < n
        assert s.n_kept + s.n_listed == n
        assert "storm on rule 1jet_pt60 in LS" in s.describe()
    # the same replay again: nothing new, the counts unchanged (parts stored once)
    run_embedded(batches, ctx, store)
    assert [(s.n_alerts, s.n_kept, s.n_listed) for s in store.storms()] == [
        (s.n_alerts, s.n_kept, s.n_listed) for s in storms]
    assert len(store.storm_records()) == rep.storms


def test_guarded_subscriber_gets_one_storm_notice_opt_out_gets_every_alert(ctx, store):
    from hotline.alerts.delivery import STORM_SETTLE, DeliveryWorker
    from hotline.alerts.outbox import install_outbox

    install_outbox(store)
    guarded = add_subscription(store, owner="t", channel="memory", settings={},
                               filter={"rules": ["1jet_pt60"]},
                               delivery={"storm_threshold": 10**6})
    every = add_subscription(store, owner="t", channel="memory", settings={},
                             filter={"rules": ["1jet_pt60"]},
                             delivery={"storm_threshold": 10**6, "storm_guard": False})
    other = add_subscription(store, owner="t", channel="memory", settings={},
                             filter={"rules": ["met500"]}, delivery={"storm_threshold": 10**6})
    for s in (guarded, every, other):
        MemoryChannel.boxes[s.id] = []
    arrays = make_events(1000, seed=4, run=9, events_per_lumi=1000)  # one lumisection
    run_embedded([EventBatch(arrays[i:i + 250]) for i in range(0, 1000, 250)], ctx, store)
    all_hits = _hits(arrays)
    clock = Clock()
    import time

    clock.t = time.time() + STORM_SETTLE + 1
    w = DeliveryWorker(store, threads=2, clock=clock, lease_seconds=0, max_inflight=10_000)
    try:
        drain(w)
        drain(w)
    finally:
        w.close()
    notes = MemoryChannel.boxes[guarded.id]
    storm_notes = [n for n in notes if n.kind == "storm"]
    (st,) = store.storms()
    assert len(storm_notes) == 1
    assert storm_notes[0].title() == (f"storm on rule 1jet_pt60 in LS 1 (run 9): "
                                      f"{len(all_hits)} alerts, {st.n_kept} kept")
    assert b"org.hotline.storm.v1" in storm_notes[0].cloudevent_bytes()
    got = {a.event for n in notes for a in n.alerts}
    assert len(got) == st.n_kept  # the kept alerts, not the listed ones
    every_got = {a.event for n in MemoryChannel.boxes[every.id] for a in n.alerts}
    assert every_got == all_hits  # nothing the opted-out subscriber asked for is missing
    assert not [n for n in MemoryChannel.boxes[every.id] if n.kind == "storm"]
    assert not MemoryChannel.boxes[other.id]  # the storm is not on its rule
    # the listed alerts are stored only because a subscriber asked for them
    assert store.count_alerts(rule="1jet_pt60") == len(all_hits)
    assert store.storms()[0].n_kept == st.n_kept
