"""End to end: hotline train / calibrate / models; real ROOT files replayed with the AE rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hotline.cli import main

TINY = """
name = "tiny"
[data]
source = "synthetic"
n_background = 3000
n_signal = 300
signals = ["A4l", "hplus_taunu"]
faults = ["fault_hot_jet"]
[training]
epochs = 2
batch_size = 256
seed = 2
[calibration]
p_values = [0.05, 0.01, 1e-3, 1e-5]
n_boot = 6
[[model]]
name = "t_ae"
kind = "ae"
register = true
[[model]]
name = "t_vae"
kind = "vae"
score = "kl"
"""

DEMO_ARCHIVE = Path(__file__).resolve().parents[3] / "data" / "archive"


def test_train_calibrate_and_list(tmp_path: Path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    reg = tmp_path / "registry"
    rc = main(["train", "--config", str(cfg), "--out", str(tmp_path / "runs"), "--register",
               "--registry", str(reg), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "t_ae" in out and "t_vae" in out and "registered t_ae" in out
    (run,) = list((tmp_path / "runs").iterdir())
    for f in ("loss_curves.png", "roc_comparison.png", "comparison.md", "summary.json",
              "t_ae/roc.png",
              "t_ae/response.png", "t_ae/residual.png", "t_vae/scores.png",
              "t_ae/checkpoint.pt"):
        assert (run / f).is_file(), f
    md = (run / "comparison.md").read_text()
    assert "| t_ae | A4l |" in md and "refused" in md  # p = 1e-5 from ~500 events: refused
    card = json.loads((reg / "t_ae" / "1" / "card.json").read_text())
    assert card["architecture"]["hidden"] == [32, 16] and card["normalisation"]["scheme"] == \
        "custom"
    assert {t["p"] for t in card["thresholds"]} >= {0.05, 0.01}
    assert card["regenerate"].startswith("hotline train --config")
    assert not (reg / "t_vae").exists()  # not marked register = true

    rc = main(["calibrate", "t_ae", "--registry", str(reg), "--synthetic", "5000",
               "--rate", "30", "--input-rate", "100", "--bootstrap", "10"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "thresholds from 5,000 events" in out and "gpd" in out
    card = json.loads((reg / "t_ae" / "1" / "card.json").read_text())
    assert any(abs(t["p"] - 30 / 8.64e6) < 1e-12 for t in card["thresholds"])
    assert card["calibration"]["n_ref"] == 5000

    # a weighted reference (a copy of the demo run whose QCD events carry bias weights) gives
    # weighted thresholds with the Kish size; --unweighted ignores the weights
    from tests.support.rootfiles import write_weighted_run

    weighted = tmp_path / "weighted_archive"
    write_weighted_run(DEMO_ARCHIVE, weighted)
    thr = {}
    for extra in ([], ["--unweighted"]):
        assert main(["calibrate", "t_ae", "--registry", str(reg), "--archive", str(weighted),
                     "--runs", "1", "--bootstrap", "5", *extra]) == 0
        out = capsys.readouterr().out
        card = json.loads((reg / "t_ae" / "1" / "card.json").read_text())
        assert card["calibration"]["weighted"] is (not extra)
        # calibrated on: the code version, and the reference runs' recipe entries (the bundled
        # demo run is package data, made by training.demo_run, not a recipe run)
        assert len(card["calibration"]["code"]["source_hash"]) == 16
        assert card["calibration"]["reference"]["recipe"]["not_in_recipe"] == [1]
        assert ("Kish effective size" in out) is (not extra)
        thr[bool(extra)] = {t["p"]: t["threshold"] for t in card["thresholds"]}
    n_eff = card["thresholds"][0].get("n_eff")
    assert n_eff is None  # unweighted: no effective size
    # the biased QCD tail pushes the unweighted 1 % threshold up
    assert thr[True][0.01] > thr[False][0.01]

    assert main(["models", "--registry", str(reg)]) == 0
    assert "t_ae" in capsys.readouterr().out

    assert main(["calibrate", "nope", "--registry", str(reg), "--synthetic", "100"]) == 2
    assert "no model 'nope'" in capsys.readouterr().err


def test_replay_real_root_files_with_ae_rule(archive: Path, tiny_registry: Path, tmp_path,
                                             capsys):
    """The archive fixture's ROOT files replayed with the model configured: AE alerts stored."""
    from hotline.alerts.store import SQLiteAlertStore

    db = tmp_path / "alerts.db"
    env_cfg = tmp_path / "hotline.toml"
    env_cfg.write_text(f'[model]\nregistry = "{tiny_registry}"\nname = "tiny"\np_value = 0.05\n')
    rc = main(["--config", str(env_cfg), "replay", "7", "--archive", str(archive),
               "--store", f"sqlite:///{db}", "--no-progress"])
    assert rc == 0, capsys.readouterr()
    store = SQLiteAlertStore(db)
    try:
        ae = store.alerts(kind="ae")
        # exactly the events the scorer puts above threshold, read back from the ROOT files
        import uproot

        from hotline.detectors.features import extract_features
        from hotline.models.scorer import Scorer
        from hotline.stream.archive import find_run

        sc = Scorer.from_registry("tiny", registry=tiny_registry)
        arrays = [uproot.open(f)["Events"].arrays() for f in find_run(archive, 7).files]
        expected = sum(int((sc.score(extract_features(a)).total > sc.threshold(0.05)).sum())
                       for a in arrays)
        assert 0 < len(ae) == expected < 600
        a = ae[0]
        assert a.p_value is not None and a.p_value <= 0.05 and a.score > 0
        assert set(a.payload["contributions"]["types"]) == {"MET", "electrons", "muons",
                                                            "jets"}
        assert a.payload["model"] == "tiny"
        sums = store.summaries()
        assert any(s.score_hist for s in sums)
    finally:
        store.close()


