"""Distribution checks: the chi2's false-alarm rate on clean simulated histograms, its power
and localisation on injected calibration faults through the run-status engine, and the
reference run's histograms through a real SQLite store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from scipy import stats

from hotline.alerts.distribution_checks import (
    DIST_AMBER_P,
    MAX_SPREAD,
    Chi2,
    chi2_test,
    dist_findings,
    dist_tests,
    dist_trends,
    family_correct,
    group_z2,
    run_spread,
    sum_hists,
)
from hotline.alerts.lumi_status import Finding
from hotline.alerts.reference import (
    compute_reference,
    current_reference,
    reference_from_summaries,
    save_reference,
)
from hotline.alerts.run_status import assess_lumis, assess_run
from hotline.alerts.statistics import sidak
from hotline.alerts.store import SQLiteAlertStore
from hotline.detectors.event_faults import apply_fault
from hotline.detectors.event_histograms import DEFAULT_BOOK, fill_event_bins
from hotline.detectors.fault_kinds import region_fault
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch
from tests.conftest import make_events

CTX = PipelineContext()


def summaries(arrays: ak.Array, source: str = "s") -> list:
    res = process_batch(EventBatch(arrays, source=source), CTX)
    return sorted(res.summaries.values(), key=lambda s: s.lumi)


def scale_pt(a: ak.Array, coll: str, factor: float, eta: tuple[float, float] | None = None,
             phi: tuple[float, float] | None = None) -> ak.Array:
    return region_fault("scale_pt", coll, eta, phi).apply(a, np.random.default_rng(0), factor)


def rotate_phi(a: ak.Array, coll: str, shift: float, eta: tuple[float, float] | None = None,
               phi: tuple[float, float] | None = None) -> ak.Array:
    return region_fault("rotate_phi", coll, eta, phi).apply(a, np.random.default_rng(0), shift)


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
    leave-one-out: each test's p < 0.01 rate at most twice nominal, and no lumisection
    turned amber by the distribution family (budget 1e-3 per clean lumisection: 180
    lumisections expect 0.18)."""
    ref = sum_hists([s.hists for s in summaries(make_events(20000, seed=900,
                                                            events_per_lumi=500))])
    ps: list[float] = []
    flagged = tested = 0
    for seed in range(3):
        hists = [s.hists for s in summaries(make_events(15000, seed=100 + seed,
                                                        events_per_lumi=500))]
        for reference in (ref, None):
            ps += [p for fs in dist_tests(hists, reference) for p, _ in fs]
            for fs in dist_findings(hists, reference):
                tested += 1
                flagged += any(f.level != "green" for f in fs)
                assert all(f.p_corrected >= f.p_value for f in fs)
    ps_arr = np.asarray(ps)
    assert ps_arr.size > 8000
    assert np.mean(ps_arr < 0.01) <= 0.02 and np.mean(ps_arr < 0.001) <= 0.002
    assert tested == 180 and flagged <= 1


# ------------------------------------------------------------------ power and localisation


@pytest.fixture(scope="module")
def reference():
    return reference_from_summaries(summaries(make_events(100000, seed=7,
                                                          events_per_lumi=5000)))


