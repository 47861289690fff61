"""End-to-end through a real Kafka broker: events topic -> faust worker -> sink -> store."""

from __future__ import annotations

import threading

import pytest

from hotline.alerts.store import SQLiteAlertStore
from hotline.stream.codecs import decode_batch
from hotline.stream.sink import run_sink
from hotline.stream.topics import ensure_topics
from tests.integration.broker.conftest import wait_for
from tests.integration.broker.helpers import embedded_ids, event_batches, send, stored_ids

pytestmark = pytest.mark.broker


class Sink:
    """The alert sink in a thread of the test process, writing into ``db``."""

    def __init__(self, cfg, db) -> None:
        ensure_topics(cfg.stream)
        self.store = SQLiteAlertStore(db)
        self.stop = threading.Event()
        self.report = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.cfg = cfg
        self.thread.start()

    def _run(self) -> None:
        try:
            self.report = run_sink(self.cfg.stream, self.store, stop=self.stop.is_set)
        except BaseException as exc:  # noqa: BLE001 - reported by the test through .error
            self.error = exc
            raise

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.store.close()


@pytest.fixture
def sink(stream_env, tmp_path):
    s = Sink(stream_env[1], tmp_path / "sink.db")
    yield s
    s.close()


def test_worker_matches_embedded_pipeline(stream_env, workers, sink, tmp_path):
    _, cfg = stream_env
    batches = event_batches(3000)
    expected = embedded_ids(batches, tmp_path)
    assert len(expected) > 100
    rep = send(cfg, batches, per_message=500)
    # one message per lumisection (200 events each, at most 500), spread over the partitions
    assert rep.events == 3000 and rep.messages == 15
    assert rep.partitions == {p: 800 if p in ((11 + 1) % 4, (11 + 2) % 4, (11 + 3) % 4)
                              else 600 for p in range(4)}
    w = workers.start("w1")
    wait_for(lambda: stored_ids(sink.store) == expected or w.poll() is not None, 60,
             "the worker's alerts in the store")
    assert w.poll() is None, workers.log("w1")
    assert stored_ids(sink.store) == expected
    sums = sink.store.summaries()
    wait_for(lambda: sum(s.n_events for s in sink.store.summaries()) == 3000, 20, "summaries")
    sums = sink.store.summaries()
    assert {(s.run, s.lumi) for s in sums} == {(11, ls) for ls in range(1, 16)}


def test_malformed_and_wrong_version_go_to_deadletter(stream_env, workers, sink, tmp_path):
    from hotline.stream.codecs import encode_batch
    from hotline.stream.kafka_producer import make_producer

    _, cfg = stream_env
    good = event_batches(1000, per_batch=500)
    expected = embedded_ids(good, tmp_path)
    send(cfg, good[:1])
    prod = make_producer(cfg.stream)
    prod.send(cfg.stream.events_topic, key=b"11", value=b"this is not arrow")
    wrong = bytearray(encode_batch(good[1]))
    wrong[4:6] = (7).to_bytes(2, "big")  # schema version 7
    prod.send(cfg.stream.events_topic, key=b"11", value=bytes(wrong))
    prod.flush()
    prod.close()
    send(cfg, good[1:])  # processing must go on after the bad messages
    workers.start("w1")
    wait_for(lambda: stored_ids(sink.store) == expected, 60, "alerts of the good messages")
    wait_for(lambda: len(sink.store.deadletters()) >= 2, 20, "two dead letters")
    reasons = [d.reason for d in sink.store.deadletters()]
    assert any("not a Hotline event batch" in r for r in reasons), reasons
    assert any("schema version 7 is not supported" in r for r in reasons), reasons
    assert all(d.payload for d in sink.store.deadletters())
    with pytest.raises(Exception, match="schema version 7"):
        decode_batch(bytes(wrong))


def test_cli_replay_to_kafka_parity_with_embedded_replay(stream_env, workers, sink, archive,
                                                         tmp_path):
    """The same archived ROOT run through 'hotline replay' (embedded) and through Kafka, both
    with their defaults: the rules and the registered default anomaly model."""
    import subprocess

    from tests.integration.broker.conftest import HOTLINE

    config, cfg = stream_env
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    ref_db = tmp_path / "embedded.db"
    p = subprocess.run([HOTLINE, "replay", "7", "--archive", str(archive), "--no-progress",
                        "--store", f"sqlite:///{ref_db}"], capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    with SQLiteAlertStore(ref_db) as ref:
        expected = {a.id for a in ref.alerts()}
        ref_sums = {(s.run, s.lumi): s.n_events for s in ref.summaries()}
        ae_rules = {r for s in ref.summaries() for r in s.score_hist}
    assert expected
    assert ae_rules == {"ae_default_p1e-04"}, ae_rules  # the default model scored
    p = subprocess.run([HOTLINE, "--config", str(config), "replay", "7", "--archive", str(archive),
                        "--no-progress", "--to", cfg.stream.broker], capture_output=True,
                       text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    assert "published 600 events" in p.stdout and "all confirmed by the broker" in p.stdout
    workers.start("w1", model=None)
    wait_for(lambda: stored_ids(sink.store) == expected, 60, "the Kafka path's alerts")
    wait_for(lambda: {(s.run, s.lumi): s.n_events for s in sink.store.summaries()} == ref_sums,
             20, "the Kafka path's summaries to match the embedded ones")
    assert {r for s in sink.store.summaries() for r in s.score_hist} == ae_rules
