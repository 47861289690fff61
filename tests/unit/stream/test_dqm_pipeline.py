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
    epl = 10_000  # 7k-13k per lumisection: inside the models' calibrated range
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
    # the payload names the smallest p-value the reference resolves at these events: an
    # alert at it is a bound (the dashboard writes "p < floor"), never a measured value
    sc = ctx.scorers["muon_barrel"]
    floor = float(sc.p_value(np.array([np.inf]), np.array([maps[3].n_events]))[0])
    assert p["p_floor"] == pytest.approx(floor) and 0 < floor <= a.p_value
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


# ------------------------------------------------ calibration per events per lumisection

def _scorer_with_table(registry, levels=(1000, 5000)):
    """The tiny calo conv-AE with a statistics table (its own reference at each level,
    thresholds shifted per level so the interpolation is visible)."""
    from hotline.models.conv_ae import ConvAEScorer
    from hotline.models.registry import load_model

    m = load_model("conv_calo_regions", registry=registry)
    rows = []
    for k, n in enumerate(levels):
        thr = [{**t, "threshold": t["threshold"] + k} for t in m.card["thresholds"]]
        rows.append({"n_events": n, "thresholds": thr, "reference": m.card["reference"]})
    card = {**m.card, "statistics_calibration": {"levels": rows},
            "calibrated_events": {"min": levels[0], "max": levels[-1]}}
    return ConvAEScorer(card, m.onnx_path)


def test_a_map_outside_the_calibrated_statistics_is_refused_not_alerted(tiny_dqm_registry):
    sc = _scorer_with_table(tiny_dqm_registry)
    ctx = DQMContext({"calo_regions": sc}, p_value=1e-3)
    geo = sc.geometry
    ok = synthesize_lumis(geo, 2, seed=3, run=5, events_per_lumi=2000, lumi_spread=0.0)
    hot, _ = inject(ok.counts[1], geo, [Fault("hot_channel", 50.0)])  # would alert
    maps = [OccupancyMap(geo.name, 5, 1, ok.counts[0], 2000, "src"),
            OccupancyMap(geo.name, 5, 2, hot, 40, "src"),       # too few events
            OccupancyMap(geo.name, 5, 3, ok.counts[0], 90_000, "src")]  # too many
    res = process_occupancy(maps, ctx)
    assert [a.lumi for a in res.alerts] == []
    assert [d.lumi for d in res.deadletters] == [2, 3]
    reason = res.deadletters[0].reason
    assert "\n" not in reason and "40 events per lumisection" in reason
    assert "1,000 to 5,000" in reason and "not scored" in reason
    assert "occupancy calo_regions run 5 LS 2" in res.deadletters[0].origin
    notes = {s.key[2]: s for s in res.scores}
    assert notes[1].scored and not notes[2].scored and not notes[3].scored
    assert notes[2].note.startswith("not calibrated: ") and not notes[2].alert
    # the scored map's threshold is the table's at its own statistics
    assert notes[1].threshold == pytest.approx(sc.threshold(1e-3, 2000))
    assert sc.threshold(1e-3, 1000) < notes[1].threshold < sc.threshold(1e-3, 5000)


def test_the_threshold_follows_each_map_s_events(tiny_dqm_registry):
    sc = _scorer_with_table(tiny_dqm_registry)
    ctx = DQMContext({"calo_regions": sc}, p_value=0.01)
    geo = sc.geometry
    ls = synthesize_lumis(geo, 2, seed=4, run=6, events_per_lumi=3000, lumi_spread=0.0)
    res = process_occupancy([OccupancyMap(geo.name, 6, 1, ls.counts[0], 1000),
                             OccupancyMap(geo.name, 6, 2, ls.counts[1], 5000)], ctx)
    thr = [s.threshold for s in res.scores]
    assert thr[1] - thr[0] == pytest.approx(1.0)  # the levels differ by 1 in this table
    assert all(np.isfinite(s.p_value) for s in res.scores)


def test_the_dqm_p_value_is_one_config_key(tiny_dqm_registry, monkeypatch):
    from hotline.cli import build_parser
    from hotline.cli.worker import dqm_context, worker_config
    from hotline.config import load_config
    from hotline.errors import ConfigError

    env = {"HOTLINE_DQM_P_VALUE": "0.02", "HOTLINE_MODEL_REGISTRY": str(tiny_dqm_registry)}
    cfg = load_config(environ=env)
    assert cfg.dqm.p_value == 0.02
    assert DQMContext.from_config(cfg).p_value == 0.02
    # the worker: env, then its command-line option
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # callers without a Config (demo, dashboard replays) read the configured value too
    assert DQMContext.from_registry(None, tiny_dqm_registry).p_value == 0.02
    args = build_parser().parse_args(["worker"])
    ctx = dqm_context(worker_config(args))
    assert ctx.p_value == 0.02 and set(ctx.scorers) == {"calo_regions"}
    args = build_parser().parse_args(["worker", "--dqm-p-value", "0.005"])
    assert dqm_context(worker_config(args)).p_value == 0.005
    monkeypatch.setenv("HOTLINE_DQM_P_VALUE", "2")
    with pytest.raises(ConfigError, match="HOTLINE_DQM_P_VALUE"):
        dqm_context(worker_config(build_parser().parse_args(["worker"])))
