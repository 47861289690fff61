"""Concurrent sinks on one PostgreSQL store: every partial summary is added exactly once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hotline.alerts.backends import open_store
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch
from tests.conftest import make_events


@pytest.mark.postgres
def test_concurrent_sinks_add_each_part_once(pg_url):
    arrays = make_events(4000, seed=9, events_per_lumi=200)
    ctx = PipelineContext()
    parts = [s for i in range(0, 4000, 50)  # 4 parts per lumisection
             for s in process_batch(EventBatch(arrays[i : i + 50], source="s"), ctx)
             .summaries.values()]
    whole = process_batch(EventBatch(arrays, source="s"), ctx).summaries
    n = 4
    stores = [open_store(pg_url) for _ in range(n)]
    applied = [0] * n
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def sink(k: int) -> None:
        # every sink writes every part. First one part per transaction, sink k taking parts
        # k, k+4, ...: at the same moment the sinks add *different* parts of one lumisection
        # (a lost update shows here without the row lock); then polls of 6 parts over
        # several lumisections in reverse order (lock order: no deadlock)
        try:
            mine = list(range(k, len(parts), n))
            start.wait()
            for j in mine:
                applied[k] += stores[k].add_summary_parts([parts[j]])
            rest = [j for j in range(len(parts)) if j % n != k][::-1]
            for i in range(0, len(rest), 6):
                applied[k] += stores[k].add_summary_parts([parts[j] for j in rest[i : i + 6]])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sink, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        assert sum(applied) == len(parts)  # each part claimed by exactly one sink
        got = {s.key: s for s in stores[0].summaries()}
        assert got.keys() == whole.keys()
        for k, s in whole.items():
            assert (got[k].n_events, got[k].n_bad, got[k].rule_counts, got[k].score_hist) == \
                (s.n_events, s.n_bad, s.rule_counts, s.score_hist)
    finally:
        for st in stores:
            st.close()


@pytest.mark.postgres
def test_overlapping_parts_from_concurrent_sinks_count_each_event_once(pg_url):
    """Parts that share some events (files given twice, overlapping replays), written by
    four sinks at once: each (source, run, lumisection, event) is counted once."""
    arrays = make_events(2000, seed=12, events_per_lumi=250)
    ctx = PipelineContext()
    whole = process_batch(EventBatch(arrays, source="s"), ctx).summaries
    rng = np.random.default_rng(3)
    parts = []
    for _ in range(40):
        lo, hi = sorted(rng.integers(0, 2000, 2))
        parts += process_batch(EventBatch(arrays[lo : hi + 1], source="s"), ctx).summaries.values()
    parts += process_batch(EventBatch(arrays[::-1], source="s"), ctx).summaries.values()
    n = 4
    stores = [open_store(pg_url) for _ in range(n)]
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def sink(k: int) -> None:
        try:
            order = np.random.default_rng(k).permutation(len(parts))
            start.wait()
            for i in range(0, len(order), 3):
                stores[k].add_summary_parts([parts[j] for j in order[i : i + 3]])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sink, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors, errors
        got = {s.key: s for s in stores[0].summaries(source="s")}
        assert got.keys() == whole.keys()
        for k, s in whole.items():
            assert (got[k].n_events, got[k].n_bad, got[k].rule_counts, got[k].score_hist) == \
                (s.n_events, s.n_bad, s.rule_counts, s.score_hist)
    finally:
        for st in stores:
            st.close()
