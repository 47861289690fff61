"""Wire formats of the Kafka topics, with schema versions checked on decode.

- Event batches: ``MAGIC`` (4 bytes ``HLEV``) + version (uint16 big-endian) + header
  length (uint32) + JSON header (source, origin, n) + Arrow IPC stream of the
  awkward record array (``ak.to_arrow_table``: jagged object collections stay
  jagged; run / luminosityBlock / event are plain columns).
- Alerts: ``AlertRecord.to_json()`` UTF-8; decoding checks its ``schema`` field.
- Summaries: ``{"schema": 1, "summary": LumiSummary.to_dict(tally=True), "part": id}``;
  ``part`` (the partial summary's part id) is left out when there is none. The
  summary's ``tally`` (``EventTally.to_wire``: base64 little-endian arrays of its
  distinct event numbers, bit-packed flags and score bins) is what the store counts
  events from; records without it (older writers) decode with ``tally`` None and are
  added once per part id, without event-level de-duplication.
- Dead letters: JSON with the reason; the raw payload base64-encoded.

Decoding takes a fast path for the usual flat NanoAOD layout (a record of
numeric columns and lists of numbers, no missing values, no parameters): the
awkward arrays are numpy views of the Arrow buffers, built without
``ak.from_arrow`` and without Python extension-type objects (their per-column metadata
parsing was most of the ~3 ms decode of a 4096-event message): the record
batch is read against the plain storage schema; the plan is computed once per
schema message and the result is the same array, same form, as
``ak.from_arrow`` gives. Anything else
goes through ``ak.from_arrow``.

Every decode error is a ``StreamError`` naming what is wrong, so the agent can
route the message to ``hotline.deadletter`` and go on: besides the framing, the
header's fields are type-checked (``source`` a non-empty string, ``origin`` a
string, ``n`` a non-negative integer equal to the payload's rows) and the
content is validated (``stream.batch.validate_arrays``: ids, numeric branches,
no missing values, equal lengths within a collection, at least one event). ``register_codecs()``
makes the same formats available to faust (``hotline_events``, ``hotline_alert``).
"""

from __future__ import annotations

import base64
import json
import struct
from functools import lru_cache
from typing import Any

import awkward as ak
import numpy as np

from hotline.alerts.records import AlertRecord, DeadLetter, LumiSummary
from hotline.errors import HotlineError, StreamError
from hotline.stream.batch import EventBatch, validate_arrays

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
    """Bytes -> ``EventBatch`` (``meta["producer_origin"]``: the origin its producer gave);
    ``StreamError`` for anything malformed or of another version."""

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
    except Exception as exc:  # noqa: BLE001 - every corrupt payload becomes a dead letter
        raise StreamError(f"{origin}: event batch header is not JSON "
                          f"({type(exc).__name__}: {str(exc)[:160]})") from None
    source, where, n = _check_header(header, origin)
    try:
        arrays = arrays_from_ipc(memoryview(data)[_HEAD.size + hlen :])
    except Exception as exc:  # noqa: BLE001 - every corrupt payload becomes a dead letter
        raise StreamError(f"{origin}: event batch is corrupt "
                          f"({type(exc).__name__}: {str(exc)[:160]})") from None
    if n != len(arrays):
        raise StreamError(f"{origin}: event batch header says {n} events, "
                          f"payload has {len(arrays)}")
    full = f"{origin} ({where})"
    try:
        return EventBatch(validate_arrays(arrays, full, StreamError), source=source, origin=full,
                          meta={"producer_origin": where})
    except HotlineError as exc:
        raise StreamError(str(exc)) from None


def _check_header(header: Any, origin: str) -> tuple[str, str, int]:
    """``(source, origin, n)`` of a batch header, type-checked (``StreamError`` names the
    field)."""
    if not isinstance(header, dict):
        raise StreamError(f"{origin}: event batch header is a JSON {type(header).__name__}, "
                          "expected an object with source, origin and n")
    missing = [k for k in ("source", "origin", "n") if k not in header]
    if missing:
        raise StreamError(f"{origin}: event batch header has no '{missing[0]}' field")
    source, where, n = header["source"], header["origin"], header["n"]
    if not isinstance(source, str) or not source:
        raise StreamError(f"{origin}: event batch header field 'source' must be a non-empty "
                          f"string, got {source!r:.80}")
    if not isinstance(where, str):
        raise StreamError(f"{origin}: event batch header field 'origin' must be a string, "
                          f"got {where!r:.80}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise StreamError(f"{origin}: event batch header field 'n' must be a non-negative "
                          f"integer, got {n!r:.80}")
    return source, where, n


