"""The sink dead-letters records the store refuses (real SQLite store, real record types)."""

from __future__ import annotations

import json

from kafka.consumer.fetcher import ConsumerRecord

from hotline.alerts.records import AlertRecord, DeadLetter, LumiSummary
from hotline.alerts.store import SQLiteAlertStore
from hotline.config import StreamConfig
from hotline.stream.codecs import encode_alert, encode_deadletter, encode_summary
from hotline.stream.sink import SinkReport, store_unavailable, write_records
from hotline.stream.topics import topics_for

T = topics_for(StreamConfig())


def rec(topic: str, offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, -1, offset, 0, 0, b"k", value, [], None, 1, len(value), 0)


def alert(event: int, **change) -> bytes:
    a = AlertRecord.make(kind="classic", rule="r", source="s", run=1, lumi=2, event=event)
    d = json.loads(encode_alert(a))
    d.update(change)
    return json.dumps(d).encode()


def test_refused_records_become_deadletters_and_the_rest_is_stored(tmp_path):
    good_sum = LumiSummary("s", 1, 2, n_events=10, rule_counts={"r": 2}, part="p1")
    bad_sum = json.loads(encode_summary(LumiSummary("s", 1, 3, n_events=5, part="p2")))
    bad_sum["summary"]["lumi"] = {"not": "a number"}  # wrong type: refused at decode
    huge = json.loads(encode_summary(LumiSummary("s", 1, 4, n_events=5, part="p3")))
    huge["summary"]["run"] = 2**70  # too large for an SQL integer: refused at decode
    bad_dead = json.loads(encode_deadletter(DeadLetter("s", "o", "why")))
    bad_dead["run"] = 2**70
    records = [
        rec(T.alerts, 0, alert(1)),
        rec(T.alerts, 1, alert(2, run="eleven")),  # wrong type: refused at decode
        rec(T.alerts, 2, alert(3)),
        rec(T.scores, 3, encode_summary(good_sum)),
        rec(T.scores, 4, json.dumps(bad_sum).encode()),
        rec(T.scores, 5, json.dumps(huge).encode()),
        rec(T.deadletter, 6, encode_deadletter(DeadLetter("s", "o", "fine"))),
        rec(T.deadletter, 7, json.dumps(bad_dead).encode()),
    ]
    report = SinkReport()
    with SQLiteAlertStore(tmp_path / "a.db") as store:
        new = write_records(records, store, T, report)
        assert sorted(a.event for a in new) == [1, 3]
        assert [(s.lumi, s.n_events) for s in store.summaries()] == [(2, 10)]
        dead = {d.origin: d for d in store.deadletters()}
    assert set(dead) == {"o", f"{T.alerts}[0]@1", f"{T.scores}[0]@4", f"{T.scores}[0]@5",
                         f"{T.deadletter}[0]@7"}
    assert "alert field 'run' must be an integer" in dead[f"{T.alerts}[0]@1"].reason
    assert "summary field 'lumi' must be an integer" in dead[f"{T.scores}[0]@4"].reason
    assert "summary field 'run' must be an integer" in dead[f"{T.scores}[0]@5"].reason
    assert "refused this dead-letter record" in dead[f"{T.deadletter}[0]@7"].reason
    assert dead[f"{T.scores}[0]@4"].payload == records[4].value
    assert (report.alerts_seen, report.alerts_new, report.summaries, report.summaries_new,
            report.deadletters, report.records) == (2, 2, 1, 1, 5, 8)


def test_store_outage_is_not_the_records_fault(tmp_path):
    store = SQLiteAlertStore(tmp_path / "a.db")
    store.close()  # every write now fails: nothing may be dead-lettered or committed
    try:
        write_records([rec(T.alerts, 0, alert(1))], store, T, SinkReport())
    except Exception as exc:  # noqa: BLE001
        assert store_unavailable(exc), repr(exc)
    else:
        raise AssertionError("a closed store accepted a write")
