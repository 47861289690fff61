"""Publish ``EventBatch`` streams to ``hotline.events`` with kafka-python.

One message = one batch of at most ``events_per_message`` events (Arrow IPC,
``stream.codecs``), cut and routed to a partition by ``stream.partitioning``
(``[stream] partition_by``: by default each lumisection on one partition, in order,
a run's lumisections spread over all partitions). Every send is confirmed by the
broker (``acks=all``, idempotent producer); ``publish`` returns a ``PublishReport``
with the delivered counts and the rate, and raises ``StreamError`` if any message
was not delivered.
Connecting to an absent broker is retried with exponential backoff for at most
``connect_timeout`` seconds, then fails with a clear message (never hangs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hotline.backoff import Backoff
from hotline.config import StreamConfig
from hotline.errors import StreamError
from hotline.stream.batch import EventBatch
from hotline.stream.codecs import encode_batch
from hotline.stream.partitioning import Router
from hotline.stream.topics import bootstrap_servers

log = logging.getLogger(__name__)

#: one connection attempt to an absent broker gives up after this long (then backoff, retry)
BOOTSTRAP_TIMEOUT_MS = 2000


def retry_with_backoff(
    what: str,
    attempt: Callable[[], Any],
    timeout: float,
    first_delay: float = 0.25,
    max_delay: float = 4.0,
) -> Any:
    """Call ``attempt`` until it succeeds, sleeping 0.25, 0.5, 1, ... s; stop after ``timeout``."""
    deadline = time.monotonic() + timeout
    backoff = Backoff(first_delay, max_delay)
    while True:
        try:
            return attempt()
        except (TypeError, ValueError):
            raise  # a programming / configuration error: retrying will not help
        except Exception as exc:  # noqa: BLE001 - kafka errors of many kinds
            if type(exc).__name__ == "KafkaConfigurationError":
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise StreamError(
                    f"{what}: gave up after {backoff.attempts + 1} attempts over {timeout:.0f} s "
                    f"({type(exc).__name__}: {exc}); is the broker running? "
                    "(set [stream] broker or HOTLINE_STREAM_BROKER)"
                ) from None
            delay = min(backoff.next_delay(), left)
            log.warning("%s failed (%s); retrying in %.2f s", what, exc, delay)
            time.sleep(delay)


def quiet_kafka_logs() -> None:
    """kafka-python logs every refused connection at ERROR, in a loop while the broker is
    down: its lines pass as one WARNING per backoff step (``stream.log_throttle``)."""
    from hotline.stream.log_throttle import install

    install()


def make_producer(cfg: StreamConfig, **overrides: Any) -> Any:
    """A confirmed-delivery kafka-python producer, retried with backoff if the broker is absent."""
    from kafka import KafkaProducer

    servers = bootstrap_servers(cfg.broker)
    opts: dict[str, Any] = dict(
        bootstrap_servers=servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        batch_size=1_048_576,
        max_request_size=cfg.max_message_bytes,
        request_timeout_ms=30_000,
        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        max_block_ms=int(cfg.connect_timeout * 1000),
    )
    opts.update(overrides)
    return retry_with_backoff(f"cannot connect to Kafka broker {servers}",
                              lambda: KafkaProducer(**opts), cfg.connect_timeout)


@dataclass
class PublishReport:
    """What ``publish`` delivered."""

    messages: int = 0
    events: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    partitions: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def split_messages(batch: EventBatch, events_per_message: int) -> Iterator[tuple[int, EventBatch]]:
    """(run, sub-batch) pieces of at most ``events_per_message`` events, one run each
    (``publish`` cuts and routes with ``stream.partitioning.Router`` instead)."""
    run = batch.run
    runs = np.unique(run)
    for r in runs:
        sub = batch if runs.size == 1 else batch.take(run == r)
        n = len(sub)
        for start in range(0, n, events_per_message):
            stop = min(n, start + events_per_message)
            piece = sub if (start == 0 and stop == n) else EventBatch(
                sub.arrays[start:stop], sub.source, sub.origin, dict(sub.meta))
            yield int(r), piece


def publish(
    batches: Iterable[EventBatch],
    cfg: StreamConfig,
    topic: str | None = None,
    producer: Any = None,
    on_message: Callable[[EventBatch], None] | None = None,
) -> PublishReport:
    """Send ``batches`` to the events topic; wait for every delivery; return the report."""
    topic = topic or cfg.events_topic
    own = producer is None
    producer = producer or make_producer(cfg)
    report = PublishReport()
    pending: list[tuple[Any, int, int]] = []
    t0 = time.perf_counter()

    def settle(block: bool) -> None:
        keep = []
        for fut, n, size in pending:
            if not block and not fut.is_done:
                keep.append((fut, n, size))
                continue
            try:
                md = fut.get(timeout=60)
            except Exception as exc:  # noqa: BLE001
                report.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            report.messages += 1
            report.events += n
            report.bytes += size
            report.partitions[md.partition] = report.partitions.get(md.partition, 0) + n
        pending[:] = keep

    try:
        router = Router(cfg.partition_by, len(producer.partitions_for(topic) or ()) or 1)
        for batch in batches:
            for msg in router.route(batch, cfg.events_per_message):
                data = encode_batch(msg.batch)
                fut = producer.send(topic, key=msg.key, value=data, partition=msg.partition)
                pending.append((fut, len(msg.batch), len(data)))
                if on_message is not None:
                    on_message(msg.batch)
            if len(pending) > 64:
                settle(block=False)
        producer.flush(timeout=120)
        settle(block=True)
    finally:
        report.seconds = time.perf_counter() - t0
        if own:
            producer.close(timeout=10)
    if report.failures:
        raise StreamError(
            f"{len(report.failures)} of {len(report.failures) + report.messages} messages to "
            f"{topic} were not delivered; first error: {report.failures[0]}"
        )
    return report
