"""The faust agents: decode a ``hotline.events`` message, call the batch core, send results.

``register_agents(app, topics, ctx)`` declares the topics on ``app`` and attaches
one agent, ``score_events``. For each message (already a batch of ~4096 events,
so no further micro-batching) it:

1. decodes the Arrow IPC payload (``stream.codecs.decode_batch``, which also
   type-checks the header and validates the content);
2. calls ``stream.pipeline.process_batch`` - the same function as the embedded
   path, nothing re-implemented - and encodes its records. *Any* exception in
   steps 1-2 (a malformed message, another schema version, inconsistent content,
   or an unexpected error in the scoring code) turns the message into one dead
   letter on ``hotline.deadletter`` with the reason (exception type and message)
   and the raw bytes; the offset moves on only once the broker has confirmed it,
   like any other output. So no message can stop the actor (faust would restart
   it a few times, then the worker would exit);
3. sends one JSON record per alert to ``hotline.alerts`` (key = alert id), the
   batch's per-lumisection summaries (each with its part id, so the store counts a
   re-processed message once) to ``hotline.scores`` and event-level dead letters to
   ``hotline.deadletter``, and waits for the broker's confirmation;
4. updates two tables (changelogged in Kafka): events and alerts per
   "run:lumisection", from which the anomaly rate per lumisection follows. These
   are additive: a message re-processed after a crash is counted twice in them
   (the store's summaries are the exact numbers).

Pipelining: the agent runs ``CONCURRENCY`` (4) actors on the one topic, so
actors decode and score the next messages while earlier ones wait for the
broker to confirm their records (that wait, not the CPU, was most of the
worker's idle time). Order is kept per partition with a chain of two futures
per message: an actor queues its records only after the previous message of
the same partition has queued its own (records keep their order on the output
topics), and finishes only after the previous message's records are confirmed
(faust acks offsets in order, with no gaps). So the delivery guarantee of
``stream.faust_app`` is unchanged. The chain is the only state besides the
faust tables; it lives in the ``register_agents`` closure.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hotline.alerts.records import DeadLetter
from hotline.errors import HotlineError
from hotline.stream.codecs import decode_batch, encode_alert, encode_deadletter, encode_summary
from hotline.stream.pipeline import BatchResult, PipelineContext, process_batch
from hotline.stream.topics import TABLES, Topics

log = logging.getLogger(__name__)

#: raw bytes kept in a dead letter (the rest is cut; the reason says so)
MAX_DEADLETTER_PAYLOAD = 256 * 1024
#: actors of ``score_events``: they overlap scoring with waiting for broker confirmations
CONCURRENCY = 4


def _origin(message: Any) -> str:
    return f"{message.topic}[{message.partition}]@{message.offset}"


#: exception types already logged with a traceback (each is logged with one only once)
_TRACED: set[type] = set()


def message_deadletter(origin: str, raw: bytes | None, exc: BaseException) -> DeadLetter:
    """The dead letter of a message that could not be decoded or scored, with the reason.

    A ``HotlineError`` is an input the codecs or the pipeline refused (its message is the
    reason); anything else is unexpected: the reason names the exception type, and the
    first one of each type is logged with its traceback.
    """
    if isinstance(exc, HotlineError):
        reason = str(exc)
    else:
        reason = (f"{origin}: unexpected {type(exc).__name__} while decoding or scoring: "
                  f"{str(exc)[:300]}")
        if type(exc) not in _TRACED:
            _TRACED.add(type(exc))
            log.error("unexpected error on %s (traceback shown once per error type)", origin,
                      exc_info=exc)
    if raw and len(raw) > MAX_DEADLETTER_PAYLOAD:
        reason += f" [payload cut to {MAX_DEADLETTER_PAYLOAD} of {len(raw)} bytes]"
    log.warning("dead letter from %s: %s", origin, reason)
    cut = raw[:MAX_DEADLETTER_PAYLOAD] if raw else None
    return DeadLetter("kafka", origin, reason, payload=cut)


def message_records(raw: bytes | None, origin: str, ctx: PipelineContext,
                    topics: Topics) -> tuple[BatchResult | None, list[tuple[str, bytes, bytes]]]:
    """What one ``hotline.events`` message becomes: (result or None, [(topic, key, value)]).

    Decode, score and encode every output record; any exception on the way makes the
    message one dead letter record instead (``message_deadletter``), and the result is
    None. Records are encoded before anything is sent, so a record that cannot be
    encoded (e.g. a NaN score) dead-letters the whole message instead of failing
    half-way through it. Pure: no I/O (the agent sends the records).
    """
    try:
        result = process_batch(decode_batch(raw, origin=origin), ctx)
        out = [(topics.alerts, a.id.encode(), encode_alert(a)) for a in result.alerts]
        out += [(topics.scores, str(s.run).encode(), encode_summary(s))
                for s in result.summaries.values()]
        out += [(topics.deadletter, d.origin.encode(), encode_deadletter(d))
                for d in result.deadletters]
        return result, out
    except Exception as exc:  # noqa: BLE001 - one bad message must not stop the worker
        dead = message_deadletter(origin, raw, exc)
        return None, [(topics.deadletter, origin.encode(), encode_deadletter(dead))]


def register_agents(
    app: Any, topics: Topics, ctx: PipelineContext, tables: bool = True
) -> dict[str, Any]:
    """Declare topics, tables and the ``score_events`` agent on ``app``; returns them by name."""
    events = app.topic(topics.events, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=topics.partitions)
    alerts = app.topic(topics.alerts, key_serializer="raw", value_serializer="raw",
                       partitions=topics.partitions)
    scores = app.topic(topics.scores, key_serializer="raw", value_serializer="raw",
                       partitions=topics.partitions)
    deadletter = app.topic(topics.deadletter, key_serializer="raw", value_serializer="raw",
                           partitions=topics.partitions)
    lumi_events = lumi_alerts = None
    if tables:
        lumi_events = app.Table(TABLES[0], default=int, key_type=str, value_type=int,
                                partitions=topics.partitions)
        lumi_alerts = app.Table(TABLES[1], default=int, key_type=str, value_type=int,
                                partitions=topics.partitions)

    async def issue(records: list[tuple[str, bytes, bytes]]) -> list[Any]:
        # the results of one message go straight to the (aiokafka) producer: one record per
        # alert is the wire contract, and faust's per-record Topic.send bookkeeping costs
        # ~4x more than the send itself when a batch holds thousands of alerts
        send = app.producer.send
        return [await send(topic, key, value, None, None, None) for topic, key, value in records]

    # per partition: futures of the last message taken - (records issued, records confirmed)
    chain: dict[tuple[str, int], tuple[asyncio.Future, asyncio.Future]] = {}

    async def handle(event: Any, prev: tuple[asyncio.Future, asyncio.Future] | None,
                     issued: asyncio.Future) -> None:
        msg = event.message
        origin = _origin(msg)
        raw: bytes | None = event.value
        result, records = message_records(raw, origin, ctx, topics)
        if prev is not None:
            await prev[0]  # the previous message's records are queued: ours follow them
        futs = await issue(records)
        issued.set_result(None)
        if prev is not None:
            await prev[1]  # ... and are confirmed: ours may be confirmed (acked) after them
        if futs:
            await asyncio.gather(*futs)  # broker confirmed before the offset may be committed
        if result is None:
            return
        log.info("scored %d events from %s: %d alerts", result.n_events, origin,
                 len(result.alerts))
        if lumi_events is not None and lumi_alerts is not None:  # both or neither
            per_lumi: dict[str, int] = {}
            for a in result.alerts:
                k = f"{a.run}:{a.lumi}"
                per_lumi[k] = per_lumi.get(k, 0) + 1
            for s in result.summaries.values():
                k = f"{s.run}:{s.lumi}"
                lumi_events[k] += s.n_events
                if k in per_lumi:
                    lumi_alerts[k] += per_lumi[k]

    def _fail(fut: asyncio.Future, exc: BaseException) -> None:
        if not fut.done():
            fut.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            fut.exception()  # retrieved here; the next message's actor re-raises it

    @app.agent(events, name="hotline.score_events", concurrency=CONCURRENCY)
    async def score_events(stream: Any) -> Any:
        loop = asyncio.get_running_loop()
        async for event in stream.events():
            tp = (event.message.topic, event.message.partition)
            prev = chain.get(tp)
            mine = chain[tp] = (loop.create_future(), loop.create_future())
            try:
                await handle(event, prev, mine[0])
            except BaseException as exc:
                # later messages of the partition must not be confirmed past this one
                _fail(mine[0], exc)
                _fail(mine[1], exc)
                raise
            else:
                mine[1].set_result(None)
            finally:
                if chain.get(tp) is mine:
                    del chain[tp]

    return {"events": events, "alerts": alerts, "scores": scores, "deadletter": deadletter,
            "agent": score_events, "lumi_events": lumi_events, "lumi_alerts": lumi_alerts}
