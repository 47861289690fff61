"""Real CMS NanoAOD files (coffea's test samples): features, rules, replay, CLI."""

from __future__ import annotations

import json
import shutil

import pytest
import uproot

from hotline.alerts.menu import build_menu
from hotline.cli import main
from hotline.detectors.features import extract_features
from hotline.stream.pipeline import PipelineContext, run_embedded
from hotline.stream.replay import ReplaySource


def test_dimuon_collision_data_features(cms_samples):
    f = cms_samples / "nano_dimuon.root"
    ctx = PipelineContext()
    [batch] = list(ReplaySource([f], branches=ctx.branches()))
    assert len(batch) == 40 and set(batch.run) == {315267}
    fm = extract_features(batch.arrays)
    t = uproot.open(f)["Events"]
    mu_pt = t["Muon_pt"].array()
    mu_eta = t["Muon_eta"].array()
    # leading muon in the features == max pT among muons passing the spec cuts
    for i in range(40):
        sel = [p for p, e in zip(mu_pt[i], mu_eta[i]) if p > 3 and abs(e) < 2.1]
        assert fm.x[i, 15] == pytest.approx(max(sel) if sel else 0.0, rel=1e-6)
    assert fm.collections["met"] == "MET"


def test_tt_v15_uses_puppimet_and_photons_available(cms_samples):
    f = cms_samples / "nano_tt_v15.root"
    ctx = PipelineContext()
    batches = list(ReplaySource([f], branches=ctx.branches()))
    fm = extract_features(batches[0].arrays)
    assert fm.collections["met"] == "PuppiMET"
    met_rule = next(r for r in build_menu() if r.name == "met250")
    assert met_rule.evaluate(batches[0].arrays, {}).available


def test_replay_real_files_with_bad_ones(cms_samples, tmp_path, store):
    files = [cms_samples / "nano_dimuon.root", cms_samples / "missing_luminosityBlock.root",
             cms_samples / "nano_dy_empty.root", cms_samples / "nano_dy.root",
             cms_samples / "nano_tt_v15.root"]
    ctx = PipelineContext()
    src = ReplaySource(files, branches=ctx.branches())
    rep = run_embedded(src, ctx, store)
    assert rep.events == 40 + 40 + 200
    msgs = [str(e) for e in src.errors]
    assert len(msgs) == 2
    assert "missing_luminosityBlock.root" in msgs[0] and "luminosityBlock" in msgs[0]
    assert "nano_dy_empty.root" in msgs[1] and "no events" in msgs[1]
    assert store.count_alerts(run=315267, rule="2mu_pt15") > 0  # it is a dimuon skim
    assert store.count_alerts() == rep.alerts_new
    runs = {s.run for s in store.summaries()}
    assert 315267 in runs


def test_cli_import_runs_replay_alerts(cms_samples, tmp_path, capsys):
    arch = tmp_path / "arch"
    db = f"sqlite:///{tmp_path / 'a.db'}"
    assert main(["archive", "import", "315267", str(cms_samples / "nano_dimuon.root"),
                 "--archive", str(arch)]) == 0
    assert main(["runs", "--archive", str(arch)]) == 0
    out = capsys.readouterr().out
    assert "315267" in out and "40" in out
    assert main(["replay", "315267", "--archive", str(arch), "--store", db,
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "replayed 40 events" in out and "2mu_pt15" in out
    assert main(["replay", "315267", "--archive", str(arch), "--store", db,
                 "--no-progress"]) == 0
    assert "(0 new in the store)" in capsys.readouterr().out
    assert main(["alerts", "--store", db, "--json", "--rule", "2mu_pt15", "--limit", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines and all(json.loads(x)["rule"] == "2mu_pt15" for x in lines)
    assert len({json.loads(x)["id"] for x in lines}) == len(lines)


def test_cli_user_errors_are_one_line(tmp_path, capsys, cms_samples):
    db = f"sqlite:///{tmp_path / 'a.db'}"
    assert main(["replay", "99", "--archive", str(tmp_path / "none"), "--store", db]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err
    bad = tmp_path / "bad.root"
    bad.write_text("garbage")
    assert main(["replay", "--files", str(bad), "--store", db, "--no-progress"]) == 2
    err = capsys.readouterr()
    assert "bad.root" in err.err and "Traceback" not in err.err
    shutil.copy(cms_samples / "nano_dy.root", tmp_path / "dy.root")
    # some files failed: exit 1, each named once in the per-file summary
    assert main(["replay", "--files", str(tmp_path / "dy.root"), str(bad), "--store", db,
                 "--no-progress"]) == 1
    cap = capsys.readouterr()
    assert "replayed 40 events" in cap.out and cap.out.count("bad.root") == 1
    assert "bad.root: not a ROOT file (7 bytes, no ROOT header)" in cap.out and cap.err == ""


def test_demo_runs(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "alerts per rule" in out and "replayed" in out
    # the AE rule's alerts say which object type they point to
    assert "ae_default_p1e-04 alerts point to: jets" in out


def test_quarantine_policy_on_real_nanoaod(cms_samples, store):
    """No false positives on real CMS files: nothing the pipeline reads is quarantined, and
    over *every* branch only the Higgs truth record's NaN rapidity (no Higgs in DY / ttbar)
    breaks the policy (generator-level |eta| of beam partons is not range-checked)."""
    from hotline.detectors.quality import check_events

    for name in ("nano_dimuon.root", "nano_dy.root", "nano_tt_v15.root"):
        q = check_events(uproot.open(cms_samples / name)["Events"].arrays())
        assert {p.branch for p in q.problems} <= {"HTXS_Higgs_y"}, name
    ctx = PipelineContext()
    files = [cms_samples / n for n in ("nano_dimuon.root", "nano_dy.root", "nano_tt_v15.root")]
    rep = run_embedded(ReplaySource(files, branches=ctx.branches()), ctx, store)
    assert rep.events == 280 and rep.deadletters == 0 and rep.alerts_seen > 0
