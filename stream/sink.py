"""The alert sink: ``hotline.alerts`` / ``hotline.scores`` / ``hotline.deadletter`` -> alert store.

An ``hotline.alerts`` record is an alert batch (its alerts and the storm guard's storm
records, ``stream.alert_batches``) or a single alert of an older worker: both are read, so
the sink can be upgraded before the workers. Storm records go to ``AlertStore.add_storms``
(each part once).

A kafka-python consumer (group ``[stream] sink_group``, auto-commit off) polls
records, decodes them (``stream.codecs``), writes them into the alert store
(SQLite or PostgreSQL) and only then commits the consumer offsets. A sink
killed between the store write and the commit re-reads those records on
restart: alerts are keyed by their stable id, so nothing is duplicated.
Summaries arrive as per-batch partial ``LumiSummary`` records, each with a part
id derived from the events it summarises (``stream.pipeline``); the sink hands
them to ``AlertStore.add_summary_parts``, which adds each part id once per
lumisection, in one transaction with the read of the stored row (under a row
lock on PostgreSQL). So summaries are exact too - across re-read records, batches
re-processed after a worker crash, and several sinks writing one store. (Only
records of older writers, without a part id, are added without that check.)
Records that cannot be decoded, or that the store refuses (a value that breaks
an INSERT, a wrong type: each kind of record is written as a group, and record
by record when the group is refused), become dead letters in the store, with
the reason, and the offsets move on; nothing is dropped silently and no record
can crash the sink in a loop. A store *outage* (lost connection, locked
database) is not the record's fault: it propagates and nothing is committed.
Summaries of a stream that emulates a firmware build carry its agreement; a lumisection
the stream has left is judged for the divergence alarm (``stream.l1_emulation.LumiJudge``).
Dead letters have no id: a re-read can store one twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hotline.alerts.records import AlertRecord, DeadLetter, LumiSummary
from hotline.alerts.store import AlertStore
from hotline.alerts.storms import StormRecord
from hotline.backoff import Backoff
from hotline.config import FirmwareConfig, StreamConfig
from hotline.errors import StreamError
from hotline.stream.alert_batches import decode_alert_record
from hotline.stream.codecs import decode_deadletter, decode_summary
from hotline.stream.kafka_producer import BOOTSTRAP_TIMEOUT_MS, retry_with_backoff
from hotline.stream.l1_emulation import LumiJudge
from hotline.stream.topics import bootstrap_servers, topics_for

log = logging.getLogger(__name__)


@dataclass
class SinkReport:
    """What the sink wrote."""

    alerts_seen: int = 0
    alerts_new: int = 0
    storms: int = 0  #: storm records read
    storms_new: int = 0  #: ... of which were new
    summaries: int = 0  #: partial summaries read
    summaries_new: int = 0  #: ... of which were new and added (the rest were seen before)
    deadletters: int = 0
    records: int = 0
    commits: int = 0
    commit_failures: int = 0
    started: float = field(default_factory=time.time)


def make_consumer(cfg: StreamConfig, group: str | None = None, **overrides: Any) -> Any:
    """The sink's kafka-python consumer, subscribed; retried with backoff if no broker."""
    from kafka import KafkaConsumer

    t = topics_for(cfg)
    opts: dict[str, Any] = dict(
        bootstrap_servers=bootstrap_servers(cfg.broker),
        group_id=group or cfg.sink_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5000,
        metadata_max_age_ms=5000,
        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        fetch_max_bytes=max(52_428_800, cfg.max_message_bytes),
        max_partition_fetch_bytes=cfg.max_message_bytes,
        session_timeout_ms=int(cfg.session_timeout * 1000),
        heartbeat_interval_ms=max(500, int(cfg.session_timeout * 100)),
        request_timeout_ms=max(30_500, int(cfg.session_timeout * 1000) + 5000),
    )
    opts.update(overrides)

    def connect() -> Any:
        c = KafkaConsumer(**opts)
        # join the group only once the topics' partitions are known, so the first
        # assignment already covers them (no wait for a metadata-triggered rebalance)
        missing = [n for n in (t.alerts, t.scores, t.deadletter) if not c.partitions_for_topic(n)]
        if missing:
            c.close()
            raise StreamError(f"topics not (yet) on the broker: {', '.join(missing)}")
        c.subscribe([t.alerts, t.scores, t.deadletter])
        return c

    return retry_with_backoff(f"cannot connect to Kafka broker {opts['bootstrap_servers']}",
                              connect, cfg.connect_timeout)


