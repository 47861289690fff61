"""The Kafka topics of the distributed path, declared once from ``StreamConfig``.

| topic | key | value |
|---|---|---|
| ``hotline.events`` | "run:lumi" (or run) | one ``EventBatch`` as Arrow IPC (``stream.codecs``) |
| ``hotline.occupancy`` | run | one occupancy map per (run, lumisection) |
| ``hotline.scores`` | run | per-lumisection summaries (``LumiSummary`` JSON) |
| ``hotline.alerts`` | alert id | one ``AlertRecord`` JSON per alert (versioned schema) |
| ``hotline.deadletter`` | origin | anything not decodable or scorable, with the reason |

``stream.partitioning`` routes events: by default each lumisection on one partition, in
order, and a run's lumisections over all partitions (several workers score one run).
``ensure_topics`` creates the topics and grows them when ``[stream] partitions`` grows;
fewer partitions than a topic has is refused in one line (Kafka cannot shrink a topic).
Everything that names a topic (producer, faust app, sink, docker-compose init,
tests) goes through :func:`topics_for`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from hotline.config import StreamConfig
from hotline.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topics:
    """Topic names plus the partition count used when creating them."""

    events: str
    occupancy: str
    scores: str
    alerts: str
    deadletter: str
    partitions: int

    def all(self) -> list[str]:
        return [self.events, self.occupancy, self.scores, self.alerts, self.deadletter]


def topics_for(cfg: StreamConfig) -> Topics:
    """The topic names configured in ``[stream]``."""
    if cfg.partitions < 1:
        raise ConfigError(f"[stream] partitions must be >= 1, got {cfg.partitions}")
    return Topics(cfg.events_topic, cfg.occupancy_topic, cfg.scores_topic, cfg.alerts_topic,
                  cfg.deadletter_topic, cfg.partitions)


#: faust tables of the worker (``stream.agents``); changelog topic = "<app_id>-<table>-changelog"
TABLES = ("lumi-events", "lumi-alerts")


def changelog_topics(cfg: StreamConfig) -> list[str]:
    """The faust table changelog topics of the app ``cfg.app_id`` (compacted, ``partitions``)."""
    return [f"{cfg.app_id}-{t}-changelog" for t in TABLES]


def bootstrap_servers(broker: str) -> str:
    """``kafka://h1:9092;h2:9092`` (faust style) -> ``h1:9092,h2:9092`` (kafka-python style)."""
    hosts = []
    for part in broker.replace(";", ",").split(","):
        part = part.strip()
        if "://" in part:
            scheme, _, part = part.partition("://")
            if scheme not in ("kafka", "aiokafka"):
                raise ConfigError(f"broker URL {broker!r}: scheme must be kafka://, got {scheme}://")
        if part:
            hosts.append(part if ":" in part else f"{part}:9092")
    if not hosts:
        raise ConfigError(f"broker URL {broker!r} names no host")
    return ",".join(hosts)


def _partition_counts(admin: Any, names: list[str]) -> dict[str, int]:
    """{topic: partitions} of the existing topics among ``names``."""
    out: dict[str, int] = {}
    if not names:  # an empty list would describe every topic
        return out
    for d in admin.describe_topics(names):
        if not d.get("error_code") and d.get("partitions"):
            out[d["name"]] = len(d["partitions"])
    return out


def topic_partitions(cfg: StreamConfig, names: list[str], timeout: float = 30.0
                     ) -> dict[str, int]:
    """{topic: partitions} of the existing topics among ``names`` (the others are left out)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(cfg.broker),
                             request_timeout_ms=int(timeout * 1000))
    try:
        return _partition_counts(admin, [n for n in names if n in set(admin.list_topics())])
    finally:
        admin.close()


def ensure_topics(cfg: StreamConfig, timeout: float = 30.0) -> list[str]:
    """Create the configured topics and the table changelogs if missing, and grow those that
    have fewer partitions than ``[stream] partitions``; returns the topics created or grown.

    Kafka cannot remove partitions: a topic with *more* partitions than configured is
    refused (``StreamError`` naming the topic, both counts and the way out), so a lowered
    ``HOTLINE_STREAM_PARTITIONS`` never silently leaves workers on the wrong layout.
    Topics are created with ``[stream] replication_factor`` replicas. A connection lost to
    one broker of a cluster (it went down after the metadata named it) is retried with a
    fresh client, with backoff, for up to ``timeout`` seconds.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

    from hotline.backoff import Backoff
    from hotline.errors import StreamError

    topics_for(cfg)
    if cfg.replication_factor < 1:
        raise ConfigError(f"[stream] replication_factor must be >= 1, got "
                          f"{cfg.replication_factor}")
    deadline = time.monotonic() + timeout
    backoff = Backoff(0.25, 2.0)
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(cfg.broker),
                                     request_timeout_ms=int(timeout * 1000),
                                     bootstrap_timeout_ms=int(timeout * 1000))
        except KafkaError as exc:
            raise StreamError(f"cannot reach Kafka broker {cfg.broker}: {exc}") from None
        try:
            return _ensure(admin, cfg, timeout)
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            if time.monotonic() + backoff.delay(backoff.attempts + 1) > deadline:
                raise StreamError(f"cannot set up the topics on {cfg.broker}: {exc}") from None
            log.warning("setting up the topics: %s; retrying", exc)
            time.sleep(backoff.next_delay())
        finally:
            admin.close()


