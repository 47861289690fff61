"""Calibration per events-per-lumisection on real ROOT files, validated on another run.

Two runs are written with uproot; the tiny calo conv-AE is calibrated on pseudo-lumisections
of the first run's events at two statistics levels and registered as a new version; its
false-alarm rate is then measured on pseudo-lumisections of the *other* run (events drawn
without replacement) at and between the levels: it must be within 10x of nominal either
way. Maps outside the calibrated range are refused with a dead letter, never alerts.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from hotline.detectors.geometry import get_geometry
from hotline.detectors.pseudo_lumis import draw_lumis
from hotline.models.conv_ae import ConvAEScorer
from hotline.stream.archive_writer import write_run
from hotline.stream.dqm_pipeline import DQMContext, process_occupancy
from hotline.training.dqm import calibrate_statistics, event_pool, false_alarms
from tests.conftest import make_events


@pytest.fixture(scope="module")
def calibrated(tiny_dqm_registry, tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    archive = root / "archive"
    for run, seed in ((21, 21), (22, 22)):
        write_run(archive, run, make_events(8000, seed=seed, run=run, events_per_lumi=500),
                  events_per_file=4000, card={"description": f"calibration test run {run}"})
    reg = root / "registry"
    shutil.copytree(tiny_dqm_registry, reg)
    m = calibrate_statistics("conv_calo_regions", [21], archive, levels="200,1000",
                             maps_per_level=800, registry=reg, version=2, progress=False)
    return m, archive, reg


def test_the_card_records_the_table_and_how_to_remake_it(calibrated):
    m, _, _ = calibrated
    assert m.version == "2"
    assert m.card["calibrated_events"]["min"] == 200
    assert m.card["calibrated_events"]["max"] == 1000
    sc = m.card["statistics_calibration"]
    assert [lv["n_events"] for lv in sc["levels"]] == [200, 1000]
    for lv in sc["levels"]:
        assert lv["n_ref"] == 800
        t = {x["p"]: x for x in lv["thresholds"]}
        assert t[0.01]["uncertainty"] > 0 and t[0.001]["threshold"] > t[0.01]["threshold"]
    assert sc["sample"]["runs"] == [21] and sc["sample"]["events"] == 8000
    assert "--calibrate-statistics --runs 21 --levels 200,1000 --maps-per-level 800" in (
        sc["regenerate"])
    # the network is the same as version 1
    assert m.card["onnx"]["sha256"] == ConvAEScorer.from_registry(
        "conv_calo_regions", 1, calibrated[2]).card["onnx"]["sha256"]


@pytest.mark.parametrize("n_events", [200, 450, 1000])
def test_false_alarms_on_an_independent_run_are_near_nominal(calibrated, n_events):
    m, archive, reg = calibrated
    sc = ConvAEScorer.from_model(m)
    pool = event_pool([22], archive, get_geometry("calo_regions"))
    assert len(pool.hits) == 8000 and pool.hits.weights is None
    maps = draw_lumis(pool.hits, n_events, 600, seed=5, pileup=40.0, run=22)
    fa = false_alarms(sc, maps, (0.05, 0.01))
    for p, (k, n) in fa.items():
        assert n == 600
        assert p / 10 <= k / n <= 10 * p, f"{k}/{n} false alarms at p = {p}"


def test_outside_the_calibrated_range_is_a_dead_letter(calibrated):
    m, archive, _ = calibrated
    sc = ConvAEScorer.from_model(m)
    pool = event_pool([22], archive, sc.geometry)
    maps = draw_lumis(pool.hits, 100, 1, seed=1, run=22).maps("t")
    res = process_occupancy(maps, DQMContext({"calo_regions": sc}))
    assert not res.alerts and len(res.deadletters) == 1
    assert "100 events per lumisection is outside the range" in res.deadletters[0].reason
    assert np.isnan(sc.score(maps[0].counts, np.array([100])).p_value[0])
