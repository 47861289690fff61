"""Replay source and embedded pipeline on files the project writes itself (uproot)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hotline.alerts.menu import build_menu
from hotline.errors import SourceError
from hotline.stream.archive import find_run, list_runs
from hotline.stream.archive_writer import write_run
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch, run_embedded
from hotline.stream.replay import Pacer, ReplaySource
from tests.conftest import make_events


def test_archive_listing(archive):
    [run] = list_runs(archive)
    assert run.run == 7 and len(run.files) == 2 and run.events == 600
    assert (run.first_lumi, run.last_lumi) == (1, 12)
    assert run.card["description"] == "test run"
    assert find_run(archive, 7).files == run.files
    with pytest.raises(SourceError, match=r"run 8 is not in archive .* \(runs there: 7\)"):
        find_run(archive, 8)


def test_replay_chunks_ids_and_start_lumi(archive):
    files = find_run(archive, 7).files
    src = ReplaySource(files, branches=PipelineContext().branches(), step_size=128)
    batches = list(src)
    assert sum(len(b) for b in batches) == 600
    assert max(len(b) for b in batches) <= 128
    ev = np.concatenate([b.event for b in batches])
    np.testing.assert_array_equal(ev, np.arange(1, 601))
    src = ReplaySource(files, branches=["Muon_pt"], start_lumi=5)
    lumis = np.concatenate([b.lumi for b in src])
    assert lumis.min() == 5 and lumis.size == 600 - 4 * 50
    assert set(next(iter(ReplaySource(files, branches=["Muon_pt"]))).fields) == {
        "run", "luminosityBlock", "event", "Muon_pt"}


def test_pacing_limits_rate():
    import time

    p = Pacer(2000.0)
    t0 = time.monotonic()
    for _ in range(5):
        p.wait(100)
    # 500 events at 2 kHz: the last batch is due 0.2 s after the first
    assert time.monotonic() - t0 >= 0.19
    for bad in (0, -5.0, float("nan"), float("inf")):
        with pytest.raises(SourceError, match="rate must be a positive, finite number"):
            Pacer(bad)


def test_bad_files_are_skipped_and_named(archive, tmp_path):
    good = find_run(archive, 7).files
    notroot = tmp_path / "notroot.root"
    notroot.write_text("this is not a ROOT file\n" * 100)
    truncated = tmp_path / "truncated.root"
    data = good[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    missing = tmp_path / "missing.root"
    empty = tmp_path / "empty"
    write_run(empty, 1, make_events(0))
    wrongtree = tmp_path / "wrongtree.root"
    import uproot

    with uproot.recreate(wrongtree) as f:
        f["Other"] = {"x": np.arange(3)}
    noids = tmp_path / "noids.root"
    with uproot.recreate(noids) as f:
        f["Events"] = {"MET_pt": np.ones(3, np.float32)}
    empty_file = next((empty / "run_000001").glob("*.root"))
    files = [notroot, good[0], truncated, missing, wrongtree, noids, empty_file, good[1]]
    src = ReplaySource(files, branches=["Muon_pt"])
    n = sum(len(b) for b in src)
    assert n >= 600  # both good files fully, plus whatever of the truncated one was readable
    msgs = [str(e) for e in src.errors]
    assert len(msgs) == 6, msgs
    assert any("notroot.root" in m and "not a ROOT file" in m for m in msgs)
    assert any("truncated.root" in m for m in msgs)
    assert any("missing.root" in m and "does not exist" in m for m in msgs)
    assert any("wrongtree.root" in m and "no tree 'Events'" in m for m in msgs)
    assert any("noids.root" in m and "'run'" in m for m in msgs)
    assert any(str(empty_file) in m and "no events" in m for m in msgs)
    assert all("\n" not in m for m in msgs)


def test_process_batch_alerts_summaries(archive):
    arrays = make_events(300, seed=9)
    arrays = ak.with_field(arrays, arrays["Jet_pt"] * 4, "Jet_pt")
    batch = EventBatch(arrays, source="test", origin="mem")
    ctx = PipelineContext()
    res = process_batch(batch, ctx)
    rules = {r.name: r.evaluate(arrays, {}).mask for r in build_menu()}
    for name, mask in rules.items():
        assert sum(a.rule == name for a in res.alerts) == int(mask.sum())
    assert sum(s.n_events for s in res.summaries.values()) == 300
    assert set(res.summaries) == {("test", 1, ls) for ls in range(1, 7)}
    a = res.alerts[0]
    assert a.payload["objects"] and a.payload["objects"][0][0] == "met"
    assert sum(s.rule_counts["ht300"] for s in res.summaries.values()) == int(rules["ht300"].sum())


def test_nan_events_go_to_deadletter(tmp_path):
    arrays = make_events(100, seed=2)
    met = ak.to_numpy(arrays["MET_pt"]).copy()
    met[[3, 7]] = np.nan
    met[11] = 1e6  # fires met250 but is fine
    arrays = ak.with_field(arrays, met, "MET_pt")
    res = process_batch(EventBatch(arrays), PipelineContext())
    [dl] = res.deadletters
    assert dl.events == (4, 8) and "NaN" in dl.reason
    assert {a.event for a in res.alerts if a.rule == "met250"} == {12}
    assert sum(s.n_bad for s in res.summaries.values()) == 2


def test_embedded_replay_twice_stores_once(archive, store):
    files = find_run(archive, 7).files
    ctx = PipelineContext()
    r1 = run_embedded(ReplaySource(files, branches=ctx.branches(), step_size=100), ctx, store)
    n = store.count_alerts()
    assert r1.events == 600 and n == r1.alerts_new == r1.alerts_seen > 0
    r2 = run_embedded(ReplaySource(files, branches=ctx.branches(), step_size=77), ctx, store)
    assert r2.alerts_new == 0 and store.count_alerts() == n
    sums = store.summaries(run=7)
    assert [s.lumi for s in sums] == list(range(1, 13))
    assert all(s.n_events == 50 for s in sums)
    assert sum(sum(s.rule_counts.values()) for s in sums) == n


def test_unavailable_rules_reported(tmp_path, store):
    arrays = make_events(100)
    arrays = arrays[[f for f in arrays.fields if not f.startswith("Photon")]]
    write_run(tmp_path / "a", 3, arrays)
    files = find_run(tmp_path / "a", 3).files
    ctx = PipelineContext()
    rep = run_embedded(ReplaySource(files, branches=ctx.branches()), ctx, store)
    assert set(rep.unavailable) == {"1pho_pt100", "3pho_pt20"}
    assert all("1pho_pt100" in s.unavailable for s in store.summaries())
    assert all("1pho_pt100" not in s.rule_counts for s in store.summaries())


def test_empty_input_list():
    with pytest.raises(SourceError, match="no input files"):
        ReplaySource([], branches=[])


def test_files_written_are_nanoaod_style(tmp_path: Path):
    import uproot

    write_run(tmp_path, 2, make_events(10))
    f = next((tmp_path / "run_000002").glob("*.root"))
    keys = set(uproot.open(f)["Events"].keys())
    assert {"nElectron", "Electron_pt", "nJet", "MET_pt", "run", "luminosityBlock", "event"} <= keys


def test_score_histogram_bins():
    from hotline.stream.pipeline import SCORE_BINS, score_bin_edges, score_histogram

    h = score_histogram(np.array([1e-9, 1e-4, 1.0, 1.0, 9.9e3, 1e5]))
    assert len(h) == SCORE_BINS + 2 and sum(h) == 6
    assert h[0] == 1 and h[-1] == 1 and h[SCORE_BINS] == 1  # under- and overflow, last bin
    edges = score_bin_edges()
    assert h[1 + int(np.searchsorted(edges, 1.0, side="right")) - 1] == 2


def test_read_ahead_gives_the_same_batches_and_stops_with_the_replay(archive, tmp_path):
    """The reader thread changes nothing the consumer sees: the same chunks in the same
    order, a damaged file reported the same way, and a replay stopped early leaves no
    reader behind."""
    import threading

    from hotline.stream.replay import ReadAhead

    files = find_run(archive, 7).files
    branches = PipelineContext().branches()

    def read(**kw):
        src = ReplaySource(files, branches=branches, step_size=64, **kw)
        return src, [b.arrays for b in src]

    (ahead, a), (plain, b) = read(read_ahead=True), read(read_ahead=False)
    assert len(a) == len(b) == 10 and all(ak.array_equal(x, y) for x, y in zip(a, b))
    assert [o.events for o in ahead.files_report] == [o.events for o in plain.files_report]
    # stopped after two batches: the reader thread of the open file is gone
    seen: list[int] = []
    src = ReplaySource(files, branches=branches, step_size=64, read_ahead=True,
                       stop=lambda: seen.append(1) or len(seen) >= 2)
    assert sum(1 for _ in src) == 2
    assert not [t for t in threading.enumerate() if t.name == "hotline-replay-reader"]
    # an error inside the reader reaches the consumer where it happened
    def items():
        yield 1
        raise ValueError("basket 2 is damaged")

    got: list[int] = []
    with pytest.raises(ValueError, match="basket 2 is damaged"):
        for x in ReadAhead(items()):
            got.append(x)
    assert got == [1]
    # a truncated file: the same report with and without the reader
    cut = tmp_path / "cut.root"
    data = Path(files[0]).read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    reports = []
    for on in (True, False):
        s = ReplaySource([cut], branches=branches, step_size=64, read_ahead=on)
        n = sum(len(x) for x in s)
        reports.append((n, [o.status for o in s.files_report]))
    assert reports[0] == reports[1]
