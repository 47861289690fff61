"""Distribution checks: the chi2's false-alarm rate on clean simulated histograms, its power
and localisation on injected calibration faults through the run-status engine, and the
reference run's histograms through a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hotline.alerts.distribution_checks import chi2_test, dist_findings, sum_hists
from hotline.alerts.reference import (
    compute_reference,
    current_reference,
    reference_from_summaries,
    save_reference,
)
from hotline.alerts.run_status import assess_lumis, assess_run
from hotline.alerts.statistics import AMBER_P, sidak
from hotline.alerts.store import SQLiteAlertStore
from hotline.detectors.event_faults import apply_fault
from hotline.detectors.event_histograms import DEFAULT_BOOK
from hotline.detectors.regional_faults import Box, rotate_phi, scale_pt
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch
from tests.conftest import make_events

CTX = PipelineContext()


def summaries(arrays: ak.Array, source: str = "s") -> list:
    res = process_batch(EventBatch(arrays, source=source), CTX)
    return sorted(res.summaries.values(), key=lambda s: s.lumi)


def run_with_fault(fault, events_per_lumi: int, n_lumis: int = 6, start: int = 2,
                   seed: int = 51, run: int = 1) -> ak.Array:
    """Lumisections 1..``start`` clean, the rest with ``fault`` applied."""
    a = make_events(events_per_lumi * n_lumis, seed=seed, run=run,
                    events_per_lumi=events_per_lumi)
    ls = np.asarray(a["luminosityBlock"])
    return ak.concatenate([a[ls <= start], fault(a[ls > start])])


# ------------------------------------------------------------------ false alarms


@pytest.mark.parametrize("name,n_obs", [("muons/pt", 400), ("jets/pt_region", 1500),
                                        ("electrons/etaphi", 300), ("met/pt", 500)])
def test_chi2_false_alarm_rate_on_multinomial_histograms(name, n_obs):
    """Clean lumisections drawn from the reference's own shape: p < 0.01 in 1 % of them
    and p < 0.001 in 0.1 % (each at most twice nominal, and not far below)."""
    ref_hist = sum_hists([s.hists for s in summaries(make_events(20000, seed=8))])
    assert ref_hist is not None
    ref = ref_hist.counts[name]
    layout = DEFAULT_BOOK.layout(name, ref.size)
    rng = np.random.default_rng(3)
    prob = ref / ref.sum()
    trials = 2000
    p = np.asarray([chi2_test(rng.multinomial(n_obs, prob), ref, layout).p  # type: ignore
                    for _ in range(trials)])
    assert 0.004 <= np.mean(p < 0.01) <= 0.02
    assert np.mean(p < 0.001) <= 0.002


def test_clean_runs_raise_no_more_than_nominal_false_alarms():
    """Three clean runs (30 lumisections of 500 events each) against a reference run and
    leave-one-out: each test's p < 0.01 rate at most twice nominal, and the lumisections
    the distribution findings turn amber (Sidak over the lumisection's tests) too."""
    ref = sum_hists([s.hists for s in summaries(make_events(20000, seed=900,
                                                            events_per_lumi=500))])
    ps: list[float] = []
    flagged = tested = 0
    for seed in range(3):
        hists = [s.hists for s in summaries(make_events(15000, seed=100 + seed,
                                                        events_per_lumi=500))]
        for reference in (ref, None):
            for fs in dist_findings(hists, reference):
                ps += [p for p, _ in fs]
                tested += 1
                flagged += bool(fs) and sidak(min(p for p, _ in fs), len(fs)) < AMBER_P
    ps_arr = np.asarray(ps)
    assert ps_arr.size > 8000
    assert np.mean(ps_arr < 0.01) <= 0.02 and np.mean(ps_arr < 0.001) <= 0.002
    assert flagged <= 2 * AMBER_P * tested + 1  # 180 lumisections: at most 4 amber


# ------------------------------------------------------------------ power and localisation


@pytest.fixture(scope="module")
def reference():
    return reference_from_summaries(summaries(make_events(100000, seed=7,
                                                          events_per_lumi=5000)))


def top_dist(status, lumi: int):
    ls = status.lumi(lumi)
    assert ls is not None
    dist = [f for f in ls.findings if f.kind == "dist" and f.level != "green"]
    return ls.level, (dist[0] if dist else None)


def test_muon_pt_scale_is_caught_in_its_first_lumisection(reference):
    st = assess_lumis(summaries(run_with_fault(lambda a: scale_pt(a, "Muon", 1.3), 5000)),
                      reference=reference)
    for lumi in (1, 2):
        assert st.lumi(lumi).level == "green"  # type: ignore[union-attr]
    for lumi in (3, 4, 5, 6):
        level, f = top_dist(st, lumi)
        assert level == "red" and f is not None
        assert f.quantity.startswith("dist:muons/pt") and f.where.startswith("muons pT")
    assert "pT 1.3" in st.lumi(3).findings[0].text  # type: ignore[union-attr]


def test_regional_muon_scale_fault_is_localised(reference):
    """The built-in muon_scale fault (x2 in one barrel region: ~4 % of the muons) at 5k
    events per LS (x1.3 needs ~20k events per LS: benchmarks/bench_lsmon.py)."""
    faulty = run_with_fault(
        lambda a: apply_fault(a, "muon_scale", np.random.default_rng(0), 2.0), 5000)
    st = assess_lumis(summaries(faulty), reference=reference)
    hits = [top_dist(st, ls)[1] for ls in range(3, 7)]
    found = [f for f in hits if f is not None]
    assert len(found) >= 3, st.verdict()
    assert all(f.quantity.startswith("dist:muons/pt_region") for f in found)
    assert all("eta [0, 1.2], phi [0, 1.6]" in f.where for f in found)


def test_electron_phi_rotation_in_one_region(reference):
    box = Box(0.0, 2.5, 0.0, np.pi / 2)
    st = assess_lumis(summaries(run_with_fault(lambda a: rotate_phi(a, "Electron", 0.2, box),
                                               5000)), reference=reference)
    found = [top_dist(st, ls) for ls in range(3, 7)]
    assert sum(level != "green" for level, _ in found) >= 3
    located = [f for _, f in found if f is not None and " in eta " in f.where]
    assert len(located) >= 2  # at 5k events per LS the cell is not always significant
    for f in located:
        assert f.quantity.startswith("dist:electrons/")
        # the cells at the rotated region's edge: objects left phi [0, 0.2], entered
        # [1.57, 1.77]
        assert "phi [0, 1.6]" in f.where or "phi [1.6, 3.1]" in f.where
        assert "eta [0, 1.2]" in f.where or "eta [1.2, 2.5]" in f.where


def test_jet_response_loss_in_one_quadrant(reference):
    box = Box(0.0, 4.7, 0.0, np.pi / 2)
    st = assess_lumis(summaries(run_with_fault(lambda a: scale_pt(a, "Jet", 0.85, box), 5000)),
                      reference=reference)
    found = [top_dist(st, ls) for ls in range(3, 7)]
    assert all(level != "green" for level, _ in found)
    jets = [f for _, f in found if f is not None and f.quantity.startswith("dist:jets/pt")]
    assert len(jets) >= 3
    located = [f for f in jets if " in eta " in f.where]
    assert len(located) >= 2  # at 5k events per LS the region is not always significant
    for f in located:
        assert "phi [0, 1.6]" in f.where and ("eta [0, 2.4]" in f.where
                                              or "eta [2.4, 4.7]" in f.where)
    assert all("pT 0.8" in f.text or "pT 0.9" in f.text for f in jets)


# ------------------------------------------------------------------ through the store


def test_reference_histograms_through_the_store(tmp_path: Path):
    ref_sums = summaries(make_events(30000, seed=11, run=1, events_per_lumi=3000))
    bad = run_with_fault(lambda a: scale_pt(a, "Muon", 1.3), 3000, run=2, seed=12)
    with SQLiteAlertStore(tmp_path / "a.db") as store:
        store.add_summary_parts(ref_sums + summaries(bad))
        ref = save_reference(store, compute_reference(store, 1, comment="clean"))
        back = current_reference(store, "s")
        assert back is not None and back.lumi_hists() == sum_hists([s.hists for s in ref_sums])
        assert "muons/pt" in back.provenance()["hists"] and ref.seq == back.seq
        st = assess_run(store, 2, model=False)
        clean = assess_run(store, 1, model=False)
    assert st.level == "red" and st.lumi(2).level == "green"  # type: ignore[union-attr]
    assert any(f.kind == "dist" and f.quantity.startswith("dist:muons/pt")
               for f in st.lumi(3).findings)  # type: ignore[union-attr]
    assert "muons pT" in st.reason
    assert clean.level == "green", clean.verdict()
