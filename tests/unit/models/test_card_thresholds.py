"""Model-card thresholds are checked when a card is loaded: finite numbers >= 0, p in
(0, 1), each p once, monotone in p; anything else is one ModelError line naming the card
file and the entry (also through the CLI), never a traceback or a silent -1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hotline.cli import main
from hotline.errors import ModelError
from hotline.models.registry import available_models, load_model
from hotline.models.thresholds import validate_thresholds

GOOD = [{"p": 0.01, "threshold": 0.5}, {"p": 1e-3, "threshold": 0.9},
        {"p": 1e-4, "threshold": 0.9}]  # equal thresholds are allowed (monotone, not strict)


def _registry_with(tmp_path: Path, tiny_registry: Path, thresholds: object) -> Path:
    reg = tmp_path / "registry"
    shutil.copytree(tiny_registry / "tiny", reg / "tiny")
    [card_file] = (reg / "tiny").glob("*/card.json")
    card = json.loads(card_file.read_text())
    card["thresholds"] = thresholds
    card_file.write_text(json.dumps(card))  # NaN / Infinity as JSON writes them
    return reg


@pytest.mark.parametrize(("entry", "message"), [
    ({"p": 1e-3, "threshold": "abc"}, r"thresholds\[1\] \(p = 0.001\) has threshold 'abc'"),
    ({"p": 1e-3, "threshold": float("nan")}, r"thresholds\[1\] \(p = 0.001\) has threshold nan"),
    ({"p": 1e-3, "threshold": float("inf")}, r"has threshold inf; it must be a finite number"),
    ({"p": 1e-3, "threshold": -1}, r"thresholds\[1\] \(p = 0.001\) has threshold -1; .* >= 0"),
    ({"p": 1e-3, "threshold": True}, r"has threshold True"),
    ({"p": 1e-3}, r"thresholds\[1\] has no 'threshold'"),
    ({"p": "0.001", "threshold": 1.0}, r"thresholds\[1\] has p = '0.001'; .* in \(0, 1\)"),
    ({"p": 1.5, "threshold": 1.0}, r"thresholds\[1\] has p = 1.5"),
    ({"p": 1e-3, "threshold": 0.1},
     r"not monotone in p: thresholds\[1\] \(p = 0.001\) has threshold 0.1, below 0.5 of "
     r"thresholds\[0\] \(p = 0.01\)"),
    ({"p": 0.01, "threshold": 0.7}, r"p = 0.01 is listed twice \(thresholds\[0\] and "
                                    r"thresholds\[1\]\)"),
    ("0.3", r"thresholds\[1\] must be an object"),
])
def test_bad_threshold_entry_is_one_line_naming_card_and_entry(tmp_path, tiny_registry, entry,
                                                              message):
    reg = _registry_with(tmp_path, tiny_registry, [GOOD[0], entry])
    with pytest.raises(ModelError, match=message) as exc:
        load_model("tiny", registry=reg)
    text = str(exc.value)
    assert "\n" not in text and "card.json" in text and str(reg / "tiny") in text


def test_good_thresholds_and_cards_without_them_load(tmp_path, tiny_registry):
    assert validate_thresholds(GOOD, "x") == GOOD
    assert validate_thresholds(None, "x") == []
    assert load_model("tiny", registry=_registry_with(tmp_path, tiny_registry, GOOD))
    with pytest.raises(ModelError, match="'thresholds' must be a list"):
        validate_thresholds({"p": 0.1}, "card.json")


def test_every_shipped_card_passes():
    for m in available_models():
        load_model(m["name"], m["version"])


def test_listing_a_registry_with_a_broken_card_does_not_crash(tmp_path, tiny_registry):
    reg = _registry_with(tmp_path, tiny_registry, [{"threshold": 1.0}, "junk"])
    [m] = available_models(reg)
    assert m["name"] == "tiny" and m["thresholds"] == []


def test_cli_says_it_in_one_line(tmp_path, tiny_registry, archive, capsys, monkeypatch):
    reg = _registry_with(tmp_path, tiny_registry, [GOOD[0], {"p": 1e-3, "threshold": -1}])
    monkeypatch.setenv("HOTLINE_MODEL_NAME", "tiny")
    monkeypatch.setenv("HOTLINE_MODEL_REGISTRY", str(reg))
    rc = main(["replay", "7", "--archive", str(archive), "--store",
               f"sqlite:///{tmp_path / 'a.db'}", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "card.json" in err and "thresholds[1]" in err and "-1" in err
