"""training.attribution: the paired (counterfactual) fault-attribution study, on real data.

The shipped model ae_default (latest) and the demo run data/archive/run_000001 (generated
data-like SM events, every genWeight 1; lumisections 25-32 carry a hot_cell fault and are not
clean).
"""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from hotline.detectors.event_faults import apply_fault
from hotline.detectors.features import extract_features
from hotline.errors import ConfigError
from hotline.training.attribution import (
    load_clean_events,
    paired_attribution,
    resolve_faults,
    run_study,
)

ARCHIVE = Path(__file__).resolve().parents[3] / "data" / "archive"
P = 1e-2  # data-like background: ~30 clean alerts in 3,000 events (1e-3: ~3)


@pytest.fixture(scope="module")
def scorer():
    from hotline.models.scorer import Scorer

    return Scorer.from_registry("ae_default")


@pytest.fixture(scope="module")
def clean():
    events, weights, info = load_clean_events(ARCHIVE, [1], 3000)
    assert len(events) == 3000 and weights is None  # data-like: every genWeight is 1
    return events, weights


def test_clean_events_skip_faulty_lumisections_and_signals():
    events, weights, info = load_clean_events(ARCHIVE, [1])
    assert info["read"] == 20_000
    assert info["dropped_fault"] >= 3000  # lumisections 25-32 (500 events each)
    assert not ak.any(events.fault != 0)
    assert not ak.any(events.sample >= 10)  # the signal processes mixed into the demo run
    assert len(events) == 20_000 - info["dropped_fault"] - info["dropped_signal"]
    assert weights is None and np.all(ak.to_numpy(events.genWeight) == 1.0)


@pytest.mark.parametrize("fault,identity,real", [("muon_scale", 1.0, 3.0),
                                                 ("electron_phi", 0.0, 0.6)])
def test_identity_sizes_cause_no_alerts_and_leave_scores_unchanged(scorer, clean, fault,
                                                                   identity, real):
    events, w = clean
    r = paired_attribution(scorer, events, fault, [identity, real], P, weights=w)
    same, moved = r["sizes"]
    assert r["n_clean_alerted"] > 0
    assert same["n_caused"] == same["n_removed"] == same["n_touched"] == 0
    assert same["n_alerted"] == r["n_clean_alerted"]
    assert same["alert_fraction_faulted"] == r["alert_fraction_clean"]
    assert moved["n_touched"] > 100  # the non-identity size really changes events
    before = scorer.score(extract_features(events, scorer.spec)).total
    after = scorer.score(extract_features(
        apply_fault(events, fault, np.random.default_rng(0), identity), scorer.spec)).total
    np.testing.assert_array_equal(after, before)


def test_a_strong_hot_cell_causes_alerts(scorer, clean):
    events, w = clean
    r = paired_attribution(scorer, events, "hot_cell", [300.0], P, weights=w)
    s = r["sizes"][0]
    assert r["faulty_type"] == "jets" and not r["weighted"]
    assert s["alert_fraction_faulted"] > 2 * r["alert_fraction_clean"]
    assert s["n_caused"] >= 5 and s["caused_fraction"] > 0
    assert s["n_alerted"] == r["n_clean_alerted"] + s["n_caused"] - s["n_removed"]
    for m in r["methods"]:
        c = s["caused"][m]
        assert sum(c["top_type_counts"].values()) == s["n_caused"]
        assert c["n_faulty"] == c["top_type_counts"]["jets"]
        assert 0.0 <= c["faulty_fraction"] <= 1.0


def test_study_writes_json_and_png(scorer, tmp_path):
    res = run_study(scorer, ARCHIVE, [1], ["hot_cell:60,300", "muon_scale:1"], P, 1500,
                    tmp_path / "att", progress=False)
    data = json.loads((tmp_path / "att" / "attribution.json").read_text())
    assert data["model"] == "ae_default" and data["source"]["n_clean"] == 1500
    assert [s["size"] for s in data["faults"]["hot_cell"]["sizes"]] == [60.0, 300.0]
    assert data["faults"]["muon_scale"]["sizes"][0]["n_caused"] == 0
    png = (tmp_path / "att" / "attribution.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert res["outputs"]["png"].endswith("attribution.png")


def test_bad_sizes_and_faults_are_clear_errors(scorer, clean):
    events, w = clean
    with pytest.raises(ConfigError, match=r"'electron_phi'.*size 4\.0"):
        paired_attribution(scorer, events[:10], "electron_phi", [4.0], P)
    with pytest.raises(ConfigError, match=r"'hot_cell'.*'hot'"):
        resolve_faults(["hot_cell:hot"])
    with pytest.raises(ConfigError, match="unknown detector fault 'cold_cell'"):
        resolve_faults("cold_cell")
    with pytest.raises(ConfigError, match="3 weights for 10"):
        paired_attribution(scorer, events[:10], "hot_cell", [60.0], P, weights=np.ones(3))


def test_cli_prints_the_table_and_fails_clearly(tmp_path, capsys):
    from hotline.cli import main

    rc = main(["attribution", "ae_default", "--archive", str(ARCHIVE), "--runs", "1",
               "--faults", "hot_cell:300", "--max-events", "1000", "--out",
               str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "hot_cell -> jets" in out and "caused" in out
    assert (tmp_path / "attribution.json").exists()
    rc = main(["attribution", "ae_default", "--archive", str(ARCHIVE), "--runs", "1",
               "--faults", "muon_scale:-1", "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "muon_scale" in err and "-1" in err