def _ensure(admin: Any, cfg: StreamConfig, timeout: float) -> list[str]:
    from kafka.admin import NewPartitions, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from hotline.errors import StreamError

    t = topics_for(cfg)
    existing = set(admin.list_topics())
    rf = cfg.replication_factor
    # faust would create the table changelogs itself, but a worker that starts while they
    # are being created can see them with 0 partitions and crash its agent in a loop
    logs = changelog_topics(cfg)
    counts = _partition_counts(admin, [n for n in [*t.all(), *logs] if n in existing])
    too_many = {n: c for n, c in counts.items() if c > t.partitions}
    if too_many:
        n, c = next(iter(too_many.items()))
        raise StreamError(
            f"topic {n} has {c} partitions but [stream] partitions = {t.partitions}: Kafka "
            f"cannot remove partitions; set [stream] partitions (HOTLINE_STREAM_PARTITIONS) "
            f"to {max(too_many.values())}, or delete the Hotline topics to start afresh")
    wanted = [n for n in t.all() if n not in existing]
    new = [NewTopic(n, num_partitions=t.partitions, replication_factor=rf) for n in wanted]
    new_logs = [n for n in logs if n not in existing]
    new += [NewTopic(n, num_partitions=t.partitions, replication_factor=rf,
                     topic_configs={"cleanup.policy": "compact"}) for n in new_logs]
    wanted += new_logs
    if new:
        try:
            admin.create_topics(new, timeout_ms=int(timeout * 1000))
        except TopicAlreadyExistsError:
            pass
    grow = {n: c for n, c in counts.items() if c < t.partitions}
    if grow:
        log.warning("growing %s from %s to %d partitions", ", ".join(grow),
                    "/".join(str(c) for c in grow.values()), t.partitions)
        admin.create_partitions({n: NewPartitions(t.partitions) for n in grow},
                                timeout_ms=int(timeout * 1000))
        wanted += list(grow)
    return wanted


def initialise_group_offsets(cfg: StreamConfig, group: str | None = None,
                             timeout: float = 30.0) -> dict[int, int]:
    """Commit the earliest offset of every ``hotline.events`` partition the group never committed.

    Why: faust drops records fetched while a partition is being recovered after a
    rebalance and then seeks back to the *committed* offset; a partition that has
    no committed offset yet is not rewound, so records arriving while the first
    workers join could be skipped. With a committed start offset per partition
    the rewind always happens (at-least-once holds from the first record).
    Returns {partition: offset} committed now (empty when all had one).
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(cfg.broker),
                             group_id=group or cfg.app_id, enable_auto_commit=False,
                             request_timeout_ms=int(max(timeout, 31) * 1000))
    try:
        parts = consumer.partitions_for_topic(cfg.events_topic) or set()
        tps = [TopicPartition(cfg.events_topic, p) for p in sorted(parts)]
        if not tps:
            return {}
        missing = [tp for tp in tps if consumer.committed(tp) is None]
        if not missing:
            return {}
        start = consumer.beginning_offsets(missing)
        offsets = {tp: OffsetAndMetadata(start[tp], "", -1) for tp in missing}
        try:
            consumer.commit(offsets)
        except Exception:  # noqa: BLE001 - the group is already active: it has committed itself
            return {}
        return {tp.partition: start[tp] for tp in missing}
    finally:
        consumer.close()
