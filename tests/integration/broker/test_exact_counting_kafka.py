"""Exact counting on the Kafka path: the same events sent twice and overlapping batches give
the summaries of one embedded replay of the distinct events (real broker, worker, sink)."""

from __future__ import annotations

import pytest

from hotline.alerts.store import SQLiteAlertStore
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, run_embedded
from hotline.stream.topics import bootstrap_servers, topics_for
from tests.conftest import make_events
from tests.integration.broker.conftest import wait_for
from tests.integration.broker.helpers import send
from tests.integration.broker.test_kafka_path import Sink

pytestmark = pytest.mark.broker


def content(summaries) -> list[tuple]:
    return sorted((s.key, s.n_events, s.n_bad, s.rule_counts, s.score_hist, s.hists)
                  for s in summaries)


def caught_up(cfg, group: str, topic: str) -> bool:
    """Every partition of ``topic`` committed by ``group`` up to its end."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(cfg.stream.broker),
                             group_id=group, enable_auto_commit=False)
    try:  # (not subscribed: reads the group's committed offsets without joining it)
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        return bool(parts) and all((consumer.committed(tp) or 0) >= ends[tp] for tp in parts)
    finally:
        consumer.close()


def test_duplicate_and_overlapping_batches_are_counted_once(stream_env, workers, tmp_path):
    _, cfg = stream_env
    arrays = make_events(1200, seed=8, run=12, events_per_lumi=200)
    batches = [EventBatch(arrays[i : i + 300], source="hotline") for i in range(0, 1200, 300)]
    with SQLiteAlertStore(tmp_path / "reference.db") as ref:
        run_embedded(batches, PipelineContext(), ref)
        expected = content(ref.summaries(hists=True))
    # everything, then everything again (re-sent), then batches overlapping the first ones
    dup = batches + batches + [EventBatch(arrays[150:750], source="hotline"),
                               EventBatch(arrays[::-1][:500], source="hotline")]
    rep = send(cfg, dup, per_message=300)
    assert rep.events == 1200 * 2 + 600 + 500
    sink = Sink(cfg, tmp_path / "sink.db")
    try:
        workers.start("w1")
        t = topics_for(cfg.stream)
        # the worker has committed every event message (after its records were confirmed),
        # then the sink every summary record: only then is the store's content final
        wait_for(lambda: caught_up(cfg, cfg.stream.app_id, t.events)
                 and caught_up(cfg, cfg.stream.sink_group, t.scores)
                 and content(sink.store.summaries(hists=True)) == expected, 90,
                 "every summary record written, counting each event once")
        assert sink.error is None
        assert sum(s.n_events for s in sink.store.summaries()) == 1200
    finally:
        sink.close()
