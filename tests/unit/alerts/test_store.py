"""SQLite alert store: idempotent inserts, filters, summaries upsert, dead letters, WAL."""

from __future__ import annotations

import sqlite3

import pytest

from hotline.alerts.backends import open_store
from hotline.alerts.records import AlertRecord, DeadLetter, LumiSummary, alert_id
from hotline.errors import StoreError, StreamError


def rec(rule="r1", run=1, ls=1, ev=1, p=None, created=None):
    return AlertRecord.make(kind="ae" if p else "classic", rule=rule, source="s", run=run,
                            lumi=ls, event=ev, score=1.0 if p else None, p_value=p,
                            payload={"objects": [["e1", 30.0, 0.1, 0.2]]}, created=created)


def test_alert_id_is_stable_and_distinct():
    assert alert_id("s", 1, 2, 3, "r") == alert_id("s", 1, 2, 3, "r")
    ids = {alert_id("s", 1, 2, 3, "r"), alert_id("s", 1, 2, 4, "r"), alert_id("s", 1, 2, 3, "q"),
           alert_id("t", 1, 2, 3, "r"), alert_id("s", 1, 3, 3, "r")}
    assert len(ids) == 5


def test_insert_is_idempotent_and_returns_new_only(store):
    batch = [rec(ev=i) for i in range(10)]
    assert len(store.add_alerts(batch)) == 10
    again = store.add_alerts(batch + [rec(ev=99)])
    assert [r.event for r in again] == [99]
    assert store.count_alerts() == 11
    got = store.get_alert(batch[3].id)
    assert got == batch[3]


def test_filters_and_order(store):
    store.add_alerts([rec(rule="a", run=1, ev=1, created=1.0),
                      rec(rule="b", run=2, ev=2, created=2.0),
                      rec(rule="ae", run=2, ev=3, p=1e-6, created=3.0),
                      rec(rule="ae", run=2, ev=4, p=0.02, created=4.0)])
    assert [a.event for a in store.alerts()] == [4, 3, 2, 1]
    assert store.count_alerts(run=2) == 3
    assert store.count_alerts(rule=["a", "b"]) == 2
    assert [a.event for a in store.alerts(min_significance=3.0)] == [3]
    assert [a.event for a in store.alerts(max_p=1e-3)] == [3]
    assert store.rule_counts() == {"a": 1, "b": 1, "ae": 2}
    with pytest.raises(StoreError, match="unknown alert filter"):
        store.alerts(colour="red")


def test_pages_sorted_by_a_column_missing_values_last(store):
    store.add_alerts([rec(rule="a", ev=1, created=1.0), rec(rule="ae", ev=2, p=1e-6, created=2.0),
                      rec(rule="ae", ev=3, p=0.02, created=3.0), rec(rule="b", ev=4, created=4.0),
                      rec(rule="ae", ev=5, p=1e-4, created=5.0)])
    by_p = [a.event for a in store.alerts(order_by="p_value", newest_first=False)]
    assert by_p == [2, 5, 3, 4, 1]  # smallest first, no p-value last (newest first among them)
    assert [a.event for a in store.alerts(order_by="p_value")] == [3, 5, 2, 4, 1]
    assert [a.event for a in store.alerts(order_by="rule", newest_first=False, limit=2,
                                          offset=1)] == [5, 3]  # page 2 of a, ae, ae, ae, b
    assert [a.event for a in store.alerts(limit=2, offset=2)] == [3, 2]
    with pytest.raises(StoreError, match="cannot order alerts by"):
        store.alerts(order_by="payload; DROP TABLE alerts")


def test_summaries_upsert_replaces(store):
    s = LumiSummary("s", 1, 5, n_events=100, rule_counts={"a": 3})
    store.upsert_summaries([s])
    store.upsert_summaries([s])
    assert store.summaries() == [s] or store.summaries()[0].n_events == 100
    merged = s + LumiSummary("s", 1, 5, n_events=50, rule_counts={"a": 1, "b": 2})
    store.upsert_summaries([merged])
    [got] = store.summaries(run=1)
    assert got.n_events == 150 and got.rule_counts == {"a": 4, "b": 2}


def test_deadletters_kept(store):
    store.add_deadletters([DeadLetter("s", "f.root", "NaN", 1, 2, (5, 6), b"\x00raw")])
    [d] = store.deadletters()
    assert d.reason == "NaN" and d.events == (5, 6) and d.payload == b"\x00raw"


def test_real_file_in_wal_mode(tmp_path):
    url = f"sqlite:///{tmp_path / 'x' / 'alerts.db'}"
    with open_store(url) as st:
        st.add_alerts([rec()])
    con = sqlite3.connect(tmp_path / "x" / "alerts.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 1


def test_bad_urls(tmp_path):
    with pytest.raises(StoreError, match="unknown alert store URL scheme 'mysql'"):
        open_store("mysql://x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot open alert store"):
        open_store(f"sqlite:///{tmp_path / 'file' / 'a.db'}")


def test_record_json_schema_check():
    import json

    r = rec(p=1e-5)
    d = json.loads(r.to_json())
    assert AlertRecord.from_dict(d) == r
    with pytest.raises(StreamError, match="schema version 99"):
        AlertRecord.from_dict({**d, "schema": 99})
    assert r.significance == pytest.approx(4.2649, abs=1e-3)


def part(ls, events, rule_hits=1, part_id=True, source="s"):
    """A partial summary of ``events`` of lumisection ``ls`` of run 1 (with its part id)."""
    from hotline.alerts.records import EventSet

    ev = EventSet.of(events)
    return LumiSummary(source, 1, ls, n_events=len(events), n_bad=1,
                       rule_counts={"a": rule_hits}, score_hist={"ae": [len(events), 0]},
                       unavailable={"pho"}, first_seen=10.0 + ls, last_seen=20.0 + ls,
                       part=ev.part_id(source, 1, ls) if part_id else None)


def test_summary_parts_counted_once(store):
    a, b = part(5, range(1, 101)), part(5, range(101, 151), rule_hits=2)
    assert store.add_summary_parts([a]) == 1
    assert store.add_summary_parts([a]) == 0  # re-read / re-processed: nothing added
    assert store.add_summary_parts([a, b, b]) == 1  # only b is new, and counted once
    [got] = store.summaries(run=1)
    assert (got.n_events, got.n_bad, got.rule_counts) == (150, 2, {"a": 3})
    assert got.score_hist == {"ae": [150, 0]} and got.unavailable == {"pho"}
    assert got.part is None  # a stored (merged) summary is not a part
    assert store.add_summary_parts([b, part(6, range(151, 161)), a]) == 1
    assert [(s.lumi, s.n_events) for s in store.summaries(run=1)] == [(5, 150), (6, 10)]


def test_summary_parts_without_id_merge_as_before(store):
    legacy = part(3, range(1, 11), part_id=False)
    assert store.add_summary_parts([legacy, legacy]) == 2
    assert store.add_summary_parts([legacy]) == 1
    [got] = store.summaries()
    assert got.n_events == 30 and got.rule_counts == {"a": 3}
    store.upsert_summaries([part(3, range(1, 5), part_id=False)])  # whole summary: replaces
    assert store.summaries()[0].n_events == 4
