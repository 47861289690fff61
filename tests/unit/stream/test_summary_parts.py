"""Exact per-lumisection summaries: part ids, their codec, the embedded replay and the sink."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from hotline.alerts.records import EventSet, LumiSummary
from hotline.alerts.store import SQLiteAlertStore
from hotline.cli import main
from hotline.config import StreamConfig
from hotline.errors import StreamError
from hotline.stream.archive import find_run
from hotline.stream.batch import EventBatch
from hotline.stream.codecs import decode_summary, encode_summary
from hotline.stream.pipeline import PipelineContext, process_batch, run_embedded
from hotline.stream.replay import ReplaySource
from hotline.stream.sink import SinkReport, write_records
from hotline.stream.topics import topics_for
from tests.conftest import make_events


def content(summaries: list[LumiSummary]) -> list[tuple]:
    """What a summary counts (not when it was seen)."""
    return [(s.key, s.n_events, s.n_bad, s.rule_counts, s.score_hist, s.unavailable)
            for s in summaries]


def test_event_set_identity_does_not_depend_on_batching():
    ev = np.arange(1, 501)
    whole = EventSet.of(ev)
    assert EventSet.of(ev[:123]) + EventSet.of(ev[123:]) == whole
    assert EventSet.of(ev[::-1]) == whole
    pid = whole.part_id("s", 1, 2)
    other = {EventSet.of(np.r_[ev[:-1], 501]).part_id("s", 1, 2),  # one event differs
             EventSet.of(ev[:-1]).part_id("s", 1, 2), whole.part_id("t", 1, 2),
             whole.part_id("s", 2, 2), whole.part_id("s", 1, 3)}
    assert pid not in other and len(other) == 5
    # same min, max and count, different events in between
    assert (EventSet.of([1, 2, 9]).part_id("s", 1, 1) != EventSet.of([1, 3, 9]).part_id("s", 1, 1))


def test_process_batch_part_ids_are_deterministic():
    arrays = make_events(300, seed=4)  # 50 events per lumisection
    ctx = PipelineContext()
    one = process_batch(EventBatch(arrays, source="s"), ctx)
    two = process_batch(EventBatch(arrays, source="s", origin="another worker"), ctx)
    assert {k: s.part for k, s in one.summaries.items()} == \
        {k: s.part for k, s in two.summaries.items()}
    assert len({s.part for s in one.summaries.values()}) == 6
    # the same lumisection cut into two batches: two other parts, adding up to the whole one
    a = process_batch(EventBatch(arrays[:75], source="s"), ctx)
    b = process_batch(EventBatch(arrays[75:], source="s"), ctx)
    key = ("s", 1, 2)  # events 51..100, split 25 / 25
    assert a.summaries[key].part != b.summaries[key].part
    assert one.summaries[key].part not in {a.summaries[key].part, b.summaries[key].part}
    [merged] = [s for s in (a + b).summary_parts() if s.key == key]
    assert merged.part == one.summaries[key].part and merged.n_events == 50


def test_summary_codec_carries_part_and_reads_old_records():
    s = process_batch(EventBatch(make_events(50), source="s"), PipelineContext()).summaries
    [part] = s.values()
    data = encode_summary(part)
    assert decode_summary(data) == part
    msg = json.loads(data)
    assert msg["part"] == part.part and "part" not in msg["summary"]
    # an older reader builds the summary from msg["summary"] alone: that still works
    assert LumiSummary.from_dict(msg["summary"]).n_events == 50
    old = json.dumps({"schema": 1, "summary": msg["summary"]}).encode()  # an older writer
    assert decode_summary(old).part is None
    with pytest.raises(StreamError, match="part id"):
        decode_summary(json.dumps({**msg, "part": 7}).encode(), "sc[0]@3")


def test_replay_demo_run_twice_into_one_store(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    main(["replay", "1", "--store", url, "--no-progress"])
    with SQLiteAlertStore(tmp_path / "alerts.db") as st:
        first = st.summaries()
        n_alerts = st.count_alerts()
    assert sum(s.n_events for s in first) == 20_000 and len(first) == 40
    for step in ("10000", "3001"):  # same batching, then another one
        main(["replay", "1", "--store", url, "--no-progress", "--step-size", step])
        with SQLiteAlertStore(tmp_path / "alerts.db") as st:
            assert content(st.summaries()) == content(first)
            assert st.count_alerts() == n_alerts
    capsys.readouterr()


def test_lumisection_seen_again_after_flush_is_added_not_replaced(store):
    arrays = make_events(150, seed=6)  # lumisections 1, 2, 3
    order = np.r_[0:25, 50:100, 25:50, 100:150]  # LS 1 (half), LS 2, LS 1 (rest), LS 3
    batches = [EventBatch(arrays[order[i : i + 25]], source="s") for i in range(0, 150, 25)]
    ctx = PipelineContext()
    run_embedded(batches, ctx, store)
    run_embedded(batches, ctx, store)  # and the same replay again
    reference = process_batch(EventBatch(arrays, source="s"), ctx)
    assert content(store.summaries()) == content(list(reference.summaries.values()))


def _records(parts: list[LumiSummary], topic: str) -> list:
    from kafka.consumer.fetcher import ConsumerRecord

    return [ConsumerRecord(topic, 0, None, i, 0, 0, None, encode_summary(p), [], None, 0,
                           0, 0) for i, p in enumerate(parts)]


def test_sink_re_reading_records_and_two_sinks_stay_exact(tmp_path, archive):
    ctx = PipelineContext()
    files = find_run(archive, 7).files
    batches = list(ReplaySource(files, branches=ctx.branches(), step_size=35))
    parts = [s for b in batches for s in process_batch(b, ctx).summaries.values()]
    assert len(parts) > len({p.key for p in parts})  # lumisections come in several parts
    with SQLiteAlertStore(tmp_path / "ref.db") as ref:
        run_embedded(batches, ctx, ref)
        expected = content(ref.summaries())
    t = topics_for(StreamConfig())
    recs = _records(parts, t.scores)

    with SQLiteAlertStore(tmp_path / "sink.db") as st:
        rep = SinkReport()
        half = len(recs) // 2
        write_records(recs[:half], st, t, rep)
        write_records(recs, st, t, rep)  # killed before the commit: all read again
        assert rep.summaries == half + len(recs) and rep.summaries_new == len(recs)
        assert content(st.summaries()) == expected

    # two sinks (own connections) writing the same records concurrently into one store
    errors: list[BaseException] = []

    def sink(seed: int) -> None:
        try:
            order = np.random.default_rng(seed).permutation(len(recs))
            with SQLiteAlertStore(tmp_path / "shared.db") as st:
                for i in range(0, len(recs), 7):
                    write_records([recs[j] for j in order[i : i + 7]], st, t, SinkReport())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    SQLiteAlertStore(tmp_path / "shared.db").close()  # schema first
    threads = [threading.Thread(target=sink, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    with SQLiteAlertStore(tmp_path / "shared.db") as st:
        assert content(st.summaries()) == expected


def test_sink_adds_records_of_older_writers(store):
    arrays = make_events(100, seed=8)
    res = process_batch(EventBatch(arrays, source="s"), PipelineContext())
    old = [LumiSummary.from_dict({**s.to_dict(), "part": None}) for s in res.summaries.values()]
    t = topics_for(StreamConfig())
    rep = SinkReport()
    write_records(_records(old, t.scores), store, t, rep)
    write_records(_records(old, t.scores), store, t, rep)
    assert rep.summaries_new == 4  # no part id: added each time, as before
    assert [s.n_events for s in store.summaries()] == [100, 100]
