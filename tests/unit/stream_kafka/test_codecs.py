"""Kafka wire formats and helpers without a broker: codecs, schema checks, topics, splitting."""

from __future__ import annotations

import json
import os

import awkward as ak
import pytest

from alerts.records import AlertRecord, DeadLetter, LumiSummary
from hotline.config import StreamConfig
from hotline.errors import ConfigError, StreamError
from stream.batch import EventBatch
from stream.codecs import (
    decode_alert,
    decode_batch,
    decode_deadletter,
    decode_summary,
    encode_alert,
    encode_batch,
    encode_deadletter,
    encode_summary,
    register_codecs,
)
from stream.kafka_producer import fast_crc32c, split_messages
from stream.topics import bootstrap_servers, topics_for
from tests.conftest import make_events


def test_batch_roundtrip_keeps_jagged_collections_and_ids():
    b = EventBatch(make_events(300, run=4), source="s1", origin="f.root")
    got = decode_batch(encode_batch(b), origin="t[0]@5")
    assert ak.array_equal(got.arrays, b.arrays)
    assert got.source == "s1" and "t[0]@5" in got.origin and "f.root" in got.origin
    assert str(got.arrays.type) == str(b.arrays.type)


@pytest.mark.parametrize("data, match", [
    (b"", "empty or too short"),
    (b"garbage-garbage-garbage", "not a Hotline event batch"),
    (None, "empty"),
])
def test_malformed_batches_are_stream_errors(data, match):
    with pytest.raises(StreamError, match=match):
        decode_batch(data, origin="ev[1]@2")


def test_wrong_version_and_truncated_payload():
    raw = bytearray(encode_batch(EventBatch(make_events(50))))
    wrong = bytes(raw[:4]) + (2).to_bytes(2, "big") + bytes(raw[6:])
    with pytest.raises(StreamError, match="schema version 2 is not supported"):
        decode_batch(wrong)
    with pytest.raises(StreamError, match="corrupt"):
        decode_batch(bytes(raw[: len(raw) // 2]))


def test_batch_without_ids_is_rejected():
    import pyarrow as pa

    arrays = make_events(10)

    # hand-made payload lacking 'event'
    table = ak.to_arrow_table(ak.without_field(arrays, "event"))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    head = json.dumps({"source": "s", "origin": "o", "n": 10}).encode()
    from stream.codecs import _HEAD, MAGIC

    bad = _HEAD.pack(MAGIC, 1, len(head)) + head + sink.getvalue().to_pybytes()
    with pytest.raises(StreamError, match="'event' is missing"):
        decode_batch(bad)


def test_alert_summary_deadletter_roundtrip_and_schema():
    a = AlertRecord.make(kind="classic", rule="r", source="s", run=1, lumi=2, event=3,
                         payload={"objects": [["j1", 1.0, 0.1, 0.2]]})
    assert decode_alert(encode_alert(a)) == a
    bad = json.loads(encode_alert(a))
    bad["schema"] = 9
    with pytest.raises(StreamError, match="schema version 9"):
        decode_alert(json.dumps(bad).encode(), origin="al[0]@1")
    with pytest.raises(StreamError, match="not JSON"):
        decode_alert(b"{nope")
    s = LumiSummary("s", 1, 2, n_events=10, rule_counts={"r": 1}, unavailable={"x"})
    assert decode_summary(encode_summary(s)) == s
    with pytest.raises(StreamError, match="summary schema version"):
        decode_summary(b'{"schema": 5, "summary": {}}')
    d = DeadLetter("s", "o", "why", 1, 2, (3, 4), b"\x00\x01")
    assert decode_deadletter(encode_deadletter(d)) == d


def test_faust_codecs_registered():
    from faust.serializers import codecs

    register_codecs()
    register_codecs()  # idempotent
    b = EventBatch(make_events(20))
    raw = codecs.dumps("hotline_events", b)
    assert len(codecs.loads("hotline_events", raw)) == 20


def test_topics_and_broker_urls():
    t = topics_for(StreamConfig())
    assert t.all() == ["hotline.events", "hotline.occupancy", "hotline.scores",
                       "hotline.alerts", "hotline.deadletter"]
    assert bootstrap_servers("kafka://a:1;b") == "a:1,b:9092"
    with pytest.raises(ConfigError, match="scheme must be kafka"):
        bootstrap_servers("http://a:1")
    with pytest.raises(ConfigError):
        topics_for(StreamConfig(partitions=0))


def test_split_messages_by_run_and_size():
    a = ak.concatenate([make_events(1000, run=1), make_events(500, run=2)])
    pieces = list(split_messages(EventBatch(a), 400))
    assert [(r, len(p)) for r, p in pieces] == [(1, 400), (1, 400), (1, 200), (2, 400), (2, 100)]


def test_fast_crc32c_matches_kafka_python():
    from kafka.record import default_records
    from kafka.record._crc32c import crc as crc_py

    assert fast_crc32c()
    data = memoryview(bytearray(os.urandom(5000)))
    assert default_records.calc_crc32c(data) == crc_py(data)
