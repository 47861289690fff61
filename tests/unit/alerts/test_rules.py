"""Classic hotline rules: vectorised masks against a per-event reference, unavailability."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from hotline.alerts.menu import EXOTICA_HOTLINE_MENU, build_menu, load_menu
from hotline.errors import ConfigError
from tests.conftest import make_events


def naive(ev: dict, entry: dict) -> bool:
    kind = entry["kind"]
    if kind == "count":
        pts = ev[f"{entry['collection']}_pt"]
        return sum(p > entry["min_pt"] for p in pts) >= entry["min_count"]
    if kind == "scalar":
        return ev[entry["branch"]] > entry["min_value"]
    pts = ev[f"{entry['collection']}_pt"]
    return sum(p for p in pts if p > entry["object_min_pt"]) > entry["min_sum"]


def test_menu_matches_per_event_reference():
    arrays = make_events(2000, seed=5)
    # make the rare rules fire sometimes
    arrays = ak.with_field(arrays, arrays["Jet_pt"] * 3.0, "Jet_pt")
    rules = build_menu()
    assert [r.name for r in rules] == [e["name"] for e in EXOTICA_HOTLINE_MENU]
    events = ak.to_list(arrays)
    for rule, entry in zip(rules, EXOTICA_HOTLINE_MENU):
        mask = rule.evaluate(arrays, {}).mask
        expected = np.array([naive(ev, entry) for ev in events])
        np.testing.assert_array_equal(mask, expected, err_msg=rule.name)
    fired = {r.name: int(r.evaluate(arrays, {}).mask.sum()) for r in rules}
    assert fired["ht300"] > 0 and fired["2mu_pt15"] > 0 and fired["5jets_pt40"] > 0


def test_missing_inputs_make_rule_unavailable():
    arrays = make_events(50)
    no_photons = arrays[[f for f in arrays.fields if not f.startswith("Photon")]]
    outcomes = {r.name: r.evaluate(no_photons, {}) for r in build_menu()}
    assert outcomes["1pho_pt100"].mask is None
    assert outcomes["1pho_pt100"].missing == ["Photon_pt"]
    assert outcomes["1mu_pt100"].available


def test_met_rule_falls_back_to_puppi():
    arrays = make_events(50)
    f = {k: arrays[k] for k in arrays.fields if not k.startswith("MET")}
    f["PuppiMET_pt"] = np.full(50, 300.0)
    met_rule = next(r for r in build_menu() if r.name == "met250")
    assert met_rule.evaluate(ak.Array(f), {}).mask.all()


def test_menu_from_toml_and_errors(tmp_path):
    p = tmp_path / "menu.toml"
    p.write_text('[[rule]]\nname = "3mu"\nkind = "count"\ncollection = "Muon"\n'
                 'min_pt = 5\nmin_count = 3\n')
    rules = load_menu(p)
    assert [r.name for r in rules] == ["3mu"]
    p.write_text('[[rule]]\nname = "x"\nkind = "nope"\n')
    with pytest.raises(ConfigError, match="unknown rule kind 'nope'"):
        load_menu(p)
    with pytest.raises(ConfigError, match="repeated: a"):
        build_menu([{"name": "a", "kind": "scalar", "branch": "MET_pt", "min_value": 1}] * 2)
