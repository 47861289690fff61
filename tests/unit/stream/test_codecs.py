"""Kafka wire formats and helpers without a broker: codecs, schema checks, topics, splitting."""

from __future__ import annotations

import json
import os

import awkward as ak
import pytest

from hotline.alerts.records import AlertRecord, DeadLetter, LumiSummary
from hotline.config import StreamConfig
from hotline.errors import ConfigError, StreamError
from hotline.stream.batch import EventBatch
from hotline.stream.codecs import (
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
from hotline.stream.kafka_producer import split_messages
from hotline.stream.topics import bootstrap_servers, topics_for
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
    from hotline.stream.codecs import _HEAD, MAGIC

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


def test_kafka_python_checksums_with_the_c_crc32c_package():
    """kafka-python uses the maintained ``crc32c`` package (kafka extra) when installed: the
    pure-Python CRC-32C capped the producer at ~20k events/s."""
    from kafka.record import default_records, util
    from kafka.record._crc32c import crc as crc_py

    assert util.crc32c_c is not None
    data = memoryview(bytearray(os.urandom(5000)))
    assert default_records.calc_crc32c(data) == crc_py(data)


def _ipc(table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("arrays", [
    make_events(777, run=3)[13:700],                     # flat NanoAOD layout: fast path
    ak.Array({"run": [1, 1, 2], "event": [1, 2, 3], "ok": [True, False, True],  # bool: fallback
              "Jet_pt": [[1.0], [], [2.0, None]]}),      # missing values: fallback
    ak.Array({"run": [1, 2], "event": [1, 2], "Jet": [[{"pt": 1.0}], []]}),  # records: fallback
    ak.with_parameter(ak.Array({"run": [5], "event": [9], "x": [[1, 2]]}), "__doc__", "d"),
])
def test_ipc_fast_path_equals_ak_from_arrow(arrays):
    from hotline.stream.codecs import arrays_from_ipc

    table = ak.to_arrow_table(arrays)
    got = arrays_from_ipc(_ipc(table))
    want = ak.from_arrow(table)
    assert got.layout.form == want.layout.form
    assert ak.array_equal(got, want) and ak.to_list(got) == ak.to_list(arrays)


def test_ipc_fast_path_rejects_corrupt_offsets():
    """List offsets pointing past the values fail the decode (-> dead letter), not later."""
    import numpy as np
    import pyarrow as pa

    from hotline.stream.codecs import _plan, arrays_from_ipc

    item = pa.field("item", pa.float64(), nullable=False)
    typ = pa.large_list(item)
    values = pa.array([1.0, 2.0], pa.float64())
    schema = pa.schema([pa.field("x", typ, nullable=False)])

    arr = pa.Array.from_buffers(typ, 2, [None, pa.py_buffer(np.array([0, 1, 2], np.int64))],
                                children=[values])
    good = _ipc(pa.Table.from_arrays([arr], schema=schema))
    # pyarrow refuses to build the bad array, so corrupt the serialized offsets instead
    ok_offsets = np.array([0, 1, 2], np.int64).tobytes()
    assert good.count(ok_offsets) == 1
    bad = good.replace(ok_offsets, np.array([0, 1, 50], np.int64).tobytes())
    pa_reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(good))
    assert _plan(pa_reader.read_next_message().serialize().to_pybytes()) is not None  # fast
    assert ak.to_list(arrays_from_ipc(good)) == [{"x": [1.0]}, {"x": [2.0]}]
    with pytest.raises(pa.ArrowInvalid):
        arrays_from_ipc(bad)
