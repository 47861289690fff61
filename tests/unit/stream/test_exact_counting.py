"""Exact counting: every (source, run, lumisection, event) is counted once in the summaries,
whatever the files, their order, overlaps, repeats or the number of replays (real ROOT
files, real SQLite store; the PostgreSQL and Kafka paths have their own tests)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.alerts.ae_rule import AERule
from hotline.alerts.menu import build_menu
from hotline.alerts.records import NO_BIN, EventTally, LumiSummary
from hotline.alerts.store import SQLiteAlertStore
from hotline.errors import StreamError
from hotline.models.scorer import Scorer
from hotline.stream.batch import EventBatch
from hotline.stream.codecs import decode_summary, encode_summary
from hotline.stream.pipeline import PipelineContext, process_batch, run_embedded
from hotline.stream.replay import ReplaySource
from tests.conftest import make_events

N = 400  # events 1..400, 50 per lumisection


def content(summaries: list[LumiSummary]) -> list[tuple]:
    """What a summary counts (not when it was seen), in key order; with its histograms."""
    return sorted((s.key, s.n_events, s.n_bad, s.rule_counts, s.score_hist,
                   sorted(s.unavailable), _hists(s)) for s in summaries)


def _hists(s: LumiSummary) -> tuple | None:
    if s.hists is None:
        return None
    return tuple(sorted((k, tuple(v.tolist())) for k, v in s.hists.counts.items()))


@pytest.fixture(scope="module")
def ctx(tiny_registry: Path) -> PipelineContext:
    """The classic menu plus an AE rule (so score histograms are compared too)."""
    scorer = Scorer.from_registry("tiny", registry=tiny_registry)
    return PipelineContext(rules=[*build_menu(), AERule(scorer, 0.05)], spec=scorer.spec)


@pytest.fixture(scope="module")
def events() -> ak.Array:
    """The distinct events; a few with a non-finite missing pT (quarantined)."""
    arrays = make_events(N, seed=21, run=5)
    met = ak.to_numpy(arrays["MET_pt"]).copy()
    met[[3, 60, 61, 333]] = np.nan
    return ak.with_field(arrays, met, "MET_pt")


def write(path: Path, arrays: ak.Array) -> Path:
    with uproot.recreate(path) as f:
        f["Events"] = {k: arrays[k] for k in arrays.fields}
    return path


def replay(files: list[Path], ctx: PipelineContext, store: SQLiteAlertStore,
           step: int = 64) -> None:
    run_embedded(ReplaySource(files, branches=ctx.branches(), step_size=step, source="s"),
                 ctx, store)


@pytest.fixture(scope="module")
def reference(events: ak.Array, ctx: PipelineContext, tmp_path_factory) -> list[tuple]:
    d = tmp_path_factory.mktemp("ref")
    with SQLiteAlertStore(d / "ref.db") as st:
        replay([write(d / "all.root", events)], ctx, st, step=N)
        out = content(st.summaries(hists=True))
    assert sum(row[1] for row in out) == N and sum(row[2] for row in out) == 4
    # every lumisection has its histograms, the AE score shares among them
    assert all(row[6] is not None and any(k.startswith("score/") for k, _ in row[6])
               for row in out)
    return out


def scenario(name: str, events: ak.Array) -> list[list[ak.Array]]:
    """Invocations (each a list of files' arrays) of one scenario."""
    a, b = events[:250], events[150:]  # share events 151..250
    shuffled = events[np.random.default_rng(2).permutation(N)]
    repeats = events[np.r_[0:N, 10:90, 200:210, 5]]  # repeats inside one file
    return {
        "same file twice": [[events, events]],
        "overlapping files": [[a, b]],
        "overlapping files, reversed": [[b, a]],
        "repeats inside a file": [[repeats]],
        "unordered events": [[shuffled]],
        "two overlapping invocations": [[a], [b]],
        "three invocations, one a repeat": [[b], [events], [a]],
        "subset first, then everything twice": [[events[100:120]], [events, shuffled]],
    }[name]


SCENARIOS = ["same file twice", "overlapping files", "overlapping files, reversed",
             "repeats inside a file", "unordered events", "two overlapping invocations",
             "three invocations, one a repeat", "subset first, then everything twice"]


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("step", [37, 1000])
def test_summaries_count_each_event_once(name, step, events, ctx, reference, tmp_path):
    with SQLiteAlertStore(tmp_path / "alerts.db") as st:
        for k, invocation in enumerate(scenario(name, events)):
            files = [write(tmp_path / f"f{k}_{j}.root", arr) for j, arr in enumerate(invocation)]
            replay(files, ctx, st, step=step)
        assert content(st.summaries(hists=True)) == reference


def test_sink_path_counts_each_event_once(events, ctx, reference, tmp_path):
    """Partial summaries as the worker sends them (through the wire codec), with overlapping
    batches in any order, written to the store the way the sink does."""
    rng = np.random.default_rng(5)
    parts = []
    for _ in range(12):  # random overlapping slices of the data, each its own batch
        lo, hi = sorted(rng.integers(0, N, 2))
        res = process_batch(EventBatch(events[lo : hi + 1], source="s"), ctx)
        parts += [decode_summary(encode_summary(s)) for s in res.summaries.values()]
    res = process_batch(EventBatch(events[rng.permutation(N)], source="s"), ctx)
    parts += [decode_summary(encode_summary(s)) for s in res.summaries.values()]
    order = rng.permutation(len(parts))
    with SQLiteAlertStore(tmp_path / "sink.db") as st:
        for i in range(0, len(order), 5):
            st.add_summary_parts([parts[j] for j in order[i : i + 5]])
        st.add_summary_parts(parts)  # everything read again
        assert content(st.summaries(hists=True)) == reference


def test_dashboard_live_overlay_counts_each_event_once(events, ctx):
    once = process_batch(EventBatch(events, source="s"), ctx).summaries
    twice = process_batch(EventBatch(events, source="s"), ctx) + \
        process_batch(EventBatch(events[::-1], source="s"), ctx)
    assert content(list(twice.summaries.values())) == content(list(once.values()))


# ------------------------------------------------------------------------ the tally itself


tallies = st.builds(
    lambda ev, seed: _tally(np.array(ev, dtype=np.int64), seed),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=60), st.integers(0, 2**16))


