"""The distributed path of firmware in the loop: summary parts with the L1 comparison through
the summary codec and the sink into a real SQLite store; divergence judged per lumisection."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.alerts.l1_agreement import L1Header, L1Tally
from hotline.alerts.records import EventTally, LumiSummary
from hotline.config import StreamConfig
from hotline.stream.codecs import encode_summary
from hotline.stream.l1_emulation import LumiJudge
from hotline.stream.sink import SinkReport, write_records
from hotline.stream.topics import topics_for

kafka = pytest.importorskip("kafka")

HEADER = L1Header("ae_x", "2", "feedbeef0000", 18, (("Nominal", 1e-3, 0.1, 26214),))


def _part(lumi: int, events: np.ndarray, n_wrong: int) -> LumiSummary:
    fw = np.zeros(events.size)
    fw[:n_wrong] = 0.5  # the firmware fires, serving (0) does not
    t = EventTally(events.astype(np.int64), np.zeros(events.size, bool), {}, {}, 0,
                   L1Tally.build(HEADER, events, fw, np.zeros(events.size)))
    return LumiSummary.of_tally("kafka", 9, lumi, t, part=f"p{lumi}-{events[0]}")


def _records(parts, topic):
    from kafka.consumer.fetcher import ConsumerRecord

    return [ConsumerRecord(topic, 0, None, i, 0, 0, None, encode_summary(p), [], None, 0,
                           0, 0) for i, p in enumerate(parts)]


def test_sink_judges_a_lumisection_once_the_stream_has_left_it(store):
    t = topics_for(StreamConfig())
    judge = LumiJudge(0.999)
    # LS 1 in two parts from two workers: 15 + 16 of 10,000 events differ where 0.1 % (10)
    # is allowed: exact binomial p = 8e-8 (red), judged on the merged lumisection
    a = _part(1, np.arange(1, 5001), 15)
    b = _part(1, np.arange(5001, 10001), 16)
    assert write_records(_records([a], t.scores), store, t, SinkReport(), judge) == []
    write_records(_records([b, a], t.scores), store, t, SinkReport(), judge)  # a re-read
    (s1,) = store.summaries(run=9)
    assert s1.l1.n == 10000 and s1.l1.disagree == {"Nominal": 31}  # each event once
    assert not list(store.iter_alerts(kind="dqm"))  # LS 1 may still be open
    new = write_records(_records([_part(2, np.arange(1, 2001), 1)], t.scores), store, t,
                        SinkReport(), judge)
    assert [a.rule for a in new] == ["l1_divergence:ae_x:feedbeef0000:Nominal"]
    assert new[0].lumi == 1 and new[0].payload["disagree"] == 31
    assert new[0].payload["level"] == "red"
    assert judge.judge(store, everything=True) == []  # LS 2: 1 of 2000 = 99.95 %: fine
    assert [a.lumi for a in store.iter_alerts(kind="dqm")] == [1]