def top_dist(status, lumi: int):
    ls = status.lumi(lumi)
    assert ls is not None
    dist = [f for f in ls.findings if f.kind == "dist" and f.level != "green"]
    if not dist:
        return ls.level, None
    f = dist[0]  # a trend finding (trend:dist:...) names its histogram like the others
    return ls.level, replace(f, quantity=f.quantity.removeprefix("trend:"))


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
    st = assess_lumis(summaries(run_with_fault(
        lambda a: rotate_phi(a, "Electron", 0.2, (0.0, 2.5), (0.0, np.pi / 2)), 5000)),
        reference=reference)
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
    st = assess_lumis(summaries(run_with_fault(
        lambda a: scale_pt(a, "Jet", 0.85, (0.0, 4.7), (0.0, np.pi / 2)), 5000)),
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
    # the reference run against itself: no distribution finding (the count quantities have
    # their own 1 % amber budget per lumisection, not this test's subject)
    assert not [f for ls in clean.lumis for f in ls.findings
                if f.kind == "dist" and f.level != "green"], clean.verdict()


# ------------------------------------------------------------------ the statistic and budget


def test_group_scores_keep_their_chi2_tail_at_a_few_entries():
    """A bin group with a few entries (N = O + R pooled, O ~ Binomial(N, pi)): the deviance
    score passes chi2_1's 1e-3 and 1e-4 cuts as often as nominal; Pearson's far more."""
    rng = np.random.default_rng(2)
    n, m = 500.0, 20000.0
    pi = n / (n + m)
    total = rng.integers(80, 400, 400_000).astype(float)  # 2 to 10 expected in the LS
    og = rng.binomial(total.astype(np.int64), pi).astype(float)
    z2 = group_z2(og, total - og, n, m)
    pearson = (og - total * pi) ** 2 / (total * pi * (1 - pi))
    for alpha in (1e-3, 1e-4):
        cut = float(stats.chi2.isf(alpha, 1))
        assert 0.3 * alpha <= np.mean(z2 > cut) <= 1.5 * alpha
        assert np.mean(pearson > cut) > 2 * alpha  # 2x at 1e-3, 5x at 1e-4, 11x at 1e-5
    # large counts: the same as Pearson's
    big = np.array([40000.0]), np.array([760000.0 + 3000.0])
    z_big = group_z2(big[0], big[1], 40000.0, 800000.0)
    pearson_big = ((40000.0 - 803000.0 * pi_big(40000.0, 800000.0)) ** 2
                   / (803000.0 * pi_big(40000.0, 800000.0) * (1 - pi_big(40000.0, 800000.0))))
    assert z_big[0] == pytest.approx(pearson_big, rel=0.02)


def pi_big(n: float, m: float) -> float:
    return n / (n + m)


def test_family_budget_and_run_spread():
    layout = DEFAULT_BOOK.layout("muons/pt", 34)
    f = Finding("dist:muons/pt", "dist", 1.0, 1.0, 100, 1e-5, 1.0, "green", "t")
    fs = family_correct([(1e-5, f), (0.5, f), (0.5, f)])
    assert fs[0].p_corrected == pytest.approx(sidak(1e-5, 3))
    assert fs[0].level == "amber" and fs[1].level == "green"
    assert DIST_AMBER_P * 10 / 9 == pytest.approx(1e-3)
    assert family_correct([(1e-9, f)] * 50)[0].level == "red"

    rng = np.random.default_rng(5)

    def tests_at(spread: list[float]) -> list[list[tuple]]:
        """One test per lumisection whose chi2 scatters ``spread`` times chi2(30)'s."""
        x2 = rng.chisquare(30, len(spread)) * np.asarray(spread)
        return [[("muons/pt", 1, layout, Chi2(float(v), 30, 0.5, 100, 100))] for v in x2]

    skip = np.zeros(40, bool)
    assert run_spread(tests_at([1.0] * 40), skip) == {}
    wide = run_spread(tests_at([1.5] * 40), skip)["muons/pt"]
    assert 1.25 < wide < 1.8
    # a fault in half of the run does not raise it much (lower quartile)
    half = run_spread(tests_at([1.5] * 20 + [40.0] * 20), skip)["muons/pt"]
    assert 1.25 < half < 2.2
    # lumisections red by their own tests are left out; a difference is capped
    assert run_spread(tests_at([40.0] * 20 + [1.0] * 20), np.arange(40) < 20) == {}
    assert run_spread(tests_at([50.0] * 40), skip)["muons/pt"] == MAX_SPREAD
    assert run_spread(tests_at([1.5] * 9), np.zeros(9, bool)) == {}  # too few tests


def test_gradual_efficiency_loss_is_flagged_before_10_percent():
    """Muons lost at 2 % per lumisection from LS 7 on (20k events per LS, against a
    reference run), assessed as the run goes: flagged by LS 10 (8 % lost), naming the
    muon multiplicity."""
    book = DEFAULT_BOOK
    ref = fill_event_bins(make_events(100_000, seed=61), book).hists()
    a = make_events(12 * 20000, seed=62, events_per_lumi=20000)
    ls = np.asarray(a["luminosityBlock"])
    lose = region_fault("lose", "Muon")
    hists = []
    for k in range(1, 13):
        part = a[ls == k]
        if k > 6:
            part = lose.apply(part, np.random.default_rng(7), 0.02 * (k - 6))
        hists.append(fill_event_bins(part, book).hists())
    first = {}
    for n in range(7, 13):  # online: the run as it stood after LS n
        fs = dist_findings(hists[:n], ref, lumis=list(range(1, n + 1)))
        for f in (f for x in fs[6:] for f in x if f.level != "green"):
            kind = "trend" if f.quantity.startswith("trend:") else "single"
            first.setdefault(kind, (n, f))
        if first:
            break
    assert first, "not flagged by LS 12"
    n, f = min(first.values(), key=lambda x: x[0])
    assert n <= 10 and "muons/n" in f.quantity and "muons multiplicity" in f.text


def test_trend_accumulates_what_no_lumisection_shows_alone():
    """One histogram 2 sigma off in every lumisection from LS 6 on (p = 0.023 each: never
    amber after Sidak over the lumisection's tests): the trend flags it, from LS 6, and
    clean series of the same run raise nothing."""
    rng = np.random.default_rng(8)
    z_off = float(stats.norm.isf(0.023))
    tests = []
    for i in range(30):
        row = []
        for h in range(27):  # the book's histograms
            p = 0.023 if (h == 0 and i >= 5) else float(rng.random())
            row.append((p, Finding(f"dist:h{h}", "dist", 1.0, 1.0, 100, p, 1.0, "green",
                                   f"h{h} differs from the reference", f"h{h} in cell")))
        tests.append(row)
    assert z_off == pytest.approx(2.0, abs=0.01)
    assert all(f.level == "green" for t in tests for f in family_correct(t))
    trends = dist_trends(tests, lumis=list(range(1, 31)))
    flagged = [i + 1 for i, t in enumerate(trends) if t]
    assert flagged and flagged[0] == 6 and {f.quantity for t in trends for f in t} == {
        "trend:dist:h0"}
    f = trends[-1][0]
    assert f.level in ("amber", "red") and f.where == "h0 in cell"
    assert "changed over LS 6-30" in f.text
