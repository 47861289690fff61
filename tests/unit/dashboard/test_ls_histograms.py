"""The lumisection-histogram view and the run report's distribution findings, over a real
SQLite store holding the summaries' histograms of a run with a jet-response fault in one
quadrant (lumisections 4-6) and a clean reference run."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hotline.alerts.reference import compute_reference, save_reference
from hotline.alerts.run_status import assess_run
from hotline.dashboard.run_report import render_report
from hotline.dashboard.views.ls_histograms import bin_labels, hist_comparison, worst_dist_finding
from hotline.detectors.event_histograms import DEFAULT_BOOK
from hotline.detectors.fault_kinds import region_fault
from hotline.stream.batch import EventBatch
from hotline.stream.pipeline import PipelineContext, process_batch
from tests.conftest import make_events
from tests.unit.dashboard.conftest import make_page

EPL = 2000


def summaries(arrays: ak.Array) -> list:
    res = process_batch(EventBatch(arrays, source="hotline"), PipelineContext())
    return list(res.summaries.values())


@pytest.fixture(scope="module")
def lsh_store(tmp_path_factory: pytest.TempPathFactory):
    """Run 1: clean reference; run 2: jets x0.8 in eta > 0, phi (0, pi/2) in LS 4-6."""
    from hotline.alerts.store import SQLiteAlertStore

    store = SQLiteAlertStore(tmp_path_factory.mktemp("lsh") / "alerts.db")
    store.add_summary_parts(summaries(make_events(6 * EPL, seed=21, run=1,
                                                  events_per_lumi=EPL)))
    a = make_events(6 * EPL, seed=22, run=2, events_per_lumi=EPL)
    ls = np.asarray(a["luminosityBlock"])
    fault = region_fault("scale_pt", "Jet", (0.0, 4.7), (0.0, np.pi / 2))
    bad = fault.apply(a[ls >= 4], np.random.default_rng(0), 0.8)
    store.add_summary_parts(summaries(ak.concatenate([a[ls < 4], bad])))
    save_reference(store, compute_reference(store, 1, source="hotline", comment="clean"))
    yield store
    store.close()


def test_hist_comparison_scales_the_reference_and_pulls_both_statistics():
    d = hist_comparison(np.array([10, 40, 0]), np.array([200, 600, 0]))
    assert d["ref"] == pytest.approx([12.5, 37.5, 0.0])
    # pull = (O - R n/m) / sqrt(n p (1 + n/m)), p pooled
    p0 = 210 / 850
    assert d["pull"][0] == pytest.approx((10 - 12.5) / np.sqrt(50 * p0 * (1 + 50 / 800)))
    assert d["pull"][2] == 0.0
    empty = hist_comparison(np.zeros(3), np.array([1, 2, 3]))
    assert empty["pull"] == [0.0, 0.0, 0.0]


def test_bin_labels_name_regions_and_cells():
    jets = DEFAULT_BOOK.object_axes("jets")
    assert jets is not None
    labels = bin_labels(DEFAULT_BOOK, "jets/pt_region", jets.n_regions * jets.pt.size)
    assert labels[0].startswith("eta [-4.7, -2.4], phi [-3.1, -1.6]; pT < 3")
    cells = bin_labels(DEFAULT_BOOK, "jets/etaphi", jets.eta.size * jets.phi.size)
    assert cells[jets.phi.size + 1].startswith("eta [-4.7, -4.23), phi [-3.14, -2.95)")
    assert bin_labels(DEFAULT_BOOK, "muons/n", 10)[1:4] == ["0", "1", "2"]


def test_view_shows_the_worst_lumisection_against_the_reference(lsh_store, tmp_path):
    page = make_page(lsh_store, tmp_path, "guest")
    view = page.hotline_views["ls_histograms"]
    view.refresh(force=True)
    status = assess_run(lsh_store, 2, source="hotline", model=False)
    picked = worst_dist_finding([ls.lumi for ls in status.lumis],
                                [ls.findings for ls in status.lumis])
    assert picked is not None and 4 <= picked[0] <= 6 and picked[1].startswith("jets/")
    assert (view.lumi.value, view.hist.value) == picked
    assert "reference run 1" in view.fig.title.text and f"LS {picked[0]}" in view.fig.title.text
    data = view.source.data
    assert len(data["obs"]) == len(data["pull"]) == len(data["label"]) > 30
    assert max(abs(p) for p in data["pull"]) > 4  # the quadrant's bins stand out
    assert "largest pull" in view.note.object
    # another lumisection and histogram on request; a clean one pulls within statistics
    view.lumi.value = 2
    view.hist.value = "muons/pt"
    assert "muons/pt, LS 2" in view.fig.title.text
    assert max(abs(p) for p in view.source.data["pull"]) < 5


def test_run_report_lists_the_distribution_findings(lsh_store):
    status = assess_run(lsh_store, 2, source="hotline", model=False)
    page = render_report(lsh_store, status)
    part = page[page.index("Distribution findings"):page.index("Dead letters")]
    assert "jets/pt" in part and "phi [0, 1.6]" in part and "LS 4" in part
    clean = assess_run(lsh_store, 1, source="hotline", model=False)
    quiet = render_report(lsh_store, clean)
    assert "no lumisection histogram differs" in quiet
