"""The faust agents: decode a ``hotline.events`` message, call the batch core, send results.

``register_agents(app, topics, ctx)`` declares the topics on ``app`` and attaches
one agent, ``score_events``. For each message (a batch of ~4096 events) it:

1. decodes the Arrow IPC payload (``stream.codecs.decode_batch``, which also
   type-checks the header and validates the content);
2. calls ``stream.pipeline.process_batch`` - the same function as the embedded
   path, nothing re-implemented - with the worker's storm guard (``alerts.storms``,
   ``[alerts] max_alerts_per_lumi``), and encodes its records. *Any* exception in
   steps 1-2 (a malformed message, another schema version, inconsistent content,
   or an unexpected error in the scoring code) turns the message into one dead
   letter on ``hotline.deadletter`` with the reason (exception type and message)
   and the raw bytes; the offset moves on only once the broker has confirmed it,
   like any other output. So no message can stop the actor (faust would restart
   it a few times, then the worker would exit);
3. queues its records on the producer without waiting: the message's alerts and storm
   records as one alert-batch record on ``hotline.alerts`` (``stream.alert_batches``,
   key = the message's key), the batch's per-lumisection summaries (each with its part id,
   so the store counts a re-processed message once) on ``hotline.scores`` and event-level
   dead letters on ``hotline.deadletter``;
4. updates two tables (changelogged in Kafka): events and alerts per
   "run:lumisection", from which the anomaly rate per lumisection follows. These
   are additive: a message re-processed after a crash is counted twice in them
   (the store's summaries are the exact numbers).

Messages scored together (``MessageMerger``, ``[stream] merge_events``, default 16,384
events): a call's fixed cost (per rule, histogram and record, ~1.5 us per event at 4,096
events) is paid per call, so when the worker is behind, consecutive messages already fetched
from one partition with the same key, source, producer origin and branches are joined
(``stream.batch.concat_batches``) and scored as one batch, as soon as the fetched queue is
empty or the group is full; a worker that keeps up scores each message alone, so merging
adds no latency. The results are those of scoring each message alone: alert ids hash
(source, run, lumisection, event, rule), the store claims each event of a summary once,
and the group's event-level dead letters are per message (their ids name the message:
``meta["parts"]`` of ``stream.batch.concat_batches``). The group's records are sent with
its first message and the others are acked after it, so no commit passes a message whose
events' records are unconfirmed. A group that fails to score is scored message by
message, so a bad message is one dead letter.

In flight, in offset order (``InFlight``): the agent takes the next message while the
broker confirms the records of earlier ones, up to ``MAX_IN_FLIGHT`` messages; its stream
does not ack by itself (``stream.noack()``). A message is acked - and so may be committed
- once every record it produced is confirmed *and* every earlier message of its partition
is acked, so faust's commit (which also flushes the producer first) never passes a
message whose results are not on the broker. Records whose send failed are sent again
(with backoff) until confirmed; until then the message and those after it stay unacked.
Records are queued in message order (one actor), so they keep their order on the output
topics. The delivery guarantee of ``stream.faust_app`` is unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hotline.alerts.records import DeadLetter
from hotline.alerts.storms import StormGuard
from hotline.errors import HotlineError
from hotline.stream.alert_batches import encode_alert_records
from hotline.stream.batch import EventBatch, concat_batches
from hotline.stream.codecs import decode_batch, encode_deadletter, encode_summary
from hotline.stream.pipeline import BatchResult, PipelineContext, process_batch
from hotline.stream.topics import TABLES, Topics

log = logging.getLogger(__name__)

#: raw bytes kept in a dead letter (the rest is cut; the reason says so)
MAX_DEADLETTER_PAYLOAD = 256 * 1024
#: messages whose records may wait for the broker's confirmation while the next is scored
MAX_IN_FLIGHT = 16


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


def message_records(raw: bytes | None, origin: str, ctx: PipelineContext, topics: Topics,
                    guard: StormGuard | None = None, key: bytes | None = None
                    ) -> tuple[BatchResult | None, list[tuple[str, bytes, bytes]]]:
    """What one ``hotline.events`` message becomes: (result or None, [(topic, key, value)]).

    Decode, score (with the storm ``guard``, if any) and encode every output record; any
    exception on the way makes the message one dead letter record instead
    (``message_deadletter``), and the result is None. Records are encoded before anything
    is sent, so a record that cannot be encoded (e.g. a NaN score) dead-letters the whole
    message instead of failing half-way through it. Pure but for the guard's count: no I/O
    (the agent sends the records).
    """
    [done] = MessageMerger(ctx, topics, guard).add(Incoming(None, None, raw, origin, key))
    return done.result, done.records


def result_records(result: BatchResult, origin: str, key: bytes, topics: Topics
                   ) -> list[tuple[str, bytes, bytes]]:
    """The output records of a scored batch: one alert-batch record (key ``key``), one
    summary per lumisection (key: the run), its event-level dead letters."""
    out = [(topics.alerts, key, v)
           for v in encode_alert_records(result.alerts, result.storms, origin)]
    out += [(topics.scores, str(s.run).encode(), encode_summary(s))
            for s in result.summaries.values()]
    out += [(topics.deadletter, d.origin.encode(), encode_deadletter(d))
            for d in result.deadletters]
    return out


def deadletter_record(origin: str, raw: bytes | None, exc: BaseException, topics: Topics
                      ) -> tuple[str, bytes, bytes]:
    """The dead-letter record of a message that failed with ``exc``."""
    dead = message_deadletter(origin, raw, exc)
    return (topics.deadletter, origin.encode(), encode_deadletter(dead))


@dataclass
class Incoming:
    """One fetched ``hotline.events`` message: the faust event (``handle``, opaque here),
    its partition, payload, origin (``topic[p]@offset``) and key."""

    handle: Any
    tp: Any
    raw: bytes | None
    origin: str
    key: bytes | None = None


@dataclass
class Scored:
    """The outcome of messages ``items`` scored together: their records (sent with the
    first message; the others have none and are acked after it) and the result (None: the
    message is a dead letter)."""

    items: list[Incoming]
    result: BatchResult | None
    records: list[tuple[str, bytes, bytes]]
    origin: str


class MessageMerger:
    """Scores consecutive messages of a partition together, up to ``merge_events`` events
    (module docstring): ``add(message)`` and ``flush()`` return what is ready to send.

    Each partition has its own pending group (the fetched queue interleaves partitions);
    a message joins its partition's group when it has the same key, source, producer
    origin and branches; anything else (or a message that cannot be decoded: a dead
    letter) flushes that group first, so each partition's outcomes stay in offset order.
    A group that fails to score as a whole is scored message by message, so a bad message
    is one dead letter, as alone.
    """

    def __init__(self, ctx: PipelineContext, topics: Topics, guard: StormGuard | None = None,
                 merge_events: int = 0) -> None:
        self.ctx, self.topics, self.guard = ctx, topics, guard
        self.merge_events = merge_events
        self.pending: dict[Any, list[tuple[Incoming, EventBatch]]] = {}  # tp -> group
        self.events: dict[Any, int] = {}

    @staticmethod
    def _mark(item: Incoming, batch: EventBatch) -> tuple[Any, ...]:
        return (item.key, batch.source, batch.meta.get("producer_origin"),
                tuple(batch.arrays.fields))

    def add(self, item: Incoming) -> list[Scored]:
        """Take one message; returns the outcomes it made ready (maybe none)."""
        tp = item.tp
        try:
            batch = decode_batch(item.raw, origin=item.origin)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the worker
            return [*self._flush(tp), Scored([item], None,
                                             [deadletter_record(item.origin, item.raw, exc,
                                                                self.topics)], item.origin)]
        out: list[Scored] = []
        group = self.pending.get(tp)
        if group and (self._mark(*group[0]) != self._mark(item, batch)
                      or self.events[tp] + len(batch) > self.merge_events):
            out = self._flush(tp)
        self.pending.setdefault(tp, []).append((item, batch))
        self.events[tp] = self.events.get(tp, 0) + len(batch)
        if self.events[tp] >= self.merge_events:
            out += self._flush(tp)
        return out

    def flush(self) -> list[Scored]:
        """Score every pending group (partitions in the order their groups began)."""
        return [done for tp in list(self.pending) for done in self._flush(tp)]

    def _flush(self, tp: Any) -> list[Scored]:
        group = self.pending.pop(tp, [])
        self.events.pop(tp, None)
        if len(group) > 1:
            first, last = group[0][0], group[-1][0]
            origin = f"{first.origin}..{last.origin.rpartition('@')[2]}"
            where = group[0][1].meta.get("producer_origin")
            try:
                merged = concat_batches([b for _, b in group],
                                        origin if where is None else f"{origin} ({where})")
                result = process_batch(merged, self.ctx, self.guard)
                records = result_records(result, origin, first.key or first.origin.encode(),
                                         self.topics)
                return [Scored([i for i, _ in group], result, records, origin)]
            except Exception as exc:  # noqa: BLE001 - scored one by one below
                log.info("%s: scoring %d messages together failed (%s: %s); scoring them "
                         "one by one", origin, len(group), type(exc).__name__,
                         str(exc)[:200])
        return [self._one(item, batch) for item, batch in group]

    def _one(self, item: Incoming, batch: EventBatch) -> Scored:
        try:
            result = process_batch(batch, self.ctx, self.guard)
            records = result_records(result, item.origin, item.key or item.origin.encode(),
                                     self.topics)
            return Scored([item], result, records, item.origin)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the worker
            return Scored([item], None, [deadletter_record(item.origin, item.raw, exc,
                                                           self.topics)], item.origin)


class InFlight:
    """Messages whose records are queued but not all confirmed, per partition in offset
    order; acks each message once its records and every earlier one's are confirmed
    (module docstring). ``send(topic, key, value)`` returns the producer's delivery future
    once the record is queued; ``ack(event)`` acks a message."""

    def __init__(self, send: Callable[[str, bytes, bytes], Awaitable[Any]],
                 ack: Callable[[Any], Awaitable[Any]], limit: int = 16) -> None:
        self.send, self.ack, self.limit = send, ack, limit
        self.queues: dict[Any, deque[list[Any]]] = {}  # tp -> [[event, confirmed], ...]
        self.count = 0
        self._room = asyncio.Event()
        self._room.set()
        self.resent = 0  #: records sent again after a failed delivery

    async def add(self, tp: Any, event: Any, records: list[tuple[str, bytes, bytes]]) -> None:
        """Queue ``records`` of ``event`` (in order) and track them; waits while ``limit``
        messages are in flight."""
        while self.count >= self.limit:
            self._room.clear()
            await self._room.wait()
        futs = [await self.send(t, k, v) for t, k, v in records]
        entry = [event, False]
        self.queues.setdefault(tp, deque()).append(entry)
        self.count += 1
        if not futs:
            entry[1] = True
            await self._release(tp)
            return
        asyncio.ensure_future(self._confirm(tp, entry, records, futs))

    async def _confirm(self, tp: Any, entry: list[Any], records: list[tuple[str, bytes, bytes]],
                       futs: list[Any]) -> None:
        delay = 0.5
        while True:
            outcome = await asyncio.gather(*futs, return_exceptions=True)
            failed = [(rec, exc) for rec, exc in zip(records, outcome)
                      if isinstance(exc, BaseException)]
            if not failed:
                break
            exc = failed[0][1]
            log.warning("%d of %d records of %s were not confirmed (%s: %s); sending them "
                        "again in %.1f s", len(failed), len(records), _origin(entry[0].message),
                        type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
            records = [rec for rec, _ in failed]
            self.resent += len(records)
            futs = [await self.send(t, k, v) for t, k, v in records]
        entry[1] = True
        await self._release(tp)

    async def _release(self, tp: Any) -> None:
        q = self.queues.get(tp)
        while q and q[0][1]:
            event = q.popleft()[0]
            self.count -= 1
            await self.ack(event)
        if q is not None and not q:
            del self.queues[tp]
        if self.count < self.limit:
            self._room.set()


def register_agents(
    app: Any, topics: Topics, ctx: PipelineContext, tables: bool = True,
    merge_events: int = 0
) -> dict[str, Any]:
    """Declare topics, tables and the ``score_events`` agent on ``app``; returns them by name.

    ``merge_events``: most events of consecutive messages scored together
    (``MessageMerger``); 0 scores each message on its own."""
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

    guard = ctx.storm_guard()  # one per worker: the count of its lumisections (None: off)

    def count(result: BatchResult) -> None:
        if lumi_events is None or lumi_alerts is None:  # both or neither
            return
        per_lumi: dict[str, int] = {}
        for a in result.alerts:
            k = f"{a.run}:{a.lumi}"
            per_lumi[k] = per_lumi.get(k, 0) + 1
        for st in result.storms:
            k = f"{st.run}:{st.lumi}"
            per_lumi[k] = per_lumi.get(k, 0) + st.listed
        for s in result.summaries.values():
            k = f"{s.run}:{s.lumi}"
            lumi_events[k] += s.n_events
            if k in per_lumi:
                lumi_alerts[k] += per_lumi[k]

    @app.agent(events, name="hotline.score_events", concurrency=1)
    async def score_events(stream: Any) -> Any:
        manual = stream.noack()
        send = app.producer.send

        async def send_record(topic: str, key: bytes, value: bytes) -> Any:
            # straight to the (aiokafka) producer: faust's per-record Topic.send bookkeeping
            # costs more than the send itself
            return await send(topic, key, value, None, None, None)

        inflight = InFlight(send_record, manual.ack, MAX_IN_FLIGHT)
        merger = MessageMerger(ctx, topics, guard, merge_events)
        # the stream's queue of fetched messages: a group is scored as soon as it is empty
        queue = getattr(getattr(manual, "channel", None), "queue", None)

        async def emit(done: Scored) -> None:
            for i, item in enumerate(done.items):  # in offset order; records on the first
                await inflight.add(item.tp, item.handle, done.records if i == 0 else [])
            result = done.result
            if result is None:
                return
            n = len(done.items)
            log.info("scored %d events from %s%s: %d alerts", result.n_events, done.origin,
                     f" ({n} messages)" if n > 1 else "",
                     len(result.alerts) + sum(st.listed for st in result.storms))
            count(result)

        async for event in manual.events():
            msg = event.message
            item = Incoming(event, msg.tp, event.value, _origin(msg),
                            msg.key if isinstance(msg.key, bytes) else None)
            for done in merger.add(item):
                await emit(done)
            if queue is None or queue.empty():
                for done in merger.flush():
                    await emit(done)

    return {"events": events, "alerts": alerts, "scores": scores, "deadletter": deadletter,
            "agent": score_events, "lumi_events": lumi_events, "lumi_alerts": lumi_alerts}
