"""The DQM faust agent on ``hotline.occupancy`` and the occupancy-map wire format.

Wire format of ``hotline.occupancy`` (one message = one or more maps, key = run):
JSON ``{"schema": 1, "maps": [OccupancyMap.to_dict(), ...]}`` UTF-8. Decoding
checks the schema and the fields and raises ``StreamError`` naming what is
wrong, so the agent can dead-letter the message and go on.

``register_dqm_agent(app, topics, dctx)`` declares the occupancy topic on a
faust app (``stream.faust_app.make_app``) and attaches ``score_occupancy``:
decode -> ``stream.dqm_pipeline.process_occupancy`` (the same function as the
embedded path) -> send the DQM alerts to ``hotline.alerts`` (key = alert id)
and dead letters to ``hotline.deadletter``, waiting for the broker's
confirmation before taking the next message (at-least-once + idempotent store,
as for the event agent). Any exception while decoding, scoring or encoding a
message makes it one dead letter with the reason (``stream.agents.message_deadletter``)
instead of stopping the agent. The agent keeps no state.

``publish_maps(producer_send, topic, maps)`` is the producer side (any
``send(topic, key, value)`` callable, e.g. kafka-python's ``KafkaProducer.send``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from hotline.detectors.occupancy import OccupancyMap
from hotline.errors import StreamError

log = logging.getLogger(__name__)

OCCUPANCY_SCHEMA_VERSION = 1


def encode_occupancy(maps: Sequence[OccupancyMap]) -> bytes:
    return json.dumps({"schema": OCCUPANCY_SCHEMA_VERSION,
                       "maps": [m.to_dict() for m in maps]}).encode()


def decode_occupancy(data: bytes | None, origin: str = "kafka") -> list[OccupancyMap]:
    try:
        d = json.loads(data or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise StreamError(f"{origin}: occupancy message is not JSON ({exc})") from None
    if not isinstance(d, dict) or d.get("schema") != OCCUPANCY_SCHEMA_VERSION:
        got = d.get("schema") if isinstance(d, dict) else None
        raise StreamError(f"{origin}: occupancy schema version {got!r} is not supported "
                          f"(this Hotline reads {OCCUPANCY_SCHEMA_VERSION})")
    raw = d.get("maps")
    if not isinstance(raw, list):
        raise StreamError(f"{origin}: occupancy message field 'maps' must be a list, "
                          f"got {raw!r:.80}")
    for i, m in enumerate(raw):
        _check_map_fields(m, f"{origin}: occupancy map {i}")
    try:
        maps = [OccupancyMap.from_dict(m) for m in raw]
    except (KeyError, TypeError, ValueError) as exc:
        raise StreamError(f"{origin}: malformed occupancy map ({exc!r})") from None
    for m in maps:
        if m.counts.ndim != 2:
            raise StreamError(f"{origin}: occupancy map {m.subsystem} run {m.run} LS {m.lumi} "
                              f"is not a 2-D grid (shape {m.counts.shape})")
    return maps


def _check_map_fields(m: Any, where: str) -> None:
    """Types of the fields ``OccupancyMap.from_dict`` would otherwise coerce silently."""
    if not isinstance(m, dict):
        raise StreamError(f"{where} is a JSON {type(m).__name__}, expected an object")
    for key in ("run", "lumi", "n_events"):
        if key not in m:
            continue  # reported by from_dict as a malformed map
        v = m[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise StreamError(f"{where}: field '{key}' must be a non-negative integer, "
                              f"got {v!r:.80}")
    for key in ("subsystem", "source"):
        v = m.get(key, "hotline")
        if not isinstance(v, str) or not v:
            raise StreamError(f"{where}: field '{key}' must be a non-empty string, "
                              f"got {v!r:.80}")


def publish_maps(send: Callable[..., Any], topic: str, maps: Sequence[OccupancyMap]) -> Any:
    """Send maps grouped per run (key = run) with ``send(topic, key=..., value=...)``."""
    by_run: dict[int, list[OccupancyMap]] = {}
    for m in maps:
        by_run.setdefault(m.run, []).append(m)
    return [send(topic, key=str(r).encode(), value=encode_occupancy(ms))
            for r, ms in by_run.items()]


def register_dqm_agent(app: Any, topics: Any, dctx: Any) -> dict[str, Any]:
    """Declare ``topics.occupancy`` on ``app`` and attach the ``score_occupancy`` agent."""
    from hotline.stream.codecs import encode_alert, encode_deadletter
    from hotline.stream.dqm_pipeline import process_occupancy

    occupancy = app.topic(topics.occupancy, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw",
                          partitions=topics.partitions)
    alerts = app.topic(topics.alerts, key_serializer="raw", value_serializer="raw",
                       partitions=topics.partitions)
    deadletter = app.topic(topics.deadletter, key_serializer="raw", value_serializer="raw",
                           partitions=topics.partitions)

    @app.agent(occupancy, name="hotline.score_occupancy")
    async def score_occupancy(stream: Any) -> Any:
        import asyncio

        from hotline.stream.agents import message_deadletter

        async for event in stream.events():
            msg = event.message
            origin = f"{msg.topic}[{msg.partition}]@{msg.offset}"
            try:
                result = process_occupancy(decode_occupancy(event.value, origin), dctx)
                records = [(alerts, a.id.encode(), encode_alert(a)) for a in result.alerts]
                records += [(deadletter, d.origin.encode(), encode_deadletter(d))
                            for d in result.deadletters]
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop the agent
                d = message_deadletter(origin, event.value, exc)
                await (await deadletter.send(key=origin.encode(), value=encode_deadletter(d)))
                continue
            futs = [await topic.send(key=key, value=value) for topic, key, value in records]
            if futs:
                await asyncio.gather(*futs)
            log.info("scored %d occupancy maps from %s: %d DQM alerts", len(result.scores),
                     origin, len(result.alerts))

    return {"occupancy": occupancy, "agent": score_occupancy}
