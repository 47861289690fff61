"""The held-out validation set that travels with a registered model (no g++, no cache)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hotline.errors import FirmwareError
from hotline.firmware.validation_set import (
    VALIDATION_DIR,
    VALIDATION_FILE,
    content_sha256,
    draw_validation_set,
    heldout_runs,
    load_validation_set,
    validation_set,
)
from hotline.models.registry import available_models, load_model

FIRMWARE_MODELS = [(m["name"], m["version"]) for m in available_models()
                   if m["name"] == "ae_default" and m["version"] != "1"]


@pytest.mark.parametrize(("name", "version"), FIRMWARE_MODELS)
def test_every_archive_trained_model_ships_a_held_out_set(name, version):
    model = load_model(name, version)
    vs = load_validation_set(model.path, model.card)
    assert vs is not None, f"{model.path / VALIDATION_FILE} is missing"
    trained = {int(r["run"]) for rs in model.card["training"]["runs"].values() for r in rs}
    runs = [r["run"] for r in vs.provenance["background"]["runs"]]
    assert runs == [250] and not set(runs) & trained
    assert vs.provenance["background"]["runs"][0]["seed"] == 240
    assert "--seed 240" in vs.provenance["background"]["runs"][0]["regenerate"]
    assert [r["run"] for r in vs.provenance["signal"]["runs"]] == [251]
    x, m = vs.background
    spec_f = len(model.card["feature_spec"]["objects"])
    assert x.shape == (20000, 57) and m.shape[0] == 20000 and m.dtype == bool
    assert spec_f and np.isfinite(x).all() and vs.signal is not None
    assert len(vs.signal[0]) == 5000
    assert vs.provenance["source"].startswith(f"shipped validation set {VALIDATION_DIR}/")


def test_each_distinct_set_is_stored_once():
    """Versions validated on the same events share one content-addressed file."""
    named = {}
    for name, version in FIRMWARE_MODELS:
        ref = json.loads((load_model(name, version).path / VALIDATION_FILE).read_text())
        named[version] = ref["file"]
        assert ref["file"] == f"{VALIDATION_DIR}/{ref['sha256'][:12]}.npz"
    folder = load_model("ae_default").path.parent / VALIDATION_DIR
    stored = sorted(p.name for p in folder.iterdir())
    assert sorted({Path(f).name for f in named.values()}) == stored
    assert len(stored) == 1  # v2..v5 all validate on recipe runs 250/251
    copies = [p for p in folder.parent.glob("*/*.npz") if p.parent != folder]
    assert not copies  # no copy left in a version folder


def _copy_model(model, tmp_path: Path) -> Path:
    """The version folder and the shared sets of ``model`` under ``tmp_path``."""
    shutil.copytree(model.path.parent / VALIDATION_DIR, tmp_path / VALIDATION_DIR)
    (tmp_path / "5").mkdir()
    shutil.copyfile(model.path / VALIDATION_FILE, tmp_path / "5" / VALIDATION_FILE)
    return tmp_path / "5"

def test_taking_fewer_events_names_what_was_used():
    model = load_model("ae_default")
    vs = validation_set(model, 3000, 100)
    assert len(vs.background[0]) == 3000 and len(vs.signal[0]) == 100
    assert vs.describe().startswith("validated on 3000 sm_mix events of run 250 (seed 240)")


def test_a_set_made_for_another_model_is_refused(tmp_path):
    model = load_model("ae_default")
    where = _copy_model(model, tmp_path)
    assert load_validation_set(where, model.card) is not None
    card = json.loads(json.dumps(model.card))
    card["onnx"]["sha256"] = "0" * 64
    with pytest.raises(FirmwareError, match="was made for the model with ONNX sha256"):
        load_validation_set(where, card)
    card = json.loads(json.dumps(model.card))
    card["feature_spec"]["name"] = "other_spec"
    with pytest.raises(FirmwareError, match="holds adc2021 features; the card's feature spec "
                                            "is other_spec"):
        load_validation_set(where, card)
    card = json.loads(json.dumps(model.card))
    card["training"]["runs"]["sm_mix"].append({"run": 250})
    with pytest.raises(FirmwareError, match="holds runs 250, which the training .* read"):
        load_validation_set(where, card)


def test_a_missing_or_altered_set_is_refused(tmp_path):
    model = load_model("ae_default")
    where = _copy_model(model, tmp_path)
    (stored,) = (tmp_path / VALIDATION_DIR).iterdir()
    with np.load(stored) as z:
        arrays = {k: np.asarray(z[k]) for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    assert content_sha256(meta, arrays) == json.loads((where / VALIDATION_FILE).read_text())[
        "sha256"]
    arrays["background_x"][0, 0] += 1.0
    np.savez_compressed(stored, meta=np.asarray(json.dumps(meta)), **arrays)
    with pytest.raises(FirmwareError, match=r"has content sha256 \w{12}\.\.\., not the .* "
                                            "it was altered"):
        load_validation_set(where, model.card)
    stored.unlink()
    with pytest.raises(FirmwareError, match=f"{stored.name} named by .* is missing"):
        load_validation_set(where, model.card)


def _archive(root: Path, runs: dict[int, str]) -> Path:
    for run, proc in runs.items():
        d = root / f"run_{run:06d}"
        d.mkdir(parents=True)
        (d / "run.json").write_text(json.dumps({"process": proc, "run": run}))
    return root


def test_drawn_sets_never_use_the_training_runs(tmp_path):
    card = load_model("ae_default").card
    arch = _archive(tmp_path / "a", {200: "sm_mix", 201: "sm_mix", 202: "sm_mix",
                                     230: "sm_mix", 210: "a_4l"})
    assert heldout_runs(card, "sm_mix", arch) == [230]
    only_training = _archive(tmp_path / "b", {200: "sm_mix", 201: "sm_mix"})
    with pytest.raises(FirmwareError, match=r"no held-out runs of 'sm_mix' .* trained on runs "
                                            r"200, 201, 202\) .*hotline samples make --only "
                                            r"sm_mix_fwval_250"):
        draw_validation_set(card, 100, 0, only_training)


def test_synthetic_cards_regenerate_with_an_unused_seed():
    card = load_model("ae_default", "1").card
    assert card["training"]["source"] == "synthetic"
    a = draw_validation_set(card, 500, 50)
    b = draw_validation_set(card, 500, 50)
    assert np.array_equal(a.background[0], b.background[0])
    assert a.provenance["background"]["seed"] == card["training"]["seed"] + 7919
