"""A schema Hotline cannot map is refused at open in one line naming the collections;
through a declared alias spec (data: detectors/aliases/*.toml) it is read as NanoAOD.
Real ROOT files with CMS Run-3 scouting NanoAOD branch names, written with uproot."""

from __future__ import annotations

import numpy as np
import pytest

from hotline.cli import main
from hotline.detectors.schemas import AliasSpec, available_aliases, load_aliases
from hotline.errors import ConfigError
from hotline.stream.pipeline import PipelineContext, process_batch, run_embedded
from hotline.stream.replay import ReplaySource
from tests.conftest import make_events
from tests.support.rootfiles import rename, write_events

SCOUTING = {"Muon": "ScoutingMuonNoVtx", "Electron": "ScoutingElectron",
            "Photon": "ScoutingPhoton", "Jet": "ScoutingPFJet", "MET": "ScoutingMET"}


@pytest.fixture
def scouting_file(tmp_path):
    events = make_events(120, seed=6, run=9)
    return events, write_events(tmp_path / "scouting.root", rename(events, SCOUTING))


def test_bundled_scouting_spec_maps_the_real_names():
    assert "run3_scouting" in available_aliases()
    spec = load_aliases("run3_scouting")
    keys = {"run", "luminosityBlock", "event", "nScoutingMuonNoVtx", "ScoutingMuonNoVtx_pt",
            "ScoutingMuonNoVtx_eta", "nScoutingMuonVtx", "ScoutingMuonVtx_pt",
            "ScoutingPFJet_pt", "ScoutingMET_pt", "ScoutingMET_phi", "ScoutingRho_x"}
    m = spec.mapping(keys)
    assert m == {"nMuon": "nScoutingMuonNoVtx", "Muon_pt": "ScoutingMuonNoVtx_pt",
                 "Muon_eta": "ScoutingMuonNoVtx_eta", "Jet_pt": "ScoutingPFJet_pt",
                 "MET_pt": "ScoutingMET_pt", "MET_phi": "ScoutingMET_phi"}
    # 2022-23 files have one muon collection; names a file already has are kept
    assert spec.mapping({"ScoutingMuon_pt", "Muon_pt"}) == {}
    assert spec.mapping({"ScoutingMuon_pt"}) == {"Muon_pt": "ScoutingMuon_pt"}


def test_alias_specs_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="unknown schema alias spec 'nope'.*run3_scouting"):
        load_aliases("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[collections]\nMuon = 3\n')
    with pytest.raises(ConfigError, match=r"bad.toml: \[collections\] Muon must be"):
        load_aliases(bad)
    own = tmp_path / "mine.toml"
    own.write_text('name = "mine"\n[branches]\nMET_pt = ["L1_met"]\n')
    assert load_aliases(own) == AliasSpec("mine", branches={"MET_pt": ("L1_met",)})


def test_unmappable_schema_is_refused_at_open_in_one_line(scouting_file, tmp_path):
    _, f = scouting_file
    ctx = PipelineContext()
    src = ReplaySource([f], branches=ctx.branches())
    assert list(src) == []
    [err] = src.errors
    msg = str(err)
    assert "\n" not in msg and "scouting.root" in msg
    assert ("none of the collections Hotline reads (MET, Electron, Muon, Jet, PuppiMET, PFMET, "
            "Photon) is in tree 'Events'; the file has ScoutingElectron, ScoutingMET, "
            "ScoutingMuonNoVtx, ScoutingPFJet, ScoutingPhoton (map them with --schema "
            "run3_scouting)") in msg
    assert src.files_report[0].failed and src.files_report[0].events == 0


def test_scouting_file_replays_through_the_alias_spec(scouting_file, store):
    events, f = scouting_file
    ctx = PipelineContext()
    src = ReplaySource([f], branches=ctx.branches(), aliases=load_aliases("run3_scouting"))
    batches = list(src)
    assert not src.errors and sum(len(b) for b in batches) == 120
    assert {"Muon_pt", "Jet_eta", "MET_phi", "Photon_pt"} <= batches[0].fields
    # exactly what the same events under NanoAOD names give
    from hotline.stream.batch import EventBatch

    ref = process_batch(EventBatch(events, "hotline", "ref"), ctx)
    rep = run_embedded(ReplaySource([f], branches=ctx.branches(),
                                    aliases=load_aliases("run3_scouting")), ctx, store)
    assert rep.unavailable == {} and rep.alerts_seen == len(ref.alerts) > 0
    assert sorted(a.id for a in store.alerts()) == sorted(a.id for a in ref.alerts)
    np.testing.assert_array_equal(batches[0].event, np.arange(1, 121))


def test_cli_schema_option_and_refusal(scouting_file, tmp_path, capsys):
    _, f = scouting_file
    db = f"sqlite:///{tmp_path / 'a.db'}"
    assert main(["replay", "--files", str(f), "--store", db, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none of the collections" in err and "scouting.root" in err
    assert main(["replay", "--files", str(f), "--store", db, "--no-progress",
                 "--schema", "run3_scouting"]) == 0
    out = capsys.readouterr().out
    assert "replayed 120 events" in out and "unavailable" not in out
