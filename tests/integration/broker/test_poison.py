"""Poison on the distributed path (real broker): the worker and the sink go on, nothing is lost.

- 1,000 alternating good / poison event messages: the worker keeps running, every good
  batch is scored (alerts and summaries equal the embedded pipeline's), every poison
  message is a dead letter with its reason; then a store rebuilt from the topics from
  offset 0 (fresh sink group, fresh store), with poison in the alerts / scores /
  dead-letter topics too, equals the embedded replay (one test: the rebuild reuses the
  topics the first part filled, which keeps the suite fast).
- A broker outage of N seconds costs the worker and the sink a few log lines, not
  thousands, and scoring resumes when the broker is back.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from itertools import cycle

import pytest

from hotline.alerts.records import AlertRecord, LumiSummary
from hotline.alerts.store import SQLiteAlertStore
from hotline.stream.batch import EventBatch
from hotline.stream.codecs import encode_alert, encode_batch, encode_summary
from hotline.stream.kafka_producer import make_producer
from hotline.stream.pipeline import PipelineContext, run_embedded
from hotline.stream.sink import run_sink
from hotline.stream.topics import ensure_topics
from tests.conftest import make_events
from tests.integration.broker.conftest import HOTLINE, wait_for
from tests.integration.broker.helpers import stored_ids
from tests.integration.broker.test_kafka_path import Sink
from tests.support.poison import POISON_KINDS

pytestmark = pytest.mark.broker


def small_batches(n_batches: int, per_batch: int, runs: tuple[int, ...]) -> list[EventBatch]:
    out = []
    for k, run in enumerate(runs):
        n = n_batches // len(runs) * per_batch
        arrays = make_events(n, seed=40 + k, run=run, events_per_lumi=100)
        out += [EventBatch(arrays[i : i + per_batch], source="hotline", origin=f"run{run}")
                for i in range(0, n, per_batch)]
    return out


def produce(cfg, topic: str, messages: list[tuple[bytes, bytes]]) -> list[str]:
    """Send (key, value) pairs in order; returns each message's origin topic[partition]@offset."""
    prod = make_producer(cfg.stream, linger_ms=20)
    try:
        futs = [prod.send(topic, key=k, value=v) for k, v in messages]
        prod.flush(60)
        mds = [f.get(timeout=60) for f in futs]
    finally:
        prod.close(timeout=10)
    return [f"{topic}[{md.partition}]@{md.offset}" for md in mds]


def interleave(cfg, good: list[EventBatch]) -> dict[str, str]:
    """Good and poison messages alternating on the events topic; {poison origin: kind}."""
    ensure_topics(cfg.stream)
    kinds = cycle(sorted(POISON_KINDS))
    messages, poison_kinds = [], []
    for i, b in enumerate(good):
        messages.append((str(int(b.run[0])).encode(), encode_batch(b)))
        kind = next(kinds)
        poison_kinds.append((len(messages), kind))
        messages.append((f"p{i % 7}".encode(), POISON_KINDS[kind][0](b.arrays, i)))
    origins = produce(cfg, cfg.stream.events_topic, messages)
    return {origins[i]: kind for i, kind in poison_kinds}


def reference(good: list[EventBatch], tmp_path) -> SQLiteAlertStore:
    ref = SQLiteAlertStore(tmp_path / "reference.db")
    run_embedded(good, PipelineContext(), ref)
    return ref


def summary_view(store) -> dict:
    return {s.key: (s.n_events, s.n_bad, s.rule_counts, sorted(s.unavailable), s.score_hist)
            for s in store.summaries()}


def check_poison(store, poison: dict[str, str]) -> None:
    dead = {d.origin: d for d in store.deadletters(limit=100_000)}
    missing = sorted(set(poison) - set(dead))
    assert not missing, f"{len(missing)} poison messages without a dead letter, e.g. {missing[:3]}"
    for origin, kind in poison.items():
        assert re.search(POISON_KINDS[kind][1], dead[origin].reason), (kind, dead[origin].reason)


def poison_sink_topics(cfg) -> dict[str, str]:
    """Records on the alerts / scores / dead-letter topics that do not decode or that the
    store refuses; returns {origin: expected reason}."""
    a = AlertRecord.make(kind="classic", rule="r", source="hotline", run=31, lumi=1, event=1)
    wrong_type = json.loads(encode_alert(a)) | {"event": "one"}
    huge = json.loads(encode_summary(LumiSummary("hotline", 31, 1, n_events=3, part="x")))
    huge["summary"]["run"] = 2**70  # too large for the store's integer column: refused
    not_json = b"\xff not json"
    out = dict(zip(produce(cfg, cfg.stream.alerts_topic,
                           [(b"a", json.dumps(wrong_type).encode()), (b"b", not_json)]),
                   ("alert field 'event' must be an integer", "alert message is not JSON"),
                   strict=True))
    out.update(zip(produce(cfg, cfg.stream.scores_topic, [(b"31", json.dumps(huge).encode())]),
                   ("summary field 'run' must be an integer",), strict=True))
    out.update(zip(produce(cfg, cfg.stream.deadletter_topic, [(b"x", not_json)]),
                   ("malformed dead-letter message",), strict=True))
    return out