def _tally(ev: np.ndarray, seed: int) -> EventTally:
    rng = np.random.default_rng(seed)
    n = ev.size
    bins = rng.integers(0, 82, n).astype(np.uint8)
    bins[rng.random(n) < 0.2] = NO_BIN
    return EventTally.build(ev, rng.random(n) < 0.1,
                            {"a": rng.random(n) < 0.5, "b": rng.random(n) < 0.3},
                            {"b": bins}, 82)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=True)
@given(tallies, tallies)
def test_tally_union_is_a_set_union_and_survives_the_wire(x, y):
    u = x.union(y)
    assert u.events.tolist() == sorted(set(x.events.tolist()) | set(y.events.tolist()))
    assert u.union(x).events.tolist() == u.events.tolist()  # idempotent
    n, bad, hits, hist = u.counts()
    assert n == len(u) and 0 <= bad <= n and all(0 <= h <= n for h in hits.values())
    assert sum(hist.get("b", [0])) == int((u.bins.get("b", np.array([])) != NO_BIN).sum())
    back = EventTally.from_wire(u.to_wire())
    assert back.counts() == u.counts() and back.events.tolist() == u.events.tolist()
    # x's entry wins for a shared event
    shared = np.intersect1d(x.events, y.events)
    if shared.size:
        assert u.only(shared).counts() == x.only(shared).counts()


@pytest.mark.parametrize("field,value,match", [
    ("n", -1, "count"), ("events", "AAA", "base64"), ("events", 7, "base64 string"),
    ("bad", "", "entries"), ("n_bins", 300, "n_bins"), ("hits", [], "JSON objects"),
])
def test_malformed_tally_is_a_stream_error(field, value, match):
    wire = _tally(np.arange(10), 1).to_wire()
    wire[field] = value
    with pytest.raises(StreamError, match=match):
        EventTally.from_wire(wire)
    unsorted = _tally(np.arange(10), 1).to_wire()
    unsorted["events"] = EventTally.build(np.arange(10), np.zeros(10)).to_wire()["events"][::-1]
    with pytest.raises(StreamError):
        EventTally.from_wire(unsorted)


@pytest.mark.parametrize("field,value", [
    ("source", 5), ("source", ""), ("run", "7"), ("lumi", -1), ("n_events", 1.5),
    ("n_bad", True), ("rule_counts", {"r": "x"}), ("rule_counts", []),
    ("score_hist", {"ae": [1, -2]}), ("unavailable", [3]), ("first_seen", "now"),
])
def test_summary_record_with_wrong_field_types_is_refused(field, value):
    import json

    s = process_batch(EventBatch(make_events(50), source="s"), PipelineContext()).summaries
    msg = json.loads(encode_summary(next(iter(s.values()))))
    msg["summary"].pop("tally", None)  # an older writer's record: the fields are what counts
    msg["summary"][field] = value
    with pytest.raises(StreamError, match=f"sc\\[0\\]@1: .*{field}|sc\\[0\\]@1: malformed"):
        decode_summary(json.dumps(msg).encode(), "sc[0]@1")
