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
    """Create the configured topics if missing (kafka-python admin); returns those created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    from hotline.errors import StreamError

    t = topics_for(cfg)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(cfg.broker),
                                 request_timeout_ms=int(timeout * 1000))
    except KafkaError as exc:
        raise StreamError(f"cannot reach Kafka broker {cfg.broker}: {exc}") from None
    try:
        existing = set(admin.list_topics())
        wanted = [n for n in t.all() if n not in existing]
        new = [NewTopic(n, num_partitions=t.partitions, replication_factor=1) for n in wanted]
        if new:
            try:
                admin.create_topics(new, timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                pass
        return wanted
    finally:
        admin.close()
