"""Messages scored together (``stream.agents.MessageMerger``) store what each alone stores.

The worker joins consecutive messages of one partition and key (``[stream] merge_events``)
and scores them in one call. These tests write the records of both ways into real SQLite
stores and compare them: the same alert ids, the same dead letters (ids name the message),
the same lumisection summaries; fuzzed with damaged messages, repeated and overlapping
events and quarantined values (``test_fuzz_inputs``'s generators). ``concat_batches`` is
checked against ``ak.concatenate``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.alerts.ae_rule import AERule
from hotline.alerts.menu import build_menu
from hotline.alerts.rules import RuleOutcome
from hotline.alerts.store import SQLiteAlertStore
from hotline.config import StreamConfig
from hotline.models.scorer import Scorer
from hotline.stream.agents import Incoming, MessageMerger, message_records
from hotline.stream.batch import EventBatch, concat_batches
from hotline.stream.codecs import encode_batch
from hotline.stream.pipeline import PipelineContext
from hotline.stream.sink import SinkReport, write_records
from hotline.stream.topics import topics_for
from tests.conftest import make_events
from tests.unit.stream.test_fuzz_inputs import MESSAGE_DAMAGE, SETTINGS, contents, message

TOPICS = topics_for(StreamConfig())


@pytest.fixture(scope="module")
def ctx(tiny_registry: Path) -> PipelineContext:
    scorer = Scorer.from_registry("tiny", registry=tiny_registry)
    return PipelineContext(rules=[*build_menu(), AERule(scorer, 0.05)], spec=scorer.spec)


def _consumer_records(raw_records: list[tuple[str, bytes, bytes]], offset: int) -> list:
    from kafka.consumer.fetcher import ConsumerRecord

    return [ConsumerRecord(topic, 0, None, offset + i, 0, 0, key, value, [], None, 0, 0, 0)
            for i, (topic, key, value) in enumerate(raw_records)]


def _view(store: SQLiteAlertStore) -> dict[str, Any]:
    return {
        "alerts": sorted(a.id for a in store.alerts()),
        "deadletters": sorted((d.id, d.origin, d.events) for d in store.deadletters(limit=None)),
        "summaries": {s.key: (s.n_events, s.n_bad, s.rule_counts, sorted(s.unavailable),
                              s.score_hist) for s in store.summaries()},
    }


def _store_of(batches_of_records: list[list[tuple[str, bytes, bytes]]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d, SQLiteAlertStore(Path(d) / "s.db") as store:
        offset = 0
        for records in batches_of_records:
            write_records(_consumer_records(records, offset), store, TOPICS, SinkReport())
            offset += len(records)
        return _view(store)


def _merged(ctx: PipelineContext, raws: list[tuple[bytes, bytes]], merge_events: int,
            tps: list[int] | None = None) -> tuple[list[Any], list[list[tuple[str, bytes, bytes]]]]:
    """(outcomes, records per outcome) of the merger fed ``(key, raw)`` messages (of
    partitions ``tps``, default all 0), flushed at the end (as when the fetched queue runs
    empty)."""
    merger = MessageMerger(ctx, TOPICS, None, merge_events)
    outcomes = []
    for k, (key, raw) in enumerate(raws):
        tp = tps[k] if tps else 0
        outcomes += merger.add(Incoming(k, tp, raw, f"ev[{tp}]@{k}", key))
    outcomes += merger.flush()
    return outcomes, [o.records for o in outcomes]


def _alone(ctx: PipelineContext, raws: list[tuple[bytes, bytes]], tps: list[int] | None = None,
           order: list[int] | None = None) -> list[list[tuple[str, bytes, bytes]]]:
    """The records of each message scored alone, in ``order`` (default: as given; the
    partitions' interleaving decides which copy of an event seen twice counts first)."""
    return [message_records(raws[k][1], f"ev[{tps[k] if tps else 0}]@{k}", ctx, TOPICS, None,
                            raws[k][0])[1]
            for k in (range(len(raws)) if order is None else order)]


def test_consecutive_messages_of_one_key_are_scored_in_one_call(ctx):
    arrays = make_events(600, seed=5)
    raws = [(b"k1", encode_batch(EventBatch(arrays[i:i + 100], source="m")))
            for i in range(0, 600, 100)]
    raws[3] = (b"k2", raws[3][1])  # another key: its own call
    outcomes, records = _merged(ctx, raws, merge_events=250)
    # [0, 1] (full at 200; a third would pass 250), [2], [3] (k2), [4, 5]
    assert [[i.handle for i in o.items] for o in outcomes] == [[0, 1], [2], [3], [4, 5]]
    assert [o.origin for o in outcomes] == ["ev[0]@0..1", "ev[0]@2", "ev[0]@3", "ev[0]@4..5"]
    assert all(o.result is not None and o.result.n_events == 100 * len(o.items)
               for o in outcomes)
    # the alert-batch record of a group carries its first message's key
    assert [r[1] for o in outcomes for r in o.records if r[0] == TOPICS.alerts] == \
        [b"k1", b"k1", b"k2", b"k1"]
    assert _store_of(records) == _store_of(_alone(ctx, raws))


def test_interleaved_partitions_are_grouped_per_partition_in_offset_order(ctx):
    arrays = make_events(800, seed=4)
    raws = [(b"k", encode_batch(EventBatch(arrays[i:i + 100], source="m")))
            for i in range(0, 800, 100)]
    tps = [0, 1, 0, 1, 1, 0, 0, 1]
    raws[6] = (b"other", raws[6][1])  # partition 0 changes key: its group is flushed first
    outcomes, records = _merged(ctx, raws, 10_000, tps)
    assert [[i.handle for i in o.items] for o in outcomes] == [[0, 2, 5], [1, 3, 4, 7], [6]]
    assert [o.origin for o in outcomes] == ["ev[0]@0..5", "ev[1]@1..7", "ev[0]@6"]
    order = [i.handle for o in outcomes for i in o.items]
    assert _store_of(records) == _store_of(_alone(ctx, raws, tps, order))


def test_a_message_that_cannot_be_decoded_ends_the_group_and_is_one_dead_letter(ctx):
    arrays = make_events(300, seed=6)
    raws = [(b"k", encode_batch(EventBatch(arrays[i:i + 100], source="m")))
            for i in range(0, 300, 100)]
    raws.insert(1, (b"k", b"HOTL garbage"))
    outcomes, records = _merged(ctx, raws, merge_events=10_000)
    assert [[i.handle for i in o.items] for o in outcomes] == [[0], [1], [2, 3]]
    assert outcomes[1].result is None
    [(topic, key, _)] = outcomes[1].records
    assert topic == TOPICS.deadletter and key == b"ev[0]@1"
    assert _store_of(records) == _store_of(_alone(ctx, raws))


def test_quarantined_events_of_a_group_are_dead_letters_of_their_own_message(ctx):
    arrays = make_events(200, seed=7, events_per_lumi=200)
    pt = ak.to_list(arrays["MET_pt"])
    pt[30], pt[150] = float("nan"), float("inf")
    arrays = ak.with_field(arrays, np.asarray(pt, np.float32), "MET_pt")
    raws = [(b"k", encode_batch(EventBatch(arrays[i:i + 100], source="m")))
            for i in (0, 100)]
    outcomes, records = _merged(ctx, raws, merge_events=10_000)
    assert len(outcomes) == 1
    letters = outcomes[0].result.deadletters
    assert sorted(d.origin.split(" ")[0] for d in letters) == ["ev[0]@0", "ev[0]@1"]
    assert _store_of(records) == _store_of(_alone(ctx, raws))


class _FailsOnBigBatches:
    """A rule that cannot score more than ``limit`` events at once (a scorer's fixed input
    size, say): a merged group fails, each message alone scores."""

    name, kind, needs = "met_big", "classic", ["MET_pt"]

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def evaluate(self, arrays: ak.Array, context: dict[str, Any]) -> RuleOutcome:
        if len(arrays) > self.limit:
            raise RuntimeError(f"{len(arrays)} events, at most {self.limit}")
        return RuleOutcome(self.name, ak.to_numpy(arrays["MET_pt"]) > 40.0)


def test_a_group_that_fails_to_score_is_scored_message_by_message(ctx):
    failing = PipelineContext(rules=[*ctx.rules, _FailsOnBigBatches(150)], spec=ctx.spec)
    arrays = make_events(400, seed=8)
    raws = [(b"k", encode_batch(EventBatch(arrays[i:i + 100], source="m")))
            for i in range(0, 400, 100)]
    raws.append((b"k", encode_batch(EventBatch(make_events(200, seed=9), source="m"))))
    outcomes, records = _merged(failing, raws, merge_events=10_000)
    # the group of five fails; each message alone scores but the 200-event one: a dead letter
    assert [[i.handle for i in o.items] for o in outcomes] == [[0], [1], [2], [3], [4]]
    assert [o.result is None for o in outcomes] == [False] * 4 + [True]
    assert "at most 150" in outcomes[4].records[0][2].decode()
    assert _store_of(records) == _store_of(_alone(failing, raws))


@st.composite
def _pieces(draw: Any) -> list[tuple[ak.Array, str]]:
    """One input's events cut into consecutive messages, each maybe damaged."""
    arrays = draw(contents(max_events=24))["arrays"]
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(arrays) - 1)), min_size=1,
                                max_size=4)))
    bounds = [0, *dict.fromkeys(cuts), len(arrays)]
    damage = st.one_of(st.just("none"), st.just("none"),  # most intact: groups form
                       st.sampled_from(MESSAGE_DAMAGE))
    return [(arrays[a:b], draw(damage)) for a, b in zip(bounds, bounds[1:]) if b > a]


