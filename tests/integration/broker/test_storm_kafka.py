"""Batched alert records, messages in flight and the storm guard through a real broker.

The worker scores with a storm guard (10 alerts in full per rule per lumisection, then 1
in 5); the store must hold exactly what an embedded replay with the same guard stores
(alerts, storm counts, summaries), and after a SIGKILLed worker is restarted mid-run: no
alert lost (kept in full or listed in a storm record), none stored twice, summaries exact.
"""

from __future__ import annotations

import threading
import time

import pytest

from hotline.alerts.store import SQLiteAlertStore
from hotline.config import load_config
from hotline.stream.pipeline import PipelineContext, process_batch, run_embedded
from tests.integration.broker.conftest import Workers, wait_for
from tests.integration.broker.helpers import event_batches, send, stored_ids
from tests.integration.broker.test_kafka_path import Sink

pytestmark = pytest.mark.broker

GUARD = {"max_alerts_per_lumi": 10, "storm_sample": 5}


def guarded(stream_env, tmp_path):
    """(Config, Workers) whose workers run the storm guard."""
    path, _ = stream_env
    path.write_text(path.read_text() + "\n[alerts]\n" + "".join(
        f"{k} = {v}\n" for k, v in GUARD.items()))
    return load_config(path, environ={}), Workers(path, tmp_path)


def reference(batches, tmp_path):
    """What an embedded replay with the same guard stores, and every alert without it."""
    ctx = PipelineContext(**GUARD)
    with SQLiteAlertStore(tmp_path / "reference.db") as ref:
        run_embedded(batches, ctx, ref)
        ids = stored_ids(ref)
        storms = [(s.run, s.lumi, s.rule, s.n_alerts, s.n_kept, s.n_listed) for s in ref.storms()]
        sums = sorted((s.key, s.n_events, s.rule_counts) for s in ref.summaries())
    every = {a.id for b in batches for a in process_batch(b, PipelineContext()).alerts}
    return ids, storms, sums, every


def content(store):
    return sorted((s.key, s.n_events, s.rule_counts) for s in store.summaries())


def listed_ids(store) -> set[str]:
    return {a.id for st in store.storm_records() for a in st.listed_alerts()}


def test_guarded_worker_stores_what_the_embedded_replay_stores(stream_env, tmp_path):
    cfg, workers = guarded(stream_env, tmp_path)
    batches = event_batches(3000, per_batch=1000)  # 15 lumisections of 200 events
    ids, storms, sums, every = reference(batches, tmp_path)
    assert storms and len(ids) < len(every)  # the guard is at work
    sink = Sink(cfg, tmp_path / "sink.db")
    try:
        send(cfg, batches, per_message=100)  # 2 messages per lumisection, several in flight
        w = workers.start("w1")
        wait_for(lambda: content(sink.store) == sums and stored_ids(sink.store) == ids
                 and len(sink.store.storms()) == len(storms) or w.poll() is not None, 90,
                 "the guarded worker's alerts, storms and summaries in the store")
        assert w.poll() is None, workers.log("w1")[-3000:]
        assert stored_ids(sink.store) == ids
        assert [(s.run, s.lumi, s.rule, s.n_alerts, s.n_kept, s.n_listed)
                for s in sink.store.storms()] == storms
        assert stored_ids(sink.store) | listed_ids(sink.store) == every  # nothing lost
        assert sink.error is None and sink.report is None  # still running
    finally:
        workers.stop_all()
        sink.close()
    # one alert-batch record per message with alerts, not one record per alert
    assert sink.report.records < 3 * 30 + 10
    assert sink.report.alerts_seen == len(ids) and sink.report.storms_new > 0


def test_worker_killed_mid_storm_loses_and_duplicates_nothing(stream_env, tmp_path):
    cfg, workers = guarded(stream_env, tmp_path)
    batches = event_batches(8000, per_batch=400)  # 40 lumisections
    ids, storms, sums, every = reference(batches, tmp_path)
    sink = Sink(cfg, tmp_path / "sink.db")
    try:
        w1 = workers.start("w1")
        feeder = threading.Thread(target=lambda: [send(cfg, [b], per_message=100)
                                                  or time.sleep(0.15) for b in batches],
                                  daemon=True)
        feeder.start()
        wait_for(lambda: len(stored_ids(sink.store)) > len(ids) // 5, 60, "the first alerts")
        workers.kill(w1)  # SIGKILL: no flush, no commit
        assert len(stored_ids(sink.store)) < len(ids), "the worker finished before the kill"
        workers.start("w2")
        feeder.join(60)
        wait_for(lambda: content(sink.store) == sums
                 and stored_ids(sink.store) | listed_ids(sink.store) == every, 90,
                 "every alert kept or listed, and the summaries, after the restart")
        time.sleep(1.0)  # late duplicates, if any, reach the store
        kept = stored_ids(sink.store)
        assert kept >= ids  # a restart may keep more in full, never less
        assert sink.store.count_alerts() == len(kept)  # nothing stored twice
        assert content(sink.store) == sums
        got = {(s.run, s.lumi, s.rule): (s.n_alerts, s.n_kept) for s in sink.store.storms()}
        for run, lumi, rule, n, _, _ in storms:  # exact counts whatever was re-processed
            assert got[(run, lumi, rule)][0] == n
            assert got[(run, lumi, rule)][1] == sink.store.count_alerts(run=run, lumi=lumi,
                                                                        rule=rule)
        assert sink.error is None
    finally:
        workers.stop_all()
        sink.close()