def test_wrong_spec_batch_is_quarantined_not_fatal(tiny_registry, store):
    """A batch whose features do not fit the model becomes a dead letter; the stream goes on."""
    from hotline.alerts.ae_rule import AERule
    from hotline.detectors.spec import FeatureSpec, ObjectSpec
    from hotline.models.scorer import Scorer
    from hotline.stream.batch import EventBatch
    from hotline.stream.pipeline import PipelineContext, run_embedded
    from hotline.stream.samples import synthetic_events

    rule = AERule(Scorer.from_registry("tiny", registry=tiny_registry), 0.05)
    spec = FeatureSpec("other", (ObjectSpec("j", "jets", "Jet", 19),))
    good = EventBatch(synthetic_events("sm", 300, 1), "s", "good.root")
    rep = run_embedded([good], PipelineContext(rules=[rule], spec=spec, features_required=True),
                       store)
    assert rep.deadletters == 1 and "trained on spec 'adc2021'" in store.deadletters()[0].reason
    assert store.count_alerts() == 0
    rep = run_embedded([good], PipelineContext(rules=[rule], features_required=True), store)
    assert rep.deadletters == 0 and rep.alerts_new > 0
    assert np.isfinite([a.score for a in store.alerts(kind="ae")]).all()


def test_default_model_is_shipped_and_loads():
    from hotline.models.registry import DEFAULT_MODEL, load_model
    from hotline.models.scorer import Scorer

    sc = Scorer(load_model(DEFAULT_MODEL))
    assert sc.threshold(1e-4) > 0


def test_a_rule_menu_with_an_ae_rule_works_in_a_fresh_process(tmp_path: Path):
    """kind = "ae" is a built-in rule kind: no registration call needed before loading a menu."""
    import subprocess
    import sys

    menu = tmp_path / "menu.toml"
    menu.write_text('[[rule]]\nname = "ens"\nkind = "ae"\nmodel = "ae_ensemble"\n'
                    'p_value = 1e-3\n')
    db = tmp_path / "a.db"
    code = ("import sys; from hotline.cli import main; sys.exit(main(['replay', '1', "
            f"'--archive', {str(DEMO_ARCHIVE)!r}, '--rules', {str(menu)!r}, "
            f"'--store', 'sqlite:///{db}', '--no-model']))")  # the menu's AE rule only
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    import sqlite3

    rows = sqlite3.connect(db).execute("SELECT rule, payload FROM alerts").fetchall()
    assert rows and {r for r, _ in rows} == {"ens"}
    points = {json.loads(p).get("explained_by") for _, p in rows}
    assert points <= {"MET", "electrons", "muons", "jets"} and "jets" in points