@settings(max_examples=120, **SETTINGS)
@given(inputs=st.lists(_pieces(), min_size=1, max_size=3),
       keys=st.lists(st.sampled_from([b"a", b"a", b"a", b"b"]), min_size=12, max_size=12),
       tps=st.lists(st.sampled_from([0, 0, 1]), min_size=12, max_size=12),
       merge_events=st.sampled_from([1, 16, 10_000]), seed=st.integers(0, 2**32 - 1))
def test_fuzz_merged_store_equals_each_message_alone(ctx, inputs, keys, tps, merge_events,
                                                     seed):
    rng = np.random.default_rng(seed)
    raws = [(keys[i % len(keys)], message(arrays, how, rng))
            for i, (arrays, how) in enumerate(p for pieces in inputs for p in pieces)]
    tps = [tps[i % len(tps)] for i in range(len(raws))]
    outcomes, records = _merged(ctx, raws, merge_events, tps)
    for tp in (0, 1):  # every message once, each partition's in offset order
        assert [i.handle for o in outcomes for i in o.items if i.tp == tp] == \
            [k for k in range(len(raws)) if tps[k] == tp]
    order = [i.handle for o in outcomes for i in o.items]
    assert _store_of(records) == _store_of(_alone(ctx, raws, tps, order))


def test_concat_batches_equals_ak_concatenate():
    a, b, c = make_events(50, seed=1), make_events(70, seed=2), make_events(30, seed=3)
    parts = [EventBatch(a[5:40], "s", "o1"), EventBatch(b, "s", "o2"),
             EventBatch(c[::1][10:], "s", "o3")]
    joined = concat_batches(parts, "all")
    expect = ak.concatenate([p.arrays for p in parts])
    assert ak.to_list(joined.arrays) == ak.to_list(expect)
    assert joined.arrays.fields == expect.fields
    assert joined.origin == "all" and joined.source == "s"
    assert joined.meta["parts"] == [("o1", 0, 35), ("o2", 35, 105), ("o3", 105, 125)]
    with pytest.raises(ValueError, match="different branches"):
        concat_batches([parts[0], EventBatch(a[["run", "luminosityBlock", "event"]])], "x")
