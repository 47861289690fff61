"""End to end on real ROOT files: replay -> occupancy maps -> conv-AE -> DQM alerts in SQLite."""

from __future__ import annotations

import json

import pytest

from hotline.alerts.store import SQLiteAlertStore
from hotline.cli import main
from hotline.detectors.faults import Fault
from hotline.stream.archive import find_run
from hotline.stream.dqm_pipeline import DQMContext, DQMMonitor
from hotline.stream.pipeline import PipelineContext, run_embedded
from hotline.stream.replay import ReplaySource


@pytest.fixture(scope="module")
def ctx():
    return DQMContext.from_registry(["muon_barrel", "calo_regions"], None, p_value=1e-3)


def _source(archive, ctx_events: PipelineContext, step: int = 4000) -> ReplaySource:
    files = find_run(archive, 11).files
    branches = ctx_events.branches() + [f"{c}_{f}" for c in ("Muon", "Jet", "Electron", "Photon")
                                        for f in ("pt", "eta", "phi")]
    return ReplaySource(files=files, branches=list(dict.fromkeys(branches)), step_size=step,
                        progress=False)


def test_replay_with_a_dead_board_raises_one_dqm_alert(dqm_archive, ctx, tmp_path):
    events_ctx = PipelineContext()
    store = SQLiteAlertStore(tmp_path / "a.db")
    faults = {"muon_barrel": [Fault("dead_board", unit="W+1 S04")]}
    mon = DQMMonitor(ctx, store, faults=faults, fault_lumis={3})
    report = run_embedded(_source(dqm_archive, events_ctx), events_ctx, store, on_result=mon)
    dq = mon.finish()
    assert report.events == 20_000
    # 4 lumisections x 2 subsystems, each map scored once although batches split them
    assert dq.maps == 8 and sorted({s.key[2] for s in dq.scores}) == [1, 2, 3, 4]
    alerts = store.alerts(kind="dqm")
    assert [(a.rule, a.run, a.lumi, a.event) for a in alerts] == [("dqm_muon_barrel", 11, 3, 0)]
    payload = alerts[0].payload
    assert payload["top_units"][0]["unit"].startswith("W+1 S04")
    assert len(payload["map"]) == 20 and len(payload["loss"][0]) == 48
    # replaying again stores nothing new (stable alert ids)
    mon2 = DQMMonitor(ctx, store, faults=faults, fault_lumis={3})
    run_embedded(_source(dqm_archive, events_ctx, step=7000), events_ctx, store, on_result=mon2)
    assert mon2.finish().alerts_new == 0
    store.close()


def test_cli_inject_and_replay(dqm_archive, tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    rc = main(["dqm", "inject", "--geometry", "calo_regions", "--scenario", "dead-board",
               "--lumis", "8", "--faulty", "3,6", "--store", db,
               "--save", str(tmp_path / "maps.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "ALERT" in out and "card" in out
    saved = json.loads((tmp_path / "maps.json").read_text())
    assert len(saved["maps"]) == 8 and set(saved["injected"]) == {"3", "6"}
    with SQLiteAlertStore(tmp_path / "cli.db") as store:
        lumis = sorted(a.lumi for a in store.alerts(kind="dqm"))
    assert {3, 6} <= set(lumis)

    rc = main(["dqm", "replay", "11", "--archive", str(dqm_archive),
               "--scenario", "hot-channel-10x", "--faulty", "2", "--geometry", "calo_regions",
               "--store", db, "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "4 occupancy maps scored" in out
    assert main(["dqm", "inject", "--geometry", "calo_regions", "--store", db]) == 2
    assert "say what to inject" in capsys.readouterr().err


def test_maps_from_generated_samples():
    """Occupancy maps from the Pythia8 + fast-sim samples (when produced; not committed)."""
    from pathlib import Path

    from hotline.detectors.geometry import get_geometry
    from hotline.detectors.occupancy import accumulate
    from hotline.stream.archive import list_runs

    archive = Path.home() / ".cache" / "hotline" / "samples" / "archive"
    runs = list_runs(archive, scan=False) if archive.is_dir() else []
    if not runs:
        pytest.skip("no generated samples; make them with 'hotline generate' (see samples README)")
    files = runs[0].files
    geos = [get_geometry("muon_barrel"), get_geometry("calo_regions")]
    branches = [f"{c}_{f}" for c in ("Muon", "Jet", "Electron", "Photon")
                for f in ("pt", "eta", "phi")]
    maps: dict = {}
    n = 0
    for batch in ReplaySource(files=files, branches=branches, progress=False):
        n += len(batch)
        for k, m in accumulate(batch, geos, background=False).items():
            maps[k] = maps[k] + m if k in maps else m
    assert n > 0 and sum(m.n_events for k, m in maps.items() if k[3] == "calo_regions") == n
    assert sum(m.counts.sum() for k, m in maps.items() if k[3] == "calo_regions") > 0.5 * n