#: ``(kind, values dtype, offsets dtype)`` per column; kind "num" or "list"
_Plan = tuple[tuple[str, np.dtype, np.dtype | None], ...]
#: awkward's offsets type names -> numpy dtype (other offsets: no fast path)
_OFFSET_DTYPES: dict[str, np.dtype] = {"i32": np.dtype(np.int32), "i64": np.dtype(np.int64)}


def _strip(t: Any) -> Any:
    """An Arrow type with the (awkward) extension types replaced by their storage types."""
    import pyarrow as pa

    if isinstance(t, pa.ExtensionType):
        return _strip(t.storage_type)
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        f = t.value_field
        make = pa.large_list if pa.types.is_large_list(t) else pa.list_
        return make(pa.field(f.name, _strip(f.type), f.nullable))
    return t


@lru_cache(maxsize=16)
def _plan(schema_message: bytes) -> tuple[_Plan, Any] | None:
    """Fast-path plan and plain-storage Arrow schema of one IPC schema message, or None
    when the layout needs ``ak.from_arrow``."""
    import pyarrow as pa

    schema = pa.ipc.read_schema(pa.py_buffer(schema_message))
    form = ak.from_arrow_schema(schema)
    if not isinstance(form, ak.forms.RecordForm) or form.is_tuple or form.parameters:
        return None
    plan: list[tuple[str, np.dtype, np.dtype | None]] = []
    for content in form.contents:
        if content.parameters:
            return None
        if isinstance(content, ak.forms.ListOffsetForm):
            offsets = _OFFSET_DTYPES.get(content.offsets)
            inner = content.content
            if offsets is None or not isinstance(inner, ak.forms.NumpyForm):
                return None
            kind, leaf = "list", inner
        elif isinstance(content, ak.forms.NumpyForm):
            kind, leaf, offsets = "num", content, None
        else:
            return None
        if leaf.parameters or leaf.inner_shape:
            return None
        dtype = np.dtype(ak.types.numpytype.primitive_to_dtype(leaf.primitive))
        if dtype.kind not in "iuf":  # bool is bit-packed in Arrow, datetimes carry units
            return None
        plan.append((kind, dtype, offsets))
    storage = pa.schema([pa.field(f.name, _strip(f.type), f.nullable) for f in schema])
    for (kind, _, _), f in zip(plan, storage, strict=True):
        if (kind == "list") != (pa.types.is_large_list(f.type) or pa.types.is_list(f.type)):
            return None
    return tuple(plan), storage


def _view(arr: Any, dtype: np.dtype, extra: int = 0) -> np.ndarray:
    """Numpy view of the data (or offsets) buffer of a non-null Arrow array."""
    n = len(arr) + extra
    return np.frombuffer(arr.buffers()[1], dtype, count=arr.offset + n)[arr.offset :]


def arrays_from_ipc(body: Any) -> ak.Array:
    """An Arrow IPC stream -> ``ak.Array``: what ``ak.from_arrow`` of the table gives, through
    the fast path (module docstring) when the layout allows it."""
    import pyarrow as pa

    buf = pa.py_buffer(body)
    reader = pa.ipc.MessageReader.open_stream(buf)
    first = reader.read_next_message()
    fast = _plan(first.serialize().to_pybytes()) if first.type == "schema" else None
    batches = []
    if fast is not None:
        while True:
            try:
                msg = reader.read_next_message()
            except StopIteration:
                break
            if msg.type != "record batch":
                fast = None
                break
            batches.append(pa.ipc.read_record_batch(msg, fast[1]))
    if fast is None or len(batches) != 1 or batches[0].num_rows == 0:
        return ak.from_arrow(pa.ipc.open_stream(buf).read_all())
    rb = batches[0]
    rb.validate(full=True)  # offsets in bounds: a corrupt message fails here, not later
    contents = []
    for (_kind, dtype, offsets), arr in zip(fast[0], rb.columns, strict=True):
        if arr.null_count:
            return ak.from_arrow(pa.ipc.open_stream(buf).read_all())
        if offsets is None:  # kind "num" (a "list" column always has offsets)
            contents.append(ak.contents.NumpyArray(_view(arr, dtype)))
            continue
        values = arr.values
        if values.null_count:
            return ak.from_arrow(pa.ipc.open_stream(buf).read_all())
        contents.append(ak.contents.ListOffsetArray(
            ak.index.Index(_view(arr, offsets, extra=1)),
            ak.contents.NumpyArray(_view(values, dtype))))
    return ak.Array(ak.contents.RecordArray(contents, rb.schema.names, length=rb.num_rows))


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
        record = AlertRecord.from_dict(d)
    except StreamError as exc:
        raise StreamError(f"{origin}: {exc}") from None
    _check_alert_types(record, origin)
    return record


