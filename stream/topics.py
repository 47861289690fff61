"""The Kafka topics of the distributed path, declared once from ``StreamConfig``.

| topic | key | value |
|---|---|---|
| ``hotline.events`` | run (decimal string) | one ``EventBatch`` as Arrow IPC (``stream.codecs``) |
| ``hotline.occupancy`` | run | one occupancy map per (run, lumisection) |
| ``hotline.scores`` | run | per-lumisection summaries (``LumiSummary`` JSON) |
| ``hotline.alerts`` | alert id | one ``AlertRecord`` JSON per alert (versioned schema) |
| ``hotline.deadletter`` | origin | anything not decodable or scorable, with the reason |

Keying events by run keeps every lumisection of a run in one partition, in order.
Everything that names a topic (producer, faust app, sink, docker-compose init,
tests) goes through :func:`topics_for`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotline.config import StreamConfig
from hotline.errors import ConfigError


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


def ensure_topics(cfg: StreamConfig, timeout: float = 30.0) -> list[str]:
    """Create the configured topics and the table changelogs if missing; returns those created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    from hotline.errors import StreamError

    t = topics_for(cfg)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(cfg.broker),
                                 request_timeout_ms=int(timeout * 1000),
                                 bootstrap_timeout_ms=int(timeout * 1000))
    except KafkaError as exc:
        raise StreamError(f"cannot reach Kafka broker {cfg.broker}: {exc}") from None
    try:
        existing = set(admin.list_topics())
        wanted = [n for n in t.all() if n not in existing]
        new = [NewTopic(n, num_partitions=t.partitions, replication_factor=1) for n in wanted]
        # faust would create the table changelogs itself, but a worker that starts while they
        # are being created can see them with 0 partitions and crash its agent in a loop
        logs = [n for n in changelog_topics(cfg) if n not in existing]
        new += [NewTopic(n, num_partitions=t.partitions, replication_factor=1,
                         topic_configs={"cleanup.policy": "compact"}) for n in logs]
        wanted += logs
        if new:
            try:
                admin.create_topics(new, timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                pass
        return wanted
    finally:
        admin.close()


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
