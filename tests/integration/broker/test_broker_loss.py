"""Losing a broker mid-replay: a real 3-node KRaft cluster on loopback (node ids 1-3, static
voter list, replication factor 3, ``min.insync.replicas`` 2, producers ``acks=all``).

One node is SIGKILLed while events are being published and scored; the rest of the replay
goes on through the two survivors, and the store ends up with exactly the alerts and
per-lumisection summaries of an embedded replay: none lost, none duplicated.
"""

from __future__ import annotations

import time
import uuid

import pytest

from hotline.config import load_config
from hotline.stream.topics import ensure_topics, topics_for
from tests.conftest import IN_CI
from tests.integration.broker.conftest import Workers, wait_for, write_config
from tests.integration.broker.helpers import event_batches, send
from tests.integration.broker.kafka_server import KafkaCluster
from tests.integration.broker.test_kafka_path import Sink

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """Three Kafka nodes for this module (their start dominates its time: shared here)."""
    try:
        from tests.support.fetch import kafka_jars

        c = KafkaCluster(kafka_jars(), tmp_path_factory.mktemp("kafka3"))
        c.start()
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"3-node Kafka cluster could not start in CI: {exc}")
        pytest.skip(f"no 3-node Kafka cluster ({exc}); needs Java 17 and the jars "
                    "('python -m tests.support.fetch')")
    yield c
    c.cleanup()


def content(summaries) -> list[tuple]:
    return sorted((s.key, s.n_events, s.n_bad, s.rule_counts) for s in summaries)


def leader_of(cfg, topic: str, partition: int = 0) -> int:
    from kafka import KafkaAdminClient

    from hotline.stream.topics import bootstrap_servers

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(cfg.stream.broker))
    try:
        (d,) = admin.describe_topics([topic])
    finally:
        admin.close()
    return next(p["leader_id"] for p in d["partitions"] if p["partition_index"] == partition)


def test_a_broker_lost_mid_replay_loses_and_duplicates_nothing(cluster, tmp_path):
    from hotline.alerts.store import SQLiteAlertStore
    from hotline.stream.pipeline import PipelineContext, run_embedded

    tag = f"loss-{uuid.uuid4().hex[:8]}"
    path = write_config(tmp_path / "hotline.toml", cluster.url, tag,
                        f"sqlite:///{tmp_path / 'alerts.db'}", partitions=2,
                        replication_factor=3)
    cfg = load_config(path, environ={})
    batches = event_batches(12_000, runs=(21,), per_batch=1000)  # 60 lumisections
    with SQLiteAlertStore(tmp_path / "reference.db") as ref:
        run_embedded(batches, PipelineContext(), ref)
        expected_ids = {a.id for a in ref.alerts()}
        expected = content(ref.summaries())
    assert len(expected_ids) > 200
    ensure_topics(cfg.stream)
    t = topics_for(cfg.stream)
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:  # every Hotline topic is replicated on all three nodes
        for d in admin.describe_topics(t.all()):
            assert all(len(p["replica_nodes"]) == 3 for p in d["partitions"]), d
    finally:
        admin.close()

    workers = Workers(path, tmp_path)
    sink = Sink(cfg, tmp_path / "sink.db")
    try:
        workers.start("w1")
        send(cfg, batches[:6], per_message=500)  # first half of the run
        wait_for(lambda: sink.store.count_alerts() > 0, 120, "the first alerts stored")
        victim = leader_of(cfg, t.alerts)  # the node leading the alerts' partition 0
        cluster.kill(victim - 1)
        time.sleep(0.5)
        rep = send(cfg, batches[6:], per_message=500)  # the rest, through two nodes
        assert rep.events == 6000 and not rep.failures
        wait_for(lambda: content(sink.store.summaries()) == expected
                 and {a.id for a in sink.store.alerts()} == expected_ids, 150,
                 "every alert and summary of the run in the store after the broker loss")
        assert sink.error is None
        assert sink.store.count_alerts() == len(expected_ids)  # nothing twice
        assert sum(s.n_events for s in sink.store.summaries()) == 12_000
    finally:
        workers.stop_all()
        sink.close()
