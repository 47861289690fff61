"""Concurrent sinks on one PostgreSQL store: every partial summary is added exactly once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from hotline.alerts.backends import open_store
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch
from tests.conftest import make_events


def run_sinks(pg_url: str, n: int, sink) -> list:
    """``sink(k, store)`` in ``n`` threads at once, each with its own store connection;
    returns the stores (the caller closes them) after re-raising any thread's error."""
    stores = [open_store(pg_url) for _ in range(n)]
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def body(k: int) -> None:
        try:
            start.wait()
            sink(k, stores[k])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        for st in stores:
            st.close()
        raise AssertionError(errors)
    return stores


def assert_summaries(store, whole: dict) -> None:
    got = {s.key: s for s in store.summaries(source="s", hists=True)}
    assert got.keys() == whole.keys()
    for k, s in whole.items():
        assert s.hists is not None
        assert (got[k].n_events, got[k].n_bad, got[k].rule_counts, got[k].score_hist,
                got[k].hists) == (s.n_events, s.n_bad, s.rule_counts, s.score_hist, s.hists)


@pytest.mark.postgres
def test_concurrent_sinks_add_each_part_once(pg_url):
    arrays = make_events(4000, seed=9, events_per_lumi=200)
    ctx = PipelineContext()
    parts = [s for i in range(0, 4000, 50)  # 4 parts per lumisection
             for s in process_batch(EventBatch(arrays[i : i + 50], source="s"), ctx)
             .summaries.values()]
    whole = process_batch(EventBatch(arrays, source="s"), ctx).summaries
    n = 4
    applied = [0] * n

    def sink(k: int, store) -> None:
        # every sink writes every part. First one part per transaction, sink k taking parts
        # k, k+4, ...: at the same moment the sinks add *different* parts of one lumisection
        # (a lost update shows here without the row lock); then polls of 6 parts over
        # several lumisections in reverse order (lock order: no deadlock)
        for j in range(k, len(parts), n):
            applied[k] += store.add_summary_parts([parts[j]])
        rest = [j for j in range(len(parts)) if j % n != k][::-1]
        for i in range(0, len(rest), 6):
            applied[k] += store.add_summary_parts([parts[j] for j in rest[i : i + 6]])

    stores = run_sinks(pg_url, n, sink)
    try:
        assert sum(applied) == len(parts)  # each part claimed by exactly one sink
        assert_summaries(stores[0], whole)
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

    def sink(k: int, store) -> None:
        order = np.random.default_rng(k).permutation(len(parts))
        for i in range(0, len(order), 3):
            store.add_summary_parts([parts[j] for j in order[i : i + 3]])

    stores = run_sinks(pg_url, 4, sink)
    try:
        assert_summaries(stores[0], whole)
    finally:
        for st in stores:
            st.close()
