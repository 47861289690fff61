"""Partition-count changes on a real broker: ``hotline topics`` / ``ensure_topics`` grow the
topics (and the worker tables' changelogs) and refuse fewer partitions in one line; the
publisher spreads one run's lumisections over the partitions."""

from __future__ import annotations

import pytest

from hotline.cli import main
from hotline.errors import StreamError
from hotline.stream.topics import changelog_topics, ensure_topics, topic_partitions, topics_for
from tests.integration.broker.helpers import event_batches, send

pytestmark = pytest.mark.broker


def counts(cfg) -> dict[str, int]:
    names = [*topics_for(cfg.stream).all(), *changelog_topics(cfg.stream)]
    return topic_partitions(cfg.stream, names)


def test_topics_grow_and_refuse_to_shrink(stream_env, capsys):
    path, cfg = stream_env
    two = cfg.with_overrides({"stream": {"partitions": 2}})
    assert len(ensure_topics(two.stream)) == 7  # 5 topics + 2 changelogs created
    assert set(counts(two).values()) == {2}
    # the operator raises the partition count: `hotline topics` grows every topic
    assert main(["--config", str(path), "topics", "--partitions", "5"]) == 0
    out = capsys.readouterr().out
    assert f"{cfg.stream.events_topic}: 5 partitions" in out
    assert set(counts(two).values()) == {5}
    # ... and lowers it: refused in one line naming the topic and the way out
    with pytest.raises(StreamError, match=r"has 5 partitions but \[stream\] partitions = 3: "
                                          r"Kafka cannot remove partitions"):
        ensure_topics(cfg.with_overrides({"stream": {"partitions": 3}}).stream)
    assert main(["--config", str(path), "topics", "--partitions", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "set [stream] partitions (HOTLINE_STREAM_PARTITIONS) to 5" in err[0]
    # a publisher spreads one run's lumisections over the grown topic
    five = cfg.with_overrides({"stream": {"partitions": 5}})
    rep = send(five, event_batches(2000, runs=(30,)), per_message=500)
    assert rep.messages == 10 and rep.partitions == {p: 400 for p in range(5)}