def store_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the store itself failed (connection lost, database locked, disk
    full), not that it refused the data: then nothing is dead-lettered and nothing committed."""
    seen: BaseException | None = exc
    for _ in range(8):  # the backends raise StoreError ``from None``: the cause is the context
        if seen is None:
            break
        names = {c.__name__ for c in type(seen).__mro__}
        if names & {"OperationalError", "InterfaceError", "OSError", "ConnectionError"}:
            return True
        if "closed" in str(seen).lower():  # sqlite3: "Cannot operate on a closed database"
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _write_group(
    write: Callable[[list[Any]], Any], items: list[tuple[Any, Any]], dead: list[DeadLetter],
    what: str,
) -> list[Any]:
    """``write`` the decoded records of ``items`` ((Kafka record, decoded), ...) in one call;
    if the store refuses the group, each record alone, and the ones it refuses become dead
    letters (appended to ``dead``) with the reason. Returns the results of the writes."""
    if not items:
        return []
    try:
        return [write([x for _, x in items])]
    except Exception as exc:  # noqa: BLE001 - any refusal; a store outage is re-raised
        if store_unavailable(exc):
            raise
        log.warning("sink: the store refused %d %s records together (%s: %s); writing them "
                    "one by one", len(items), what, type(exc).__name__, str(exc)[:200])
    out = []
    for r, x in items:
        try:
            out.append(write([x]))
        except Exception as exc:  # noqa: BLE001
            if store_unavailable(exc):
                raise
            origin = f"{r.topic}[{r.partition}]@{r.offset}"
            reason = (f"{origin}: the alert store refused this {what} record "
                      f"({type(exc).__name__}: {str(exc)[:300]})")
            log.warning("sink: %s", reason)
            dead.append(DeadLetter("kafka", origin, reason, payload=r.value))
    return out


def write_records(
    records: list[Any], store: AlertStore, t: Any, report: SinkReport,
    judge: LumiJudge | None = None,
) -> list[AlertRecord]:
    """Decode one poll's records and write them; returns the alerts that were new.

    A record that cannot be decoded, or that the store refuses (the group of its kind is
    then written record by record), is stored as a dead letter with the reason, so one
    bad record neither stops the sink nor holds back the offsets of the others. A store
    outage (``store_unavailable``) propagates: nothing is committed.
    """
    alerts: list[tuple[Any, list[AlertRecord]]] = []
    storms: list[tuple[Any, list[StormRecord]]] = []
    parts: list[tuple[Any, LumiSummary]] = []
    dead_in: list[tuple[Any, DeadLetter]] = []
    dead: list[DeadLetter] = []
    for r in records:
        origin = f"{r.topic}[{r.partition}]@{r.offset}"
        try:
            if r.topic == t.alerts:
                got, st = decode_alert_record(r.value, origin)
                alerts.append((r, got))
                if st:
                    storms.append((r, st))
            elif r.topic == t.scores:
                parts.append((r, decode_summary(r.value, origin)))
            elif r.topic == t.deadletter:
                dead_in.append((r, decode_deadletter(r.value, origin)))
        except StreamError as exc:
            log.warning("sink: %s", exc)
            dead.append(DeadLetter("kafka", origin, str(exc), payload=r.value))
    before = len(dead)
    new = [a for got in _write_group(lambda g: store.add_alerts([a for x in g for a in x]),
                                     alerts, dead, "alert") for a in got]
    refused = {d.origin for d in dead[before:]}
    n_alerts = sum(len(x) for r, x in alerts
                   if f"{r.topic}[{r.partition}]@{r.offset}" not in refused)
    before = len(dead)
    new_storms = [s for got in _write_group(lambda g: store.add_storms([s for x in g for s in x]),
                                            storms, dead, "storm") for s in got]
    before = len(dead)
    applied = sum(_write_group(store.add_summary_parts, parts, dead, "summary"))
    n_parts = len(parts) - (len(dead) - before)
    if judge is not None:  # firmware in the loop: lumisections the stream has left
        judge.seen(p for _, p in parts)
        new.extend(judge.judge(store))
    before = len(dead)
    _write_group(store.add_deadletters, dead_in, dead, "dead-letter")
    n_dead_in = len(dead_in) - (len(dead) - before)
    if dead:
        store.add_deadletters(dead)  # plain types only: a refusal here is a store failure
    report.records += len(records)
    report.alerts_seen += n_alerts
    report.alerts_new += len(new)
    report.storms += sum(len(x) for _, x in storms)
    report.storms_new += len(new_storms)
    report.summaries += n_parts
    report.summaries_new += applied
    report.deadletters += n_dead_in + len(dead)
    return new


def run_sink(
    cfg: StreamConfig,
    store: AlertStore,
    stop: Callable[[], bool] | None = None,
    idle_exit: float | None = None,
    on_stored: Callable[[list[Any], list[AlertRecord], float], None] | None = None,
    consumer: Any = None,
    group: str | None = None,
    on_poll: Callable[[SinkReport], None] | None = None,
    l1_min_agreement: float | None = None,
) -> SinkReport:
    """Consume until ``stop()`` is true (or ``idle_exit`` s without records); commit after writing.

    ``on_stored(records, new_alerts, t_stored)`` is called after each committed write
    (benchmarks and the dashboard hook in here); ``on_poll(report)`` once per loop turn
    (the heartbeat of ``stream.health``). ``l1_min_agreement`` is the divergence bound of
    firmware in the loop, ``[firmware] min_agreement`` of the caller's configuration (None:
    that setting's default).
    """
    t = topics_for(cfg)
    own = consumer is None
    consumer = consumer or make_consumer(cfg, group=group)
    report = SinkReport()
    judge = LumiJudge(FirmwareConfig().min_agreement if l1_min_agreement is None
                      else l1_min_agreement)
    last = time.monotonic()
    from kafka.errors import KafkaError

    backoff = Backoff(0.25, 5.0)
    try:
        while not (stop is not None and stop()):
            if on_poll is not None:
                on_poll(report)
            try:
                polled = consumer.poll(timeout_ms=200)
            except KafkaError as exc:  # broker restarting: back off, keep the position
                delay = backoff.next_delay()
                log.warning("sink: poll failed (%s); retrying in %.2f s", exc, delay)
                time.sleep(delay)
                continue
            records = [r for recs in polled.values() for r in recs]
            if not records:
                if idle_exit is not None and time.monotonic() - last > idle_exit:
                    break
                continue
            last = time.monotonic()
            new = write_records(records, store, t, report, judge)
            try:
                consumer.commit()  # only after the store transactions succeeded
                report.commits += 1
                backoff.reset()
            except KafkaError as exc:
                # not committed: these records may be read again (after a rebalance); the
                # store inserts each alert id and each summary part id once: harmless
                log.warning("sink: offset commit failed (%s); records may be re-read", exc)
                report.commit_failures += 1
            if on_stored is not None:
                on_stored(records, new, time.time())
        judge.judge(store, everything=True)  # the lumisections still open at the end
    finally:
        if own:
            consumer.close()
    return report
