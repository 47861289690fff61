"""The L1 menu of a firmware build: fixed-point seeds, the card hash, refusals (no g++ here)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from hotline.errors import ModelError
from hotline.models.l1_emulator import (
    L1Emulator,
    L1Menu,
    card_hash,
    file_sha256,
    make_seeds,
    seed_labels,
)
from hotline.models.registry import DEFAULT_REGISTRY, load_model


def test_seed_labels_follow_the_axol1tl_names():
    assert seed_labels([1e-5, 0.05, 1e-3, 1e-4, 0.01]) == ["VLoose", "Loose", "Nominal",
                                                           "Tight", "VTight"]
    assert seed_labels([0.01, 0.001]) == ["Loose", "Tight"]
    assert seed_labels([0.1, 0.05, 0.01, 1e-3, 1e-4, 1e-5])[0] == "p1e-01"


def test_seeds_in_score_lsbs():
    seeds = make_seeds({0.01: 0.0634, 0.001: 0.0968}, 18)
    assert [s.label for s in seeds] == ["Loose", "Tight"]
    assert seeds[0].fixed == math.floor(0.0634 * 2 ** 18)
    # a score on the 2**-18 grid passes exactly when its LSB count exceeds the seed's
    assert seeds[1].fw_threshold(18) <= 0.0968 < (seeds[1].fixed + 1) / 2 ** 18


def test_card_hash_ignores_later_metrics_but_not_thresholds():
    card = dict(load_model("ae_default").card)
    h = card_hash(card)
    assert card_hash({**card, "metrics": {}}) == h
    thr = [dict(t) for t in card["thresholds"]]
    thr[0]["threshold"] *= 1.01
    assert card_hash({**card, "thresholds": thr}) != h


def _fake_build(tmp: Path, card: dict, lib: bytes = b"not a library") -> Path:
    (tmp / "l1").mkdir(parents=True)
    (tmp / "l1" / "emulation.so").write_bytes(lib)
    L1Menu("ae_default", str(card["version"]), "b1", card_hash(card), "l1/emulation.so",
           file_sha256(tmp / "l1" / "emulation.so"), "myproject", "ap_fixed<26,8>", 18, 57,
           True, seeds=make_seeds({0.01: 0.05}, 18)).write(tmp)
    return tmp


def test_a_mismatched_library_is_refused_in_one_line(tmp_path):
    model = load_model("ae_default")
    build = _fake_build(tmp_path / "b", model.card)
    (build / "l1" / "emulation.so").write_bytes(b"another library")
    with pytest.raises(ModelError, match=r"library l1/emulation.so has sha256 .* not the "
                                         r"library of build b1") as e:
        L1Emulator.open(build)
    assert "\n" not in str(e.value)


def test_a_menu_of_another_card_is_refused(tmp_path):
    reg = tmp_path / "reg"
    model = load_model("ae_default")
    shutil.copytree(model.path, reg / "ae_default" / model.version)
    build = _fake_build(tmp_path / "b", model.card)
    card = json.loads((reg / "ae_default" / model.version / "card.json").read_text())
    card["thresholds"][-1]["threshold"] *= 1.1  # recalibrated after the build
    (reg / "ae_default" / model.version / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="was made for another card of ae_default"):
        L1Emulator.open(build, reg)
    # the unchanged card: the checks pass and the (fake) library is what fails to load
    with pytest.raises(ModelError, match="cannot be loaded"):
        L1Emulator.open(build, DEFAULT_REGISTRY)


def test_missing_or_malformed_menu(tmp_path):
    with pytest.raises(ModelError, match="holds no L1 menu"):
        L1Menu.read(tmp_path)
    (tmp_path / "l1_menu.json").write_text('{"model": "x"}')
    with pytest.raises(ModelError, match="is malformed"):
        L1Menu.read(tmp_path)
