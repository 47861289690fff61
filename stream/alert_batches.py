"""Wire format of ``hotline.alerts`` records: alert batches (JSON lines) and storm records.

A worker sends what one ``hotline.events`` message produced as one record (cut into
several when it holds more than ``MAX_ALERTS_PER_RECORD`` alerts), UTF-8 JSON lines:

- line 1, the header: ``{"alert_batch": 1, "n": A, "storms": S, "origin": "<topic[p]@offset>"}``;
- the next ``A`` lines: one alert each, exactly the JSON object of a single-alert record
  (``AlertRecord.to_json``: keys sorted, ``schema`` 1, the payload's JSON text reused);
- the next ``S`` lines: one storm record each (``StormRecord.to_dict``: the storm guard's
  listed alerts of one rule in one lumisection, ``alerts.storms``).

A record whose first line is not such a header is a single-alert record of an older
worker (one ``AlertRecord`` JSON object, no newline): ``decode_alert_record`` reads both, so
sinks are upgraded first in a rolling upgrade and keep reading the old workers' records.

Encoding is per batch, not per alert: ``alert_lines`` formats the lines from a template
with the rule's constant fields JSON-encoded once and the numbers formatted as ``json``
does (``repr`` of finite floats); a NaN or infinite number raises ``ValueError`` as
``json.dumps(..., allow_nan=False)`` would (the agent dead-letters the message).
Decoding checks every alert (``codecs.decode_alert``'s type checks) and every storm record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from hotline.alerts.records import SCHEMA_VERSION, AlertRecord
from hotline.alerts.storms import StormRecord
from hotline.errors import StreamError

ALERT_BATCH_VERSION = 1
#: most alerts in one record (a 4,096-event message of an alert-heavy menu makes ~2,000)
MAX_ALERTS_PER_RECORD = 8192
_HEAD_PREFIX = b'{"alert_batch": '


def _num(v: float | None) -> str:
    if v is None:
        return "null"
    if not math.isfinite(v):
        raise ValueError(f"Out of range float values are not JSON compliant: {v!r}")
    return repr(float(v))


def alert_lines(alerts: Sequence[AlertRecord]) -> list[str]:
    """The JSON line of each alert (what ``AlertRecord.to_json`` gives), built in bulk."""
    if SCHEMA_VERSION != 1:  # the template below is the layout of schema 1
        return [a.to_json() for a in alerts]
    consts: dict[tuple[str, str, str], tuple[str, str, str]] = {}
    dumps = json.dumps
    out = []
    for a in alerts:
        c = consts.get((a.kind, a.rule, a.source))
        if c is None:
            c = consts[(a.kind, a.rule, a.source)] = (
                f', "kind": {dumps(a.kind)}, "lumi": ', f', "rule": {dumps(a.rule)}, "run": ',
                f', "source": {dumps(a.source)}}}')
        out.append(
            f'{{"created": {_num(a.created)}, "event": {int(a.event)}, "id": {dumps(a.id)}'
            f'{c[0]}{int(a.lumi)}, "p_value": {_num(a.p_value)}, "payload": {a.payload_json}'
            f'{c[1]}{int(a.run)}, "schema": {int(a.schema)}, "score": {_num(a.score)}, '
            f'"significance": {_num(a.significance)}{c[2]}')
    return out


def encode_alert_records(alerts: Sequence[AlertRecord], storms: Sequence[StormRecord] = (),
                         origin: str = "") -> list[bytes]:
    """The ``hotline.alerts`` record values of one message's alerts and storm records
    (empty list when there are neither)."""
    if not alerts and not storms:
        return []
    lines = alert_lines(alerts)
    storm_lines = [json.dumps(s.to_dict(), allow_nan=False) for s in storms]
    out = []
    for start in range(0, max(len(lines), 1), MAX_ALERTS_PER_RECORD):
        chunk = lines[start : start + MAX_ALERTS_PER_RECORD]
        extra = storm_lines if start == 0 else []
        head = json.dumps({"alert_batch": ALERT_BATCH_VERSION, "n": len(chunk),
                           "storms": len(extra), "origin": origin})
        out.append("\n".join([head, *chunk, *extra]).encode())
    return out


def decode_alert_record(data: bytes | None, origin: str = "kafka"
                        ) -> tuple[list[AlertRecord], list[StormRecord]]:
    """A ``hotline.alerts`` record -> (alerts, storm records): an alert batch, or an older
    worker's single alert. ``StreamError`` naming ``origin`` and the line for anything
    malformed (the sink dead-letters the record)."""
    from hotline.stream.codecs import decode_alert

    if not data or not data.startswith(_HEAD_PREFIX):
        return [decode_alert(data, origin)], []
    lines = data.split(b"\n")
    try:
        head = json.loads(lines[0])
    except ValueError as exc:
        raise StreamError(f"{origin}: alert batch header is not JSON ({exc})") from None
    version, n, n_storms = head.get("alert_batch"), head.get("n"), head.get("storms", 0)
    if version != ALERT_BATCH_VERSION:
        raise StreamError(f"{origin}: alert batch version {version!r} is not supported "
                          f"(this Hotline reads {ALERT_BATCH_VERSION})")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
               for v in (n, n_storms)):
        raise StreamError(f"{origin}: alert batch header counts n={n!r}, storms={n_storms!r} "
                          "are not counts")
    if len(lines) != 1 + n + n_storms:
        raise StreamError(f"{origin}: alert batch says {n} alerts and {n_storms} storm "
                          f"records, has {len(lines) - 1} lines")
    alerts = [decode_alert(line, f"{origin} line {i + 2}") for i, line in
              enumerate(lines[1 : 1 + n])]
    storms = []
    for i, line in enumerate(lines[1 + n :]):
        where = f"{origin} line {n + i + 2}"
        try:
            storms.append(StormRecord.from_dict(json.loads(line)))
        except ValueError as exc:
            raise StreamError(f"{where}: storm record is not JSON ({exc})") from None
        except StreamError as exc:
            raise StreamError(f"{where}: {exc}") from None
    return alerts, storms


__all__ = ["ALERT_BATCH_VERSION", "alert_lines", "decode_alert_record", "encode_alert_records"]
