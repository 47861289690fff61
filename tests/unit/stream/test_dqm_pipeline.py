"""process_occupancy: DQM alerts with run, lumisection, subsystem, top units, heatmaps."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.alerts.records import AlertRecord
from hotline.detectors.occupancy import OccupancyMap, synthesize_lumis
from hotline.detectors.occupancy_faults import Fault, inject
from hotline.stream.dqm_pipeline import DQMContext, process_occupancy


@pytest.fixture(scope="module")
def ctx(shipped_ctx):
    return shipped_ctx


def test_context_from_a_registry_folder(tiny_dqm_registry):
    c = DQMContext.from_registry(None, tiny_dqm_registry, p_value=0.01)
    assert set(c.scorers) == {"calo_regions"}


def test_context_has_one_scorer_per_subsystem(ctx):
    assert set(ctx.scorers) == {"muon_barrel", "calo_regions"}
    assert ctx.threshold("muon_barrel") > 0


def test_dead_board_alert_names_the_unit(ctx):
    geo = ctx.scorers["muon_barrel"].geometry
    epl = ctx.scorers["muon_barrel"].card["training"]["events_per_lumi"]
    good = synthesize_lumis(geo, 6, seed=8, run=77, events_per_lumi=epl)
    maps = good.maps("testsrc")
    bad, _ = inject(maps[3].counts, geo, [Fault("dead_board", unit="W-1 S11")])
    maps[3] = OccupancyMap(geo.name, 77, maps[3].lumi, bad, maps[3].n_events, "testsrc")
    calo = ctx.scorers["calo_regions"].geometry
    cmaps = synthesize_lumis(calo, 3, seed=8, run=77, events_per_lumi=epl).maps("testsrc")
    res = process_occupancy(maps + cmaps, ctx)
    assert len(res.scores) == 9 and not res.deadletters
    alerts = [a for a in res.alerts if a.lumi == maps[3].lumi]
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.kind, a.rule, a.event, a.run, a.source) == ("dqm", "dqm_muon_barrel", 0, 77,
                                                            "testsrc")
    p = a.payload
    assert p["subsystem"] == "muon_barrel" and p["run"] == 77 and p["lumi"] == maps[3].lumi
    assert p["top_units"][0]["unit"].startswith("W-1 S11")
    assert np.asarray(p["map"]).shape == (20, 48) and np.asarray(p["loss"]).shape == (20, 48)
    assert a.p_value < 1e-3
    # the record round-trips through JSON and has a stable id
    again = AlertRecord.from_dict(__import__("json").loads(a.to_json()))
    assert again == a
    res2 = process_occupancy([maps[3]], ctx)
    assert res2.alerts[0].id == a.id


def test_unknown_subsystem_and_wrong_shape_are_dead_letters(ctx):
    m1 = OccupancyMap("pixel_l1", 1, 1, np.zeros((4, 4)), 10)
    m2 = OccupancyMap("calo_regions", 1, 2, np.zeros((4, 4)), 10)
    res = process_occupancy([m1, m2], ctx)
    assert not res.alerts and len(res.deadletters) == 2
    assert "no DQM model for subsystem 'pixel_l1'" in res.deadletters[0].reason
    assert "does not fit geometry 'calo_regions'" in res.deadletters[1].reason
