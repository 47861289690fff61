"""Faults on the distributed path: absent broker, SIGKILLed worker, scale-out, broker restart."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.broker.conftest import HOTLINE, wait_for
from tests.integration.broker.helpers import embedded_ids, event_batches, send, stored_ids
from tests.integration.broker.kafka_server import free_port
from tests.integration.broker.test_kafka_path import Sink


def assigned(log: str, topic: str) -> set[int]:
    """Partitions of ``topic`` in the latest faust assignment table of a worker log."""
    found = re.findall(rf"\|\s*{re.escape(topic)}\s*\|\s*\{{([^}}]*)\}}", log)
    if not found:
        return set()
    out: set[int] = set()
    for part in found[-1].split(","):
        a, _, b = part.strip().partition("-")
        if a:
            out.update(range(int(a), int(b or a) + 1))
    return out


def scored_partitions(log: str, topic: str) -> set[int]:
    return {int(p) for p in re.findall(rf"scored \d+ events from {re.escape(topic)}\[(\d+)\]", log)}


@pytest.mark.parametrize("command", ["worker", "sink", "replay"])
def test_broker_absent_at_start_is_a_clear_bounded_error(command, tmp_path, archive):
    url = f"kafka://127.0.0.1:{free_port()}"
    args = {"worker": ["worker", "--broker", url, "--connect-timeout", "3",
                       "--datadir", str(tmp_path / "d")],
            "sink": ["sink", "--broker", url, "--connect-timeout", "3",
                     "--store", f"sqlite:///{tmp_path / 'a.db'}"],
            "replay": ["replay", "7", "--archive", str(archive), "--to", url,
                       "--no-progress"]}[command]
    env = {"HOTLINE_STREAM_CONNECT_TIMEOUT": "3", "PATH": "/usr/bin:/bin"}
    t0 = time.monotonic()
    p = subprocess.run([HOTLINE, *args], capture_output=True, text=True, timeout=150, env=env)
    took = time.monotonic() - t0
    assert p.returncode == 2, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]
    assert "cannot" in last and "127.0.0.1" in last and "gave up after" in last, last
    assert "is the broker running?" in last
    assert "retrying in" in p.stderr  # it did back off and retry
    # bounded by the 3 s given, not the default 30 s (the wall time adds the start-up:
    # tens of seconds of imports on a loaded 2-core machine)
    assert "over 3 s" in last, last
    assert 2.5 < took < 90, took


@pytest.mark.broker
def test_sigkilled_worker_restarted_store_exact(stream_env, workers, tmp_path):
    _, cfg = stream_env
    batches = event_batches(12_000, per_batch=500)
    expected = embedded_ids(batches, tmp_path)
    sink = Sink(cfg, tmp_path / "sink.db")
    try:
        w1 = workers.start("w1")
        # feed while the worker runs, so the kill lands mid-stream
        feeder = threading.Thread(target=lambda: [send(cfg, [b]) or time.sleep(0.1)
                                                  for b in batches], daemon=True)
        feeder.start()
        wait_for(lambda: len(stored_ids(sink.store)) > len(expected) // 5, 60,
                 "the first alerts")
        workers.kill(w1)  # SIGKILL: no flush, no commit, no LeaveGroup
        n_at_kill = len(stored_ids(sink.store))
        assert n_at_kill < len(expected), "worker finished before it could be killed"
        workers.start("w2")
        feeder.join(60)
        wait_for(lambda: stored_ids(sink.store) == expected, 90,
                 "the restarted worker to complete the store")
        wait_for(lambda: sum(s.n_events for s in sink.store.summaries()) >= 12_000, 30,
                 "the summaries of all events")
        time.sleep(1.0)  # let late duplicates (if any) reach the store
        assert stored_ids(sink.store) == expected
        assert sink.store.count_alerts() == len(expected)
        assert "scored" in workers.log("w2")
        # summaries exact too: re-processed messages' partial summaries are counted once
        sums = sink.store.summaries()
        assert [s.n_events for s in sums] == [200] * 60  # 12,000 events, 200 per lumisection
        assert sum(sum(s.rule_counts.values()) for s in sums) == len(expected)
    finally:
        sink.close()
    rep = sink.report
    print(f"kill at {n_at_kill}/{len(expected)} alerts; the sink read {rep.alerts_seen} "
          f"alert records for {len(expected)} ids and {rep.summaries} partial summaries, "
          f"{rep.summaries - rep.summaries_new} of them seen before")


@pytest.mark.broker
def test_two_workers_share_four_partitions_total_exact(stream_env, workers, tmp_path):
    _, cfg = stream_env
    assert cfg.stream.partitions == 4
    runs = tuple(range(101, 109))
    batches = event_batches(1000, runs=runs, per_batch=500)
    expected = embedded_ids(batches, tmp_path)
    sink = Sink(cfg, tmp_path / "sink.db")
    try:
        workers.start("w1")
        workers.start("w2")
        topic = cfg.stream.events_topic

        def shared() -> bool:  # the latest assignments of both workers split the 4 partitions
            a1 = assigned(workers.log("w1"), topic)
            a2 = assigned(workers.log("w2"), topic)
            return bool(a1) and bool(a2) and a1 | a2 == {0, 1, 2, 3} and not a1 & a2

        wait_for(shared, 60, "both workers to share the partitions")
        send(cfg, batches)
        wait_for(lambda: stored_ids(sink.store) == expected, 90, "the alerts of both workers")
        assert sink.store.count_alerts() == len(expected)
        p1 = scored_partitions(workers.log("w1"), cfg.stream.events_topic)
        p2 = scored_partitions(workers.log("w2"), cfg.stream.events_topic)
        assert p1 and p2, (p1, p2)
        assert p1 | p2 == {0, 1, 2, 3}
        wait_for(lambda: sum(s.n_events for s in sink.store.summaries()) == 8000, 20,
                 "summaries of all 8000 events")
    finally:
        sink.close()


@pytest.mark.broker
def test_broker_restart_while_worker_runs(kafka_broker, stream_env, workers, tmp_path):
    _, cfg = stream_env
    batches = event_batches(4000, per_batch=500)
    expected = embedded_ids(batches, tmp_path)
    (tmp_path / "first").mkdir()
    first = embedded_ids(batches[:4], tmp_path / "first")
    sink = Sink(cfg, tmp_path / "sink.db")
    try:
        w = workers.start("w1")
        send(cfg, batches[:4])
        wait_for(lambda: stored_ids(sink.store) == first, 60, "alerts before the restart")
        kafka_broker.restart()
        send(cfg, batches[4:])
        wait_for(lambda: stored_ids(sink.store) == expected or w.poll() is not None
                 or sink.error is not None, 120, "alerts after the broker restart")
        assert w.poll() is None, workers.log("w1")[-3000:]
        assert sink.error is None, sink.error
        assert stored_ids(sink.store) == expected
    finally:
        sink.close()


def test_cli_parser_knows_worker_and_sink():
    p = subprocess.run([sys.executable, "-c", "from hotline.cli import main; main(['--help'])"],
                       capture_output=True, text=True, cwd=Path(__file__).parents[3])
    assert "worker" in p.stdout and "sink" in p.stdout
