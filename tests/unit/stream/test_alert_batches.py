"""Alert-batch records of hotline.alerts (stream.alert_batches) and the sink reading them,
new and old (a rolling upgrade), with a real SQLite store."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from hotline.alerts.records import AlertRecord
from hotline.alerts.storms import StormRecord
from hotline.errors import StreamError
from hotline.stream.alert_batches import alert_lines, decode_alert_record, encode_alert_records
from hotline.stream.batch import EventBatch
from hotline.stream.codecs import encode_alert
from hotline.stream.pipeline import PipelineContext, process_batch
from hotline.stream.sink import SinkReport, write_records
from tests.conftest import make_events


@pytest.fixture(scope="module")
def alerts():
    res = process_batch(EventBatch(make_events(800, seed=2, run=4)), PipelineContext())
    assert len(res.alerts) > 50
    return res.alerts


def _storm() -> StormRecord:
    return StormRecord("hotline", 4, 2, "1jet_pt200", "classic", 10, 100, 40, 1,
                       np.array([7, 8]), np.array([np.nan, np.nan]), np.array([np.nan] * 2), 1.0)


def test_lines_are_the_single_alert_records_and_round_trip(alerts):
    assert alert_lines(alerts) == [a.to_json() for a in alerts]  # byte for byte
    (rec,) = encode_alert_records(alerts, [_storm()], origin="ev[0]@3")
    head = json.loads(rec.split(b"\n")[0])
    assert head == {"alert_batch": 1, "n": len(alerts), "storms": 1, "origin": "ev[0]@3"}
    back, storms = decode_alert_record(rec)
    assert back == list(alerts)
    assert [s.to_dict() for s in storms] == [_storm().to_dict()]
    assert encode_alert_records([], []) == []


def test_big_batches_are_cut_and_nan_refused(alerts, monkeypatch):
    import hotline.stream.alert_batches as ab

    monkeypatch.setattr(ab, "MAX_ALERTS_PER_RECORD", 20)
    recs = encode_alert_records(alerts, [_storm()])
    assert len(recs) == -(-len(alerts) // 20)
    got = [decode_alert_record(r) for r in recs]
    assert [a for g, _ in got for a in g] == list(alerts)
    assert sum(len(s) for _, s in got) == 1  # the storm records once, in the first
    a = alerts[0]
    bad = AlertRecord(a.id, a.kind, a.rule, a.source, a.run, a.lumi, a.event, float("nan"))
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode_alert_records([bad])


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b.replace(b'"alert_batch": 1', b'"alert_batch": 9'), "version 9"),
    (lambda b: b.rsplit(b"\n", 1)[0], "has"),
    (lambda b: b.replace(b'"run": 4', b'"run": "four"', 1), "line 2: alert field 'run'"),
    (lambda b: b + b"\n{}", "has"),
])
def test_malformed_batches_name_the_record_and_line(alerts, mangle, message):
    (rec,) = encode_alert_records(alerts[:3])
    with pytest.raises(StreamError, match=message):
        decode_alert_record(mangle(rec), origin="al[0]@5")


def test_sink_reads_batches_and_old_single_alert_records(alerts, store):
    t = SimpleNamespace(alerts="al", scores="sc", deadletter="dl")
    (batch,) = encode_alert_records(alerts[:-5], [_storm()])
    old = [encode_alert(a) for a in alerts[-5:]]  # an older worker during a rolling upgrade
    bad = batch.replace(b'"alert_batch": 1', b'"alert_batch": 9')
    records = [SimpleNamespace(topic="al", partition=0, offset=i, value=v)
               for i, v in enumerate([batch, *old, bad])]
    report = SinkReport()
    new = write_records(records, store, t, report)
    assert {a.id for a in new} == {a.id for a in alerts}
    assert report.alerts_seen == len(alerts) and report.storms == report.storms_new == 1
    assert [d.origin for d in store.deadletters()] == [f"al[0]@{len(records) - 1}"]
    assert len(store.storm_records()) == 1
