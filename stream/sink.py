"""The alert sink: ``hotline.alerts`` / ``hotline.scores`` / ``hotline.deadletter`` -> alert store.

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
Records that cannot be decoded become dead letters in the store, with the
reason; nothing is dropped silently. Dead letters have no id: a re-read can
store one twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hotline.alerts.records import AlertRecord, DeadLetter, LumiSummary
from hotline.alerts.store import AlertStore
from hotline.config import StreamConfig
from hotline.errors import StreamError
from hotline.stream.codecs import decode_alert, decode_deadletter, decode_summary
from hotline.stream.kafka_producer import BOOTSTRAP_TIMEOUT_MS, fast_crc32c, retry_with_backoff
from hotline.stream.topics import bootstrap_servers, topics_for

log = logging.getLogger(__name__)


@dataclass
class SinkReport:
    """What the sink wrote."""

    alerts_seen: int = 0
    alerts_new: int = 0
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
    fast_crc32c()

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


def write_records(
    records: list[Any], store: AlertStore, t: Any, report: SinkReport
) -> list[AlertRecord]:
    """Decode one poll's records and write them; returns the alerts that were new."""
    alerts: list[AlertRecord] = []
    parts: list[LumiSummary] = []
    dead: list[DeadLetter] = []
    for r in records:
        origin = f"{r.topic}[{r.partition}]@{r.offset}"
        try:
            if r.topic == t.alerts:
                alerts.append(decode_alert(r.value, origin))
            elif r.topic == t.scores:
                parts.append(decode_summary(r.value, origin))
            elif r.topic == t.deadletter:
                dead.append(decode_deadletter(r.value, origin))
        except StreamError as exc:
            log.warning("sink: %s", exc)
            dead.append(DeadLetter("kafka", origin, str(exc), payload=r.value))
    new = store.add_alerts(alerts)
    if dead:
        store.add_deadletters(dead)
    applied = store.add_summary_parts(parts) if parts else 0
    report.records += len(records)
    report.alerts_seen += len(alerts)
    report.alerts_new += len(new)
    report.summaries += len(parts)
    report.summaries_new += applied
    report.deadletters += len(dead)
    return new


def run_sink(
    cfg: StreamConfig,
    store: AlertStore,
    stop: Callable[[], bool] | None = None,
    idle_exit: float | None = None,
    on_stored: Callable[[list[Any], list[AlertRecord], float], None] | None = None,
    consumer: Any = None,
    group: str | None = None,
) -> SinkReport:
    """Consume until ``stop()`` is true (or ``idle_exit`` s without records); commit after writing.

    ``on_stored(records, new_alerts, t_stored)`` is called after each committed write
    (benchmarks and the dashboard hook in here).
    """
    t = topics_for(cfg)
    own = consumer is None
    consumer = consumer or make_consumer(cfg, group=group)
    report = SinkReport()
    last = time.monotonic()
    from kafka.errors import KafkaError

    backoff = 0.25
    try:
        while not (stop is not None and stop()):
            try:
                polled = consumer.poll(timeout_ms=200)
            except KafkaError as exc:  # broker restarting: back off, keep the position
                log.warning("sink: poll failed (%s); retrying in %.2f s", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            records = [r for recs in polled.values() for r in recs]
            if not records:
                if idle_exit is not None and time.monotonic() - last > idle_exit:
                    break
                continue
            last = time.monotonic()
            new = write_records(records, store, t, report)
            try:
                consumer.commit()  # only after the store transactions succeeded
                report.commits += 1
                backoff = 0.25
            except KafkaError as exc:
                # not committed: these records may be read again (after a rebalance); the
                # store inserts each alert id and each summary part id once: harmless
                log.warning("sink: offset commit failed (%s); records may be re-read", exc)
                report.commit_failures += 1
            if on_stored is not None:
                on_stored(records, new, time.time())
    finally:
        if own:
            consumer.close()
    return report
