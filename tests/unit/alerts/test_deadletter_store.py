"""Dead letters in the store: stable ids (stored once), filters, resolved / re-opened,
paging through every row; alerts streamed by keyset paging; stores of older releases
upgraded; read-only commands never create a store.

Tests taking only ``store`` also run against PostgreSQL
(tests/integration/postgres/test_deadletters_postgres.py).
"""

from __future__ import annotations

import sqlite3

import pytest

from hotline.alerts.backends import open_store
from hotline.alerts.records import AlertRecord, DeadLetter
from hotline.alerts.store import SQLiteAlertStore
from hotline.errors import StoreError


def dl(run=1, lumi=1, events=(5, 6), reason="NaN in MET_pt", origin="f.root", **kw):
    return DeadLetter("s", origin, reason, run, lumi, tuple(events), **kw)


def test_deadletter_id_is_stable_and_distinct():
    a = dl(created=1.0, payload=b"x")
    assert a.id == dl(created=2.0).id == dl(events=(6, 5)).id  # not time, payload, order
    ids = {a.id, dl(run=2).id, dl(lumi=2).id, dl(events=(5,)).id, dl(reason="inf").id,
           dl(origin="g.root").id, DeadLetter("t", "f.root", "NaN in MET_pt", 1, 1, (5, 6)).id,
           dl(run=None, lumi=None, events=()).id}
    assert len(ids) == 8 and all(len(i) == 24 for i in ids)


def test_same_deadletter_is_stored_once(store):
    first = [dl(events=(i,), created=float(i)) for i in range(5)]
    assert store.add_deadletters(first) == 5
    again = [dl(events=(i,), created=100.0 + i) for i in range(5)]  # a re-replay
    assert store.add_deadletters(again + again) == 0
    assert store.add_deadletters([dl(events=(9,))]) == 1
    assert store.count_deadletters() == 6
    assert sorted(d.events for d in store.deadletters()) == [(i,) for i in (0, 1, 2, 3, 4, 9)]


def test_deadletter_filters(store):
    store.add_deadletters([dl(run=1, lumi=1), dl(run=1, lumi=2), dl(run=2, lumi=1),
                           dl(run=None, lumi=None, events=(), reason="file damaged")])
    assert store.count_deadletters(run=1) == 2
    assert [d.lumi for d in store.deadletters(run=1, lumi=2)] == [2]
    assert store.count_deadletters(run=[1, 2]) == 3
    assert store.count_deadletters(origin="f.root") == 4
    assert store.count_deadletters(id=[]) == 0
    assert len(store.deadletters(limit=2)) == 2 and len(store.deadletters(limit=None)) == 4
    with pytest.raises(StoreError, match="unknown dead-letter filter 'colour'"):
        store.deadletters(colour="red")


def test_resolve_then_failing_again_reopens(store):
    a, b = dl(lumi=1), dl(lumi=2)
    store.add_deadletters([a, b])
    assert store.resolve_deadletters([a.id, "nope"], "re-driven: file replayed") == 1
    assert store.resolve_deadletters([a.id], "again") == 0  # already resolved
    assert [d.id for d in store.deadletters(resolved=False)] == [b.id]
    [r] = store.deadletters(resolved=True)
    assert r.id == a.id and r.resolved is not None and r.resolution == "re-driven: file replayed"
    assert store.add_deadletters([a]) == 1  # the same failure again: open again, not a copy
    assert store.count_deadletters() == 2 and store.count_deadletters(resolved=False) == 2
    [again] = store.deadletters(id=a.id)
    assert again.resolved is None and again.resolution is None


def test_iter_deadletters_pages_through_every_row(store):
    store.add_deadletters([dl(lumi=i % 7, events=(i,), created=float(i)) for i in range(2345)])
    got = list(store.iter_deadletters(page_size=100))
    assert len(got) == 2345 and len({d.id for d in got}) == 2345
    assert [d.events[0] for d in got] == list(range(2344, -1, -1))  # newest first
    assert sum(1 for _ in store.iter_deadletters(page_size=100, lumi=3)) == len(
        [i for i in range(2345) if i % 7 == 3])


def _alert(ev: int, created: float, rule: str = "r") -> AlertRecord:
    return AlertRecord.make(kind="classic", rule=rule, source="s", run=1 + ev % 3, lumi=1,
                            event=ev, created=created)


def test_iter_alerts_streams_every_row_in_store_order(store):
    # many equal creation times (a batch's alerts share one): keyset paging on (created, id)
    records = [_alert(i, float(i // 40), "a" if i % 2 else "b") for i in range(1234)]
    store.add_alerts(records)
    streamed = list(store.iter_alerts(page_size=50))
    assert [a.id for a in streamed] == [a.id for a in store.alerts(limit=None)]
    assert len({a.id for a in streamed}) == 1234
    assert [a.id for a in store.iter_alerts(page_size=7, rule="a", run=2)] == [
        a.id for a in store.alerts(limit=None, rule="a", run=2)]
    oldest = list(store.iter_alerts(page_size=64, newest_first=False))
    assert [a.id for a in oldest] == [a.id for a in store.alerts(limit=None, newest_first=False)]


def test_store_of_an_older_release_is_upgraded(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.execute("""CREATE TABLE deadletters (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, origin TEXT NOT NULL,
        reason TEXT NOT NULL, run BIGINT, lumi BIGINT, events TEXT NOT NULL, payload BLOB,
        created DOUBLE PRECISION NOT NULL)""")
    rows = [("s", "f.root", "NaN", 1, 1, "[5, 6]", None, 1.0),
            ("s", "f.root", "NaN", 1, 1, "[5, 6]", None, 2.0),  # a re-replay's copy
            ("s", "f.root", "NaN", 1, 2, "[7]", b"raw", 3.0)]
    con.executemany("INSERT INTO deadletters (source, origin, reason, run, lumi, events, "
                    "payload, created) VALUES (?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()
    with SQLiteAlertStore(path) as st:
        got = st.deadletters(limit=None)
        assert sorted((d.lumi, d.created) for d in got) == [(1, 1.0), (2, 3.0)]
        assert st.add_deadletters([DeadLetter("s", "f.root", "NaN", 1, 1, (5, 6))]) == 0
        assert st.count_deadletters() == 2
    with SQLiteAlertStore(path) as st:  # opening again changes nothing
        assert st.count_deadletters() == 2
    ids = sqlite3.connect(path).execute("SELECT id FROM deadletters").fetchall()
    assert all(i and len(i) == 24 for (i,) in ids)


def test_read_only_open_never_creates_a_store(tmp_path):
    missing = tmp_path / "typo" / "alerts.db"
    with pytest.raises(StoreError, match=f"no alert store at {missing}: the file does not"):
        open_store(f"sqlite:///{missing}", create=False)
    with pytest.raises(StoreError, match="it is a folder"):
        open_store(str(tmp_path), create=False)
    assert not missing.parent.exists()
    with open_store(f"sqlite:///{missing}") as st:  # writers still create it
        st.add_deadletters([dl()])
    with open_store(f"sqlite:///{missing}", create=False) as st:
        assert st.count_deadletters() == 1
