"""The lumisection histograms in the batch core, the store and the wire: what an event
costs on the wire, older stores upgraded, summaries read with and without histograms,
partial schemas (real SQLite; the exactness under replays is in test_exact_counting)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from hotline.alerts.store import SQLiteAlertStore
from hotline.stream.batch import EventBatch
from hotline.stream.codecs import decode_summary, encode_summary
from hotline.stream.pipeline import PipelineContext, process_batch
from tests.conftest import make_events


def test_wire_cost_per_event_is_small():
    """The histograms' per-event codes cost < 32 bytes per event on the wire (the tally
    without them ~13): 1 byte per event quantity and type count, 3 per object."""
    arrays = make_events(5000, seed=3, events_per_lumi=5000)
    with_h = process_batch(EventBatch(arrays, source="s"), PipelineContext())
    without = process_batch(EventBatch(arrays, source="s"), PipelineContext(book=None))
    (s,), (s0,) = with_h.summaries.values(), without.summaries.values()
    cost = (len(encode_summary(s)) - len(encode_summary(s0))) / 5000
    objects = sum(s.hists.total(f"{t}/pt") for t in ("electrons", "muons", "jets", "photons"))
    raw = (3 * objects + 7 * 5000) / 5000  # codes per event before base64
    assert raw * 4 / 3 <= cost < raw * 4 / 3 + 0.5 and cost < 32
    back = decode_summary(encode_summary(s))
    assert back.hists == s.hists and back.tally is not None and back.tally.hist is not None


def test_older_store_gets_the_histogram_column(tmp_path: Path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the lumi_summaries table as the first release made it
        db.execute("""CREATE TABLE lumi_summaries (
            source TEXT NOT NULL, run BIGINT NOT NULL, lumi BIGINT NOT NULL,
            n_events BIGINT NOT NULL, n_bad BIGINT NOT NULL, data TEXT NOT NULL,
            updated DOUBLE PRECISION NOT NULL, PRIMARY KEY (source, run, lumi))""")
        old = {"source": "s", "run": 1, "lumi": 1, "n_events": 10, "n_bad": 0,
               "rule_counts": {}, "unavailable": [], "score_hist": {}, "first_seen": 1.0,
               "last_seen": 1.0}
        db.execute("INSERT INTO lumi_summaries VALUES ('s', 1, 1, 10, 0, ?, 1.0)",
                   (json.dumps(old),))
    arrays = make_events(100, seed=2, events_per_lumi=50)
    res = process_batch(EventBatch(arrays, source="s"), PipelineContext())
    with SQLiteAlertStore(path) as st:
        (before,) = st.summaries(hists=True)
        assert before.n_events == 10 and before.hists is None
        st.add_summary_parts(res.summary_parts())
        got = {s.lumi: s for s in st.summaries(hists=True)}
        # lumisection 1 had 10 events of an older writer without histograms: the new
        # events' histograms are added, the old ones stay uncounted there
        assert got[1].n_events == 60 and got[1].hists == res.summaries[("s", 1, 1)].hists
        assert got[2].hists == res.summaries[("s", 1, 2)].hists
        assert all(s.hists is None for s in st.summaries())  # not read unless asked
    with sqlite3.connect(path) as db:
        cols = {r[1] for r in db.execute("PRAGMA table_info(lumi_summaries)")}
        data = db.execute("SELECT data FROM lumi_summaries WHERE lumi = 2").fetchone()[0]
    assert "hists" in cols and "hists" not in json.loads(data)


def test_upsert_keeps_histograms(tmp_path: Path):
    res = process_batch(EventBatch(make_events(100, seed=5), source="s"), PipelineContext())
    with SQLiteAlertStore(tmp_path / "a.db") as st:
        st.upsert_summaries(res.summaries.values())
        st.upsert_summaries(res.summaries.values())
        got = st.summaries(hists=True)
    assert [s.hists for s in got] == [res.summaries[s.key].hists for s in got]


def test_partial_schema_fills_what_it_has():
    arrays = make_events(200, seed=6)
    no_muons = arrays[[f for f in arrays.fields if not f.startswith("Muon_")]]
    res = process_batch(EventBatch(no_muons, source="s"), PipelineContext())
    for s in res.summaries.values():
        assert s.hists is not None
        assert "muons/pt" not in s.hists.counts and s.hists.total("jets/n") == s.n_events
    both = process_batch(EventBatch(arrays[:100], source="s"), PipelineContext()) + \
        process_batch(EventBatch(no_muons[100:], source="s"), PipelineContext())
    whole = process_batch(EventBatch(arrays, source="s"), PipelineContext())
    for k, s in both.summaries.items():
        assert s.hists is not None and whole.summaries[k].hists is not None
        # the muon histograms hold only the events that had muons
        mu = s.hists.counts.get("muons/n", np.zeros(1))
        assert mu.sum() == int(np.sum(np.asarray(arrays["luminosityBlock"])[:100] == k[2]))
