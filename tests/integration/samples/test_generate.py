"""Sample generation end to end with real Pythia8 + fastjet + ROOT files (a few hundred
events, seconds): replay through ReplaySource + extract_features, resumability, faults,
the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hotline.detectors.fastsim import HOT_CELL_ETA, HOT_CELL_PHI
from hotline.detectors.features import extract_features
from hotline.detectors.spec import DEFAULT_SPEC
from hotline.errors import ConfigError
from hotline.stream.archive import find_run, list_runs
from hotline.stream.replay import ReplaySource
from hotline.training.generate import GenerateRequest, generate, generate_chunk

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")


def read_all(folder: Path) -> ak.Array:
    files = sorted(folder.glob("nano_*.root"))
    return ak.concatenate([uproot.open(f)["Events"].arrays() for f in files])


@pytest.fixture(scope="module")
def w_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "archive" / "run_000301"
    generate([GenerateRequest("w_lnu", 150, 5, out, chunk_size=50, events_per_lumi=25)])
    return out


def test_generated_run_replays_unchanged(w_run):
    info = find_run(w_run.parent, 301)
    assert len(info.files) == 3
    card = json.loads((w_run / "run.json").read_text())
    assert card["complete"] and card["events"] == 150 and card["seed"] == 5
    assert card["sample_codes"] == {"1": "w_lnu"} and card["mpi"] is False
    assert 0.1 < card["filter_efficiency"]["w_lnu"] < 0.6
    assert card["versions"]["pythia8mc"].startswith("8.317")
    branches = [b for o in DEFAULT_SPEC.objects for b in o.branches()] + ["sample", "fault"]
    src = ReplaySource(files=info.files, branches=branches, step_size=60)
    n = 0
    for batch in src:
        fm = extract_features(batch.arrays, DEFAULT_SPEC)
        assert fm.x.shape == (len(batch.arrays), 57)
        assert not fm.bad.any()
        lep = fm.objects()[:, 1:9, 0]  # e1..e4, mu1..mu4 pT
        assert (lep.max(axis=1) > 23).all()  # the single-lepton stream filter
        assert (ak.to_numpy(batch.arrays.sample) == 1).all()
        n += len(batch.arrays)
    assert n == 150 and not src.errors
    runs = list_runs(w_run.parent)
    assert runs[0].events == 150 and (runs[0].first_lumi, runs[0].last_lumi) == (1, 6)
    arr = read_all(w_run)
    np.testing.assert_array_equal(ak.to_numpy(arr.event), np.arange(1, 151))
    for b in ("Photon_pt", "Jet_mass", "Electron_charge", "genWeight"):
        assert b in arr.fields


def test_resume_after_kill_gives_the_same_events(w_run, tmp_path):
    out = tmp_path / "run_000301"

    class Killed(Exception):
        pass

    def kill_after_first(req, k, n):
        raise Killed

    req = GenerateRequest("w_lnu", 150, 5, out, chunk_size=50, events_per_lumi=25)
    with pytest.raises(Killed):
        generate([req], on_chunk=kill_after_first)
    assert len(list(out.glob("nano_*.root"))) == 1
    assert json.loads((out / "run.json").read_text())["complete"] is False
    (out / ".nano_0001.root.part").write_bytes(b"half a file")  # killed mid-write
    with pytest.raises(ConfigError, match="different sample"):
        generate([GenerateRequest("w_lnu", 150, 6, out, chunk_size=50, events_per_lumi=25)])
    generate([req])
    a, b = read_all(w_run), read_all(out)
    for f in ("event", "luminosityBlock", "Muon_pt", "Electron_phi", "Jet_pt", "MET_pt"):
        assert ak.all(a[f] == b[f]), f


def test_parallel_jobs_match_serial(w_run, tmp_path):
    out = tmp_path / "run_000301"
    generate([GenerateRequest("w_lnu", 150, 5, out, chunk_size=50, events_per_lumi=25)],
             jobs=2)
    assert ak.all(read_all(w_run).MET_pt == read_all(out).MET_pt)


def test_fault_processes_change_what_they_should(w_run):
    ok = read_all(w_run)
    hot, _ = generate_chunk(GenerateRequest("sm_mix_hot_cell", 50, 3, Path("run_000001")), 0)
    assert (ak.to_numpy(ok.fault) == 0).all() and (ak.to_numpy(hot.fault) == 3).all()
    at = lambda a: ak.any((abs(a.Jet_eta - HOT_CELL_ETA) < 1e-4)  # noqa: E731
                          & (abs(a.Jet_phi - HOT_CELL_PHI) < 1e-4), axis=1)
    assert not ak.any(at(ok)) and 0.15 < np.mean(at(hot)) < 0.65
    codes = set(np.unique(ak.to_numpy(hot.sample)).tolist())
    assert codes <= {1, 2, 3, 4} and {1, 2} <= codes
    qcd = ak.to_numpy(hot.genWeight[hot.sample == 2])
    assert qcd.std() > 0  # biased pTHat sampling carries weights
    assert (ak.to_numpy(hot.genWeight[hot.sample == 1]) == 1).all()


def test_signal_and_cli(tmp_path, capsys):
    from hotline.cli import main

    assert main(["generate", "--list"]) == 0
    assert "hplus_taunu" in capsys.readouterr().out
    out = tmp_path / "arch" / "run_000310"
    assert main(["generate", "a_4l", "--events", "40", "--seed", "2", "--out", str(out),
                 "--no-progress"]) == 0
    arr = read_all(out)
    nlep = ak.to_numpy(ak.num(arr.Electron_pt) + ak.num(arr.Muon_pt))
    assert len(arr) == 40 and np.mean(nlep >= 3) > 0.4  # A -> 4 leptons
    card = json.loads((out / "run.json").read_text())
    assert card["regenerate"].startswith("hotline generate a_4l")
    assert main(["generate", "nope", "--out", str(out)]) == 2
