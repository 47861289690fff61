"""Wire formats of the Kafka topics, with schema versions checked on decode.

- Event batches: ``MAGIC`` (4 bytes ``HLEV``) + version (uint16 big-endian) + header
  length (uint32) + JSON header (source, origin, n) + Arrow IPC stream of the
  awkward record array (``ak.to_arrow_table``: jagged object collections stay
  jagged; run / luminosityBlock / event are plain columns).
- Alerts: ``AlertRecord.to_json()`` UTF-8; decoding checks its ``schema`` field.
- Summaries: ``{"schema": 1, "summary": LumiSummary.to_dict()}``.
- Dead letters: JSON with the reason; the raw payload base64-encoded.

Every decode error is a ``StreamError`` naming what is wrong, so the agent can
route the message to ``hotline.deadletter`` and go on. ``register_codecs()``
makes the same formats available to faust (``hotline_events``, ``hotline_alert``).
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import awkward as ak

from alerts.records import AlertRecord, DeadLetter, LumiSummary
from hotline.errors import HotlineError, StreamError
from stream.batch import EventBatch

MAGIC = b"HLEV"
EVENTS_SCHEMA_VERSION = 1
SUMMARY_SCHEMA_VERSION = 1
DEADLETTER_SCHEMA_VERSION = 1
_HEAD = struct.Struct(">4sHI")


def encode_batch(batch: EventBatch, version: int = EVENTS_SCHEMA_VERSION) -> bytes:
    """One ``EventBatch`` -> bytes (see module docstring)."""
    import pyarrow as pa

    table = ak.to_arrow_table(batch.arrays)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    header = json.dumps({"source": batch.source, "origin": batch.origin,
                         "n": len(batch)}).encode()
    return _HEAD.pack(MAGIC, version, len(header)) + header + sink.getvalue().to_pybytes()


def decode_batch(data: bytes | None, origin: str = "kafka") -> EventBatch:
    """Bytes -> ``EventBatch``; ``StreamError`` for anything malformed or of another version."""
    import pyarrow as pa

    if not data or len(data) < _HEAD.size:
        raise StreamError(f"{origin}: event message is empty or too short "
                          f"({0 if not data else len(data)} bytes)")
    magic, version, hlen = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise StreamError(f"{origin}: not a Hotline event batch (magic {magic!r}, "
                          f"expected {MAGIC!r})")
    if version != EVENTS_SCHEMA_VERSION:
        raise StreamError(f"{origin}: event batch schema version {version} is not supported "
                          f"(this Hotline reads version {EVENTS_SCHEMA_VERSION})")
    try:
        header = json.loads(data[_HEAD.size : _HEAD.size + hlen])
        table = pa.ipc.open_stream(memoryview(data)[_HEAD.size + hlen :]).read_all()
        arrays = ak.from_arrow(table)
    except Exception as exc:  # noqa: BLE001 - every corrupt payload becomes a dead letter
        raise StreamError(f"{origin}: event batch is corrupt "
                          f"({type(exc).__name__}: {str(exc)[:160]})") from None
    if header.get("n") is not None and header["n"] != len(arrays):
        raise StreamError(f"{origin}: event batch header says {header['n']} events, "
                          f"payload has {len(arrays)}")
    try:
        return EventBatch(arrays, source=header.get("source", "hotline"),
                          origin=f"{origin} ({header.get('origin', '?')})")
    except HotlineError as exc:
        raise StreamError(str(exc)) from None


def encode_alert(record: AlertRecord) -> bytes:
    return record.to_json().encode()


def decode_alert(data: bytes | None, origin: str = "kafka") -> AlertRecord:
    try:
        d = json.loads(data or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise StreamError(f"{origin}: alert message is not JSON ({exc})") from None
    if not isinstance(d, dict):
        raise StreamError(f"{origin}: alert message is not a JSON object")
    try:
        return AlertRecord.from_dict(d)
    except StreamError as exc:
        raise StreamError(f"{origin}: {exc}") from None


def encode_summary(summary: LumiSummary) -> bytes:
    return json.dumps({"schema": SUMMARY_SCHEMA_VERSION, "summary": summary.to_dict()}).encode()


def decode_summary(data: bytes | None, origin: str = "kafka") -> LumiSummary:
    try:
        d = json.loads(data or b"")
        if d.get("schema") != SUMMARY_SCHEMA_VERSION:
            raise StreamError(f"{origin}: summary schema version {d.get('schema')!r} is not "
                              f"supported (this Hotline reads {SUMMARY_SCHEMA_VERSION})")
        return LumiSummary.from_dict(d["summary"])
    except StreamError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise StreamError(f"{origin}: malformed summary message ({exc})") from None


def encode_deadletter(d: DeadLetter) -> bytes:
    return json.dumps({
        "schema": DEADLETTER_SCHEMA_VERSION, "source": d.source, "origin": d.origin,
        "reason": d.reason, "run": d.run, "lumi": d.lumi, "events": list(d.events),
        "payload": base64.b64encode(d.payload).decode() if d.payload else None,
        "created": d.created,
    }).encode()


def decode_deadletter(data: bytes | None, origin: str = "kafka") -> DeadLetter:
    try:
        d = json.loads(data or b"")
        if d.get("schema") != DEADLETTER_SCHEMA_VERSION:
            raise StreamError(f"{origin}: dead-letter schema version {d.get('schema')!r} "
                              "is not supported")
        payload = base64.b64decode(d["payload"]) if d.get("payload") else None
        return DeadLetter(d["source"], d["origin"], d["reason"], d.get("run"), d.get("lumi"),
                          tuple(d.get("events", ())), payload, d.get("created", 0.0))
    except StreamError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise StreamError(f"{origin}: malformed dead-letter message ({exc})") from None


_REGISTERED = False


def register_codecs() -> None:
    """Register ``hotline_events`` and ``hotline_alert`` with faust (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from faust.serializers import codecs

    class EventsCodec(codecs.Codec):
        def _dumps(self, obj: Any) -> bytes:
            return obj if isinstance(obj, bytes) else encode_batch(obj)

        def _loads(self, s: bytes) -> Any:
            return decode_batch(s)

    class AlertCodec(codecs.Codec):
        def _dumps(self, obj: Any) -> bytes:
            return obj if isinstance(obj, bytes) else encode_alert(obj)

        def _loads(self, s: bytes) -> Any:
            return decode_alert(s)

    codecs.register("hotline_events", EventsCodec())
    codecs.register("hotline_alert", AlertCodec())
    _REGISTERED = True