def test_1000_alternating_good_and_poison_batches_and_a_store_rebuilt_from_the_topics(
        stream_env, workers, tmp_path):
    """The worker keeps running and scores every good batch; every poison message is a dead
    letter with its reason; a fresh sink group rebuilding a fresh store from offset 0, with
    poison in the sink's topics too, gives the embedded replay's alerts and summaries."""
    _, cfg = stream_env
    good = small_batches(500, 4, runs=(31, 32))
    with reference(good, tmp_path) as ref:
        expected, ref_sums = stored_ids(ref), summary_view(ref)
    assert len(expected) > 100
    poison = interleave(cfg, good)
    assert len(poison) == 500 and set(poison.values()) == set(POISON_KINDS)
    sink_poison = poison_sink_topics(cfg)
    live = Sink(cfg, tmp_path / "live.db")  # the running system's sink
    try:
        t0 = time.monotonic()
        w = workers.start("w1")
        wait_for(lambda: (stored_ids(live.store) == expected
                          and len(live.store.deadletters(limit=100_000)) >= 504)
                 or w.poll() is not None, 120, "every good batch scored, every poison dead")
        assert w.poll() is None, workers.log("w1")[-3000:]
        wait_for(lambda: summary_view(live.store) == ref_sums, 20, "the good batches' summaries")
        print(f"1,000 messages scored or dead-lettered in {time.monotonic() - t0:.1f} s")
        check_poison(live.store, poison)
        assert live.error is None
        log = workers.log("w1")
        calls = re.findall(r"scored \d+ events from \S+(?: \((\d+) messages\))?:", log)
        assert sum(int(n or 1) for n in calls) == 500
        # every poison kind is refused by the validation with a named reason: the agent's
        # catch-all (which logs the first error of each type with its traceback) is not needed
        assert log.count("Traceback") == 0, log[-3000:]
    finally:
        live.close()
    # rebuild: a fresh sink group into a fresh store, from offset 0 of every topic
    with SQLiteAlertStore(tmp_path / "rebuilt.db") as rebuilt:
        report = run_sink(cfg.stream, rebuilt, idle_exit=3.0, group=f"rebuild-{time.time()}")
        assert stored_ids(rebuilt) == expected
        assert summary_view(rebuilt) == ref_sums
        check_poison(rebuilt, poison)
        dead = {d.origin: d.reason for d in rebuilt.deadletters(limit=100_000)}
        for origin, reason in sink_poison.items():
            assert reason in dead.get(origin, ""), (origin, dead.get(origin))
    assert report.alerts_new == len(expected)


def count_lines(text: str) -> int:
    return len([ln for ln in text.splitlines() if ln.strip()])


def test_broker_outage_logs_one_warning_per_backoff_step(kafka_broker, stream_env, workers,
                                                         tmp_path):
    config, cfg = stream_env
    good = small_batches(2, 200, runs=(51,))
    ensure_topics(cfg.stream)
    produce(cfg, cfg.stream.events_topic, [(b"51", encode_batch(good[0]))])
    w = workers.start("w1")
    sink_log = open(tmp_path / "sink.log", "wb")  # noqa: SIM115
    sink = subprocess.Popen([HOTLINE, "--config", str(config), "sink"], stdout=sink_log,
                            stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "scored 200 events" in workers.log("w1"), 60, "the first batch")
        wait_for(lambda: "writing" in (tmp_path / "sink.log").read_text(), 30, "the sink")
        time.sleep(3)
        before_w = count_lines(workers.log("w1"))
        before_s = count_lines((tmp_path / "sink.log").read_text())
        down = 8.0
        kafka_broker.stop()
        time.sleep(down)
        during_w = count_lines(workers.log("w1")) - before_w
        during_s = count_lines((tmp_path / "sink.log").read_text()) - before_s
        kafka_broker.start()
        produce(cfg, cfg.stream.events_topic, [(b"51", encode_batch(good[1]))])
        wait_for(lambda: workers.log("w1").count("scored 200 events") == 2, 60,
                 "scoring to resume after the outage")
        assert w.poll() is None and sink.poll() is None
        outage = workers.log("w1").splitlines()[before_w:before_w + during_w]
        print(f"{down:.0f} s outage: worker {during_w} lines, sink {during_s} lines")
        # before: ~80 ERROR lines per second from aiokafka alone
        assert during_w <= down + 4, "\n".join(outage)
        # the sink reports the outage (its kafka-python lines were silenced before), briefly
        sink_text = (tmp_path / "sink.log").read_text()
        assert 1 <= during_s <= down + 4, sink_text[-3000:]
        assert "WARNING kafka" in sink_text, sink_text[-3000:]
        assert any("suppressed" in ln and "WARNING" in ln for ln in outage), "\n".join(outage)
    finally:
        sink.terminate()
        sink.wait(20)
        sink_log.close()
