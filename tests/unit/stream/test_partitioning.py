"""Cutting and routing ``hotline.events`` messages (``stream.partitioning``): lumisection
keys spread one run over every partition, and the summaries stay exact."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hotline.alerts.store import SQLiteAlertStore
from hotline.config import StreamConfig, load_config
from hotline.errors import ConfigError
from hotline.stream.batch import EventBatch
from hotline.stream.partitioning import Router
from hotline.stream.pipeline import BatchResult, PipelineContext, process_batch, run_embedded
from tests.conftest import make_events


def test_lumi_routing_cuts_at_lumisections_and_rotates_partitions():
    a = ak.concatenate([make_events(500, run=3, events_per_lumi=200),
                        make_events(100, run=4, events_per_lumi=200)])
    msgs = list(Router("lumi", 4).route(EventBatch(a), 150))
    assert [(m.key, len(m.batch), m.partition) for m in msgs] == [
        (b"3:1", 150, 0), (b"3:1", 50, 0), (b"3:2", 150, 1), (b"3:2", 50, 1),
        (b"3:3", 100, 2), (b"4:1", 100, 1)]
    for m in msgs:  # one (run, lumisection) per message, events in their order
        run, ls = (int(x) for x in m.key.split(b":"))
        assert set(m.batch.run) == {run} and set(m.batch.lumi) == {ls}
    assert np.array_equal(np.concatenate([m.batch.event for m in msgs]),
                          EventBatch(a).event)


def test_run_and_message_routing():
    a = make_events(700, run=5, events_per_lumi=200)
    by_run = list(Router("run", 4).route(EventBatch(a), 300))
    assert [(m.key, len(m.batch), m.partition) for m in by_run] == [
        (b"5", 300, None), (b"5", 300, None), (b"5", 100, None)]  # the key's hash decides
    rr = list(Router("message", 3).route(EventBatch(a), 300))
    assert [(m.key, m.partition) for m in rr] == [(b"5:1", 0), (b"5:2", 1), (b"5:4", 2)]


def test_a_lumisection_split_over_messages_and_workers_is_counted_exactly(tmp_path):
    """Messages of one lumisection scored apart (as two workers would) and their parts
    merged by the store equal one embedded replay of the run."""
    a = make_events(1000, seed=3, run=7, events_per_lumi=400)
    ctx = PipelineContext()
    with SQLiteAlertStore(tmp_path / "ref.db") as ref:
        run_embedded([EventBatch(a)], ctx, ref)
        expected = sorted((s.key, s.n_events, s.n_bad, s.rule_counts) for s in ref.summaries())
        expected_ids = {x.id for x in ref.alerts()}
    msgs = list(Router("message", 2).route(EventBatch(a), 130))  # cut mid-lumisection
    with SQLiteAlertStore(tmp_path / "parts.db") as store:
        for m in reversed(msgs):  # any order: the partitions are read independently
            res = process_batch(m.batch, ctx)
            store.add_alerts(res.alerts)
            store.add_summary_parts(BatchResult(summaries=res.summaries).summary_parts())
        got = sorted((s.key, s.n_events, s.n_bad, s.rule_counts) for s in store.summaries())
        assert got == expected
        assert {x.id for x in store.alerts()} == expected_ids


def test_partition_by_is_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"partition_by = 'lumisection'.*lumi, run, message"):
        Router("lumisection", 4)
    with pytest.raises(ConfigError, match="expected >= 1"):
        Router("lumi", 0)
    assert StreamConfig().partition_by == "lumi"
    cfg = load_config(None, environ={"HOTLINE_STREAM_PARTITION_BY": "run",
                                     "HOTLINE_STREAM_REPLICATION_FACTOR": "3"})
    assert (cfg.stream.partition_by, cfg.stream.replication_factor) == ("run", 3)
