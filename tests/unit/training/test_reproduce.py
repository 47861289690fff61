"""``hotline train --reproduce``: the configuration rebuilt from a card, the comparison with
the shipped model, and the whole chain on a tiny model trained on the toy generator."""

from __future__ import annotations

import json

import pytest

from hotline.cli import main
from hotline.models.registry import load_model, update_card
from hotline.training.reproduce import (
    compare_aucs,
    compare_thresholds,
    reproduce_config,
)

pytest.importorskip("torch")


def shipped(name: str, version: str) -> dict:
    m = load_model(name, version)
    return {**m.card, "name": name, "version": version}


def test_config_from_the_shipped_default_card():
    card = shipped("ae_default", "4")
    cfg = reproduce_config(card, seed_spread=2)
    assert cfg.data["runs"] == {p: [r["run"] for r in rs]
                                for p, rs in card["training"]["runs"].items()}
    assert cfg.data["runs"]["sm_mix"] == [200, 201, 202]
    assert cfg.training == card["training"]["settings"]
    assert cfg.calibration["p_values"] == [0.05, 0.01, 1e-3, 1e-4, 1e-5]
    assert [m["name"] for m in cfg.models] == ["ae_default", "ae_default_seed2",
                                               "ae_default_seed3"]
    assert [m.get("seed") for m in cfg.models] == [None, 2, 3]
    from hotline.models.kinds import kind_of

    net = kind_of(cfg.models[0]).build_model({k: v for k, v in cfg.models[0].items()
                                              if k not in ("name", "description")})
    assert net.arch == card["architecture"]


def test_config_from_older_and_ensemble_cards():
    v3 = reproduce_config(shipped("ae_default", "3"), seed_spread=0)
    assert v3.training["weighted"] is False  # before event weights
    assert v3.models[0]["activation"] == "tanh" and len(v3.models) == 1
    ens = reproduce_config(shipped("ae_ensemble", "2"), seed_spread=1)
    assert ens.normalisation["phi_frame"] == "met"
    assert ens.models[0]["kind"] == "ensemble" and ens.models[0]["members"] == 3
    assert ens.models[1]["seed"] == 4  # members 4-6: disjoint from 1-3
    # ae_ensemble v1 came from a [[model]] table default.toml no longer holds: the card says
    ens1 = reproduce_config(shipped("ae_ensemble", "1"), seed_spread=0)
    assert ens1.models[0]["members"] == 3 and ens1.source.endswith("default.toml")


def test_threshold_and_auc_comparisons():
    card = {"thresholds": [{"p": 0.01, "threshold": 1.0, "uncertainty": 0.03},
                           {"p": 1e-4, "threshold": 2.0, "uncertainty": 0.1}],
            "metrics": {"signals": {"s1": {"auc": 0.90}, "s2": {"auc": 0.80}}}}
    new = {"thresholds": [{"p": 0.01, "threshold": 1.05, "uncertainty": 0.04}]}
    th = compare_thresholds(card, new)
    assert th[0]["sigma"] == pytest.approx(0.05) and th[0]["pull"] == pytest.approx(1.0)
    assert th[0]["within"] and not th[1]["within"] and "refused" in th[1]["note"]
    au = compare_aucs(card, {"s1": [0.91, 0.90], "s2": [0.70]}, {"s1": 0.004, "s2": 0.01})
    assert au[0]["pull"] == pytest.approx(2.5) and not au[0]["within"]
    assert au[1]["pull"] == pytest.approx(-10) and not au[1]["within"]
    assert not compare_aucs(card, {"s1": [0.9]}, None)[0]["within"]  # no spread: not claimed
    # with the card's sample sizes, independent samples add their statistical error
    card["metrics"].update(n_background_test_eff=9444.4)
    card["metrics"]["signals"]["s2"]["n"] = 1500
    s2 = compare_aucs(card, {"s1": [0.9], "s2": [0.78]}, {"s1": 0.004, "s2": 0.003})[1]
    assert 0.005 < s2["stat"] < 0.012 and not s2["within"] and s2["within_stat"]


TINY = """
name = "tiny"
[data]
source = "synthetic"
background = "sm"
n_background = 3000
n_signal = 600
signals = ["A4l"]
faults = []
val_fraction = 0.15
test_fraction = 0.5
[training]
epochs = 2
batch_size = 256
lr = 0.003
patience = 2
seed = 3
threads = 1
[calibration]
p_values = [0.05, 0.01]
n_boot = 10
[[model]]
name = "tiny_ae"
kind = "ae"
variant = "baseline"
register = true
"""


def test_reproduce_a_registered_model_end_to_end(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    reg, runs = tmp_path / "registry", tmp_path / "runs"
    assert main(["train", "--config", str(cfg), "--register", "--registry", str(reg),
                 "--out", str(runs), "--no-plots", "--no-progress"]) == 0
    card = load_model("tiny_ae", "1", reg).card
    code = card["training"]["code"]
    assert code["package"] and len(code["source_hash"]) == 16 and "git_commit" in code
    assert card["training"]["settings"]["seed"] == 3
    capsys.readouterr()
    args = ["train", "--reproduce", "tiny_ae:1", "--registry", str(reg), "--out", str(runs),
            "--seed-spread", "1", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "data identical to the card's: yes" in out and "reproduced: yes" in out
    report = json.loads(next(runs.glob("reproduce-tiny_ae-v1-*/reproduce.json")).read_text())
    assert report["scores"]["pearson"] > 0.9999
    assert report["scores"]["decisions"]["0.01"]["agreement"] == 1.0
    assert [a["seeds"][0] for a in report["aucs"]] == [card["metrics"]["signals"]["A4l"]["auc"]]
    assert "seeds 3, 4" in report["seed_spread"]["based_on"]
    # a shipped threshold far off its uncertainty is reported, and the command fails
    model = load_model("tiny_ae", "1", reg)
    bad = [{**t, "threshold": t["threshold"] + 10 * t["uncertainty"] + 0.1}
           for t in model.card["thresholds"]]
    update_card(model, thresholds=bad)
    assert main(args) == 1
    assert "reproduced: no" in capsys.readouterr().out
    latest = sorted(runs.glob("reproduce-tiny_ae-v1-*/reproduce.json"))[-1]
    again = json.loads(latest.read_text())
    assert not any(t["within"] for t in again["thresholds"])
    assert all(t["pull"] < -5 for t in again["thresholds"])
    assert all(a["within"] for a in again["aucs"])  # the AUCs still agree


def test_reproduce_refuses_a_card_without_settings(tmp_path):
    from hotline.errors import ModelError

    with pytest.raises(ModelError, match="records no training settings"):
        reproduce_config({"name": "x", "version": "1", "training": {"source": "archive"}})
    with pytest.raises(ModelError, match="records no runs"):
        reproduce_config({"name": "x", "version": "1", "architecture": {"kind": "ae"},
                          "training": {"source": "archive", "settings": {"seed": 1}}})