def _check_alert_types(a: AlertRecord, origin: str) -> None:
    """Field types of a decoded alert (JSON can hold anything; the store would take some
    wrong types silently and refuse others)."""
    for name in ("id", "kind", "rule", "source"):
        v = getattr(a, name)
        if not isinstance(v, str) or not v:
            raise StreamError(f"{origin}: alert field '{name}' must be a non-empty string, "
                              f"got {v!r:.80}")
    for name in ("run", "lumi", "event"):
        v = getattr(a, name)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**63:
            raise StreamError(f"{origin}: alert field '{name}' must be an integer in "
                              f"[0, 2**63), got {v!r:.80}")
    for name in ("score", "p_value", "significance", "created"):
        v = getattr(a, name)
        if (v is not None or name == "created") and (
                not isinstance(v, int | float) or isinstance(v, bool)):
            raise StreamError(f"{origin}: alert field '{name}' must be a number, got {v!r:.80}")
    if not isinstance(a.payload, dict):
        raise StreamError(f"{origin}: alert field 'payload' must be an object, "
                          f"got {a.payload!r:.80}")


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63


def _check_summary_types(s: LumiSummary, origin: str) -> None:
    """Field types of a decoded summary (a store would take some wrong types silently)."""
    if not isinstance(s.source, str) or not s.source:
        raise StreamError(f"{origin}: summary field 'source' must be a non-empty string, "
                          f"got {s.source!r:.80}")
    for name in ("run", "lumi", "n_events", "n_bad"):
        if not _is_count(getattr(s, name)):
            raise StreamError(f"{origin}: summary field '{name}' must be an integer in "
                              f"[0, 2**63), got {getattr(s, name)!r:.80}")
    if s.n_bad > s.n_events:
        raise StreamError(f"{origin}: summary counts {s.n_bad} quarantined events of "
                          f"{s.n_events}")
    for name in ("first_seen", "last_seen"):
        v = getattr(s, name)
        if not isinstance(v, int | float) or isinstance(v, bool) or v != v:
            raise StreamError(f"{origin}: summary field '{name}' must be a number, got {v!r:.80}")
    if not isinstance(s.rule_counts, dict) or not all(
            isinstance(k, str) and _is_count(v) for k, v in s.rule_counts.items()):
        raise StreamError(f"{origin}: summary field 'rule_counts' must map rule names to "
                          "counts")
    if not isinstance(s.score_hist, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(_is_count(x) for x in v)
            for k, v in s.score_hist.items()):
        raise StreamError(f"{origin}: summary field 'score_hist' must map rule names to lists "
                          "of counts")
    if not all(isinstance(r, str) for r in s.unavailable):
        raise StreamError(f"{origin}: summary field 'unavailable' must list rule names")


def encode_summary(summary: LumiSummary) -> bytes:
    body = summary.to_dict(tally=True)
    body.pop("part", None)  # at the top level, where older readers ignore it
    msg: dict[str, Any] = {"schema": SUMMARY_SCHEMA_VERSION, "summary": body}
    if summary.part is not None:
        msg["part"] = summary.part
    return json.dumps(msg).encode()


def decode_summary(data: bytes | None, origin: str = "kafka") -> LumiSummary:
    try:
        d = json.loads(data or b"")
        if d.get("schema") != SUMMARY_SCHEMA_VERSION:
            raise StreamError(f"{origin}: summary schema version {d.get('schema')!r} is not "
                              f"supported (this Hotline reads {SUMMARY_SCHEMA_VERSION})")
        summary = LumiSummary.from_dict(d["summary"])
        part = d.get("part", summary.part)
        if part is not None and not (isinstance(part, str) and part):
            raise StreamError(f"{origin}: summary part id {part!r} is not a non-empty string")
        summary.part = part
        _check_summary_types(summary, origin)
        return summary
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
