"""SQLite alert store: idempotent inserts, filters, summaries upsert, dead letters, WAL."""

from __future__ import annotations

import sqlite3

import pytest

from alerts.records import AlertRecord, DeadLetter, LumiSummary, alert_id
from alerts.store import open_store
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
